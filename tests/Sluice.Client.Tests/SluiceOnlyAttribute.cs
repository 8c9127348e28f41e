using Xunit.Abstractions;
using Xunit.Sdk;

namespace Sluice.Client.Tests;

/// <summary>
/// Marks a real-server scenario that does not run against Liftbridge (scripts/client-vs-liftbridge.sh leaves
/// out the trait <c>Server=SluiceOnly</c>), with the reason, which the test listing shows as the trait
/// <c>SluiceOnlyReason</c>. In the default test command the scenario runs against Sluice as usual.
/// </summary>
[TraitDiscoverer("Sluice.Client.Tests.SluiceOnlyTraitDiscoverer", "Sluice.Client.Tests")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class SluiceOnlyAttribute(string reason) : Attribute, ITraitAttribute
{
    public string Reason { get; } = reason;
}

/// <summary>Turns <see cref="SluiceOnlyAttribute"/> into the traits the Liftbridge run filters on.</summary>
public sealed class SluiceOnlyTraitDiscoverer : ITraitDiscoverer
{
    public IEnumerable<KeyValuePair<string, string>> GetTraits(IAttributeInfo traitAttribute)
    {
        yield return new("Server", "SluiceOnly");
        yield return new("SluiceOnlyReason", traitAttribute.GetConstructorArguments().FirstOrDefault() as string ?? string.Empty);
    }
}
