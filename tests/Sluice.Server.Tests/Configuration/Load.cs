using Sluice.Server.Configuration;

namespace Sluice.Server.Tests.Configuration;

/// <summary>Shorthands so each test reads as its input.</summary>
internal static class Load
{
    public static readonly IReadOnlyDictionary<string, string?> NoEnvironment = new Dictionary<string, string?>();

    public static LoadedConfiguration Yaml(string yaml) => ConfigLoader.Load(yaml, NoEnvironment, ConfigFlags.None, "test.yaml");

    public static ServerOptions Options(string yaml) => Yaml(yaml).Options;

    public static LoadedConfiguration With(string? yaml = null, IReadOnlyDictionary<string, string?>? env = null, ConfigFlags? flags = null) =>
        ConfigLoader.Load(yaml, env ?? NoEnvironment, flags ?? ConfigFlags.None, "test.yaml");

    public static ConfigurationException Failure(string yaml) =>
        Assert.Throws<ConfigurationException>(() => Yaml(yaml));
}
