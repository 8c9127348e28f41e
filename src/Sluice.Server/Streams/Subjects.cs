namespace Sluice.Server.Streams;

/// <summary>NATS subject rules the broker needs: validity (Liftbridge's check) and wildcard matching.</summary>
internal static class Subjects
{
    /// <summary>Not empty, no whitespace, no empty token ("a..b", ".a", "a."). Wildcards are allowed.</summary>
    public static bool IsValid(string subject)
    {
        if (string.IsNullOrEmpty(subject))
        {
            return false;
        }

        if (subject.AsSpan().IndexOfAny(" \t\r\n") >= 0)
        {
            return false;
        }

        foreach (var token in subject.Split('.'))
        {
            if (token.Length == 0)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The subject of partition <paramref name="partition"/>: the stream subject for 0, "subject.N" otherwise.</summary>
    public static string ForPartition(string streamSubject, int partition) =>
        partition == 0 ? streamSubject : string.Concat(streamSubject, ".", partition.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>
    /// Whether a literal <paramref name="subject"/> matches <paramref name="pattern"/>, where "*" matches one
    /// token and a final "&gt;" one or more tokens (NATS semantics).
    /// </summary>
    public static bool Matches(string pattern, string subject)
    {
        var p = pattern.AsSpan();
        var s = subject.AsSpan();
        while (true)
        {
            var pi = p.IndexOf('.');
            var si = s.IndexOf('.');
            var pt = pi < 0 ? p : p[..pi];
            var st = si < 0 ? s : s[..si];
            if (pt is ">")
            {
                return st.Length > 0;
            }

            if (!(pt is "*" || pt.SequenceEqual(st)))
            {
                return false;
            }

            if (pi < 0 || si < 0)
            {
                return pi < 0 && si < 0;
            }

            p = p[(pi + 1)..];
            s = s[(si + 1)..];
        }
    }
}
