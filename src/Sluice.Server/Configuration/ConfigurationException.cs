namespace Sluice.Server.Configuration;

/// <summary>The configuration cannot be used; the message says which setting, which value and what was expected.</summary>
public sealed class ConfigurationException : Exception
{
    public ConfigurationException(string message)
        : base(message)
    {
    }

    public ConfigurationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The key at fault, when there is one.</summary>
    public string? Key { get; init; }
}
