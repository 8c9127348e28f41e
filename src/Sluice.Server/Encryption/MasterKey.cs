using System.Text;

namespace Sluice.Server.Encryption;

/// <summary>
/// The key-encryption key: the raw bytes of <c>SLUICE_ENCRYPTION_KEY</c> (or <c>LIFTBRIDGE_ENCRYPTION_KEY</c>),
/// read once at broker start. It must be 16 or 32 bytes (AES-128 or AES-256 key wrap), as in Liftbridge.
/// </summary>
internal static class MasterKey
{
    public const string EnvironmentVariable = "SLUICE_ENCRYPTION_KEY";
    public const string LiftbridgeEnvironmentVariable = "LIFTBRIDGE_ENCRYPTION_KEY";

    /// <summary>The configured key text: the options' source when given, else the process environment. Null or empty = not set.</summary>
    public static string? Read(Func<string?>? source)
    {
        if (source is not null)
        {
            return source();
        }

        var value = Environment.GetEnvironmentVariable(EnvironmentVariable);
        return string.IsNullOrEmpty(value) ? Environment.GetEnvironmentVariable(LiftbridgeEnvironmentVariable) : value;
    }

    /// <summary>The key bytes, or why they cannot be used (null when they can).</summary>
    public static byte[]? Parse(string? text, out string? error)
    {
        if (string.IsNullOrEmpty(text))
        {
            error = $"{LiftbridgeEnvironmentVariable}/{EnvironmentVariable} is not set";
            return null;
        }

        var bytes = Encoding.UTF8.GetBytes(text);
        if (bytes.Length is not (16 or 32))
        {
            // Liftbridge's text (from Go's key-wrap package), so the CreateStream error reads the same on both servers.
            error = $"kwp: invalid AES key size; want 16 or 32, got {bytes.Length}";
            return null;
        }

        error = null;
        return bytes;
    }
}
