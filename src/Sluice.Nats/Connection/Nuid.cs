using System.Security.Cryptography;

namespace Sluice.Nats.Connection;

/// <summary>Random base-62 identifiers for inbox subjects.</summary>
internal static class Nuid
{
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// <summary>22 base-62 characters carry about 131 bits, as much as a GUID.</summary>
    public static string Next() => RandomNumberGenerator.GetString(Alphabet, 22);
}
