using System.Globalization;
using System.Text;

namespace Sluice.Server.Streams;

/// <summary>
/// The limits CreateStream enforces before anything is written (docs/broker.md, "Limits"). Each one
/// keeps a value out that was once saved and then broke the next start, or that no single node can run.
/// </summary>
internal static class StreamLimits
{
    /// <summary>
    /// Longest stream name in UTF-8 bytes. A name is a directory name (255 bytes on ext4, XFS, tmpfs);
    /// 200 leaves room for the suffix `sluice repair` or an operator adds when moving a directory aside.
    /// </summary>
    public const int MaxNameBytes = 200;

    /// <summary>
    /// Most partitions in one stream. Each open partition costs a writer task, timers and a queue; 10,000
    /// open on this node in a few seconds and still answer FetchMetadata under gRPC's 4 MiB default message size.
    /// </summary>
    public const int MaxPartitions = 10_000;

    /// <summary>Longest subject and group in UTF-8 bytes: NATS refuses control lines over 4 KiB, and the stream record must stay small.</summary>
    public const int MaxSubjectBytes = 1024;

    /// <summary>
    /// Longest duration override in milliseconds: Go's time.Duration range (~292 years), so the value is also one
    /// Liftbridge represents, and nanoseconds of it still fit a long.
    /// </summary>
    public const long MaxDurationMilliseconds = long.MaxValue / 1_000_000;

    /// <summary>Null when <paramref name="value"/> (a subject or group) fits <see cref="MaxSubjectBytes"/>, else why not.</summary>
    public static string? CheckLength(string value, string field) =>
        Encoding.UTF8.GetByteCount(value) > MaxSubjectBytes ? $"{field} is too long: at most {MaxSubjectBytes} bytes in UTF-8" : null;

    /// <summary>Null when <paramref name="name"/> is a usable stream name, else why not (for InvalidArgument).</summary>
    public static string? CheckName(string name)
    {
        var bytes = Encoding.UTF8.GetByteCount(name);
        if (bytes > MaxNameBytes)
        {
            return $"Name is too long: {bytes} bytes in UTF-8, at most {MaxNameBytes}";
        }

        if (name[0] == '.')
        {
            // ".", ".." and hidden names: the first two escape the data directory, the rest hide from ls.
            return "Name is invalid: it cannot start with '.'";
        }

        foreach (var rune in name.EnumerateRunes())
        {
            // Letters (with their combining marks) and digits of any script, '.', '_' and '-': portable file
            // names that are also safe in the metadata keys ('/' separates them) and in cursor keys (','
            // separates them). An unpaired surrogate enumerates as U+FFFD, which is none of these.
            if (!IsNameRune(rune))
            {
                return "Name is invalid: use letters, digits, '.', '_' and '-' only";
            }
        }

        return null;
    }

    private static bool IsNameRune(Rune rune) => rune.Value is '.' or '_' or '-' || Rune.GetUnicodeCategory(rune) is
        UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
        or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter
        or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.DecimalDigitNumber;
}
