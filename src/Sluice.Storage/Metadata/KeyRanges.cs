using System.Text;

namespace Sluice.Storage.Metadata;

/// <summary>Helpers for etcd's range conventions: <c>[key, end)</c>, prefix ends and "from key".</summary>
public static class KeyRanges
{
    /// <summary>The <c>range_end</c> meaning "every key at or after <c>key</c>" (etcd's <c>"\0"</c>).</summary>
    public static byte[] FromKey => [0];

    /// <summary>The end of a prefix range: the prefix with its last non-0xFF byte incremented, or <see cref="FromKey"/>.</summary>
    public static byte[] PrefixEnd(ReadOnlySpan<byte> prefix)
    {
        var end = prefix.ToArray();
        for (var i = end.Length - 1; i >= 0; i--)
        {
            if (end[i] < 0xFF)
            {
                end[i]++;
                return end.AsSpan(0, i + 1).ToArray();
            }
        }

        // All bytes are 0xFF (or the prefix is empty): every key after it.
        return FromKey;
    }

    /// <summary>The start key of a prefix range: the prefix, or <c>"\0"</c> for the empty prefix (every key).</summary>
    public static byte[] PrefixStart(byte[] prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        return prefix.Length == 0 ? [0] : prefix;
    }

    /// <summary>UTF-8 bytes of a string key.</summary>
    public static byte[] Utf8(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Encoding.UTF8.GetBytes(text);
    }

    internal static int Compare(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b) => a.SequenceCompareTo(b);

    /// <summary>True when <paramref name="key"/> lies in the range described by (<paramref name="start"/>, <paramref name="end"/>).</summary>
    public static bool Contains(ReadOnlySpan<byte> start, byte[]? end, ReadOnlySpan<byte> key)
    {
        if (end is null)
        {
            return key.SequenceEqual(start);
        }

        if (Compare(key, start) < 0)
        {
            return false;
        }

        return IsFromKey(end) || Compare(key, end) < 0;
    }

    internal static bool IsFromKey(byte[]? end) => end is { Length: 1 } && end[0] == 0;
}
