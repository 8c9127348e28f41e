using System.Globalization;

namespace Sluice.Cli.Output;

internal static class Timestamps
{
    /// <summary>RFC 3339 in UTC with the full .NET precision, e.g. 2026-11-21T16:41:51.1234567Z.</summary>
    public static string Format(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);

    /// <summary>Null for the zero times the server reports for "never".</summary>
    public static string? FormatOrNull(DateTimeOffset? time) =>
        time is { } t && t > DateTimeOffset.UnixEpoch ? Format(t) : null;
}
