using System.Buffers;
using System.Text;

namespace Sluice.Protocol.Http2;

/// <summary>
/// HPACK (RFC 7541) encoder for request headers. It never uses the dynamic table, so it keeps no state and the
/// peer's SETTINGS_HEADER_TABLE_SIZE never matters: a field that is exactly in the static table is sent as an
/// indexed field, any other field as a literal without indexing (with the static name index when the name is in
/// the static table). Strings are sent raw, never Huffman-coded.
/// </summary>
internal static class HpackEncoder
{
    /// <summary>
    /// Appends the representation of one header field to <paramref name="output"/>. The name must be lower case;
    /// name and value must be Latin-1 (no char above 0xFF), as HTTP/2 field names and gRPC metadata are.
    /// </summary>
    /// <exception cref="ArgumentException">The name is empty or has an upper-case letter, or a char is above 0xFF.</exception>
    public static void Encode(IBufferWriter<byte> output, string name, string value)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(value);
        if (name.Length == 0)
        {
            throw new ArgumentException("a header name must not be empty", nameof(name));
        }

        foreach (var c in name)
        {
            if (c is >= 'A' and <= 'Z')
            {
                throw new ArgumentException($"header name '{name}' must be lower case", nameof(name));
            }
        }

        CheckLatin1(name, nameof(name));
        CheckLatin1(value, nameof(value));

        if (HpackStaticTable.TryFind(name, value, out var index, out var valueMatches) && valueMatches)
        {
            // Indexed header field (RFC 7541 6.1).
            WriteInteger(output, index, 7, 0x80);
            return;
        }

        // Literal header field without indexing (RFC 7541 6.2.2): indexed name, or a new name (index 0).
        WriteInteger(output, index, 4, 0x00);
        if (index == 0)
        {
            WriteString(output, name);
        }

        WriteString(output, value);
    }

    private static void CheckLatin1(string s, string paramName)
    {
        foreach (var c in s)
        {
            if (c > '\u00FF')
            {
                throw new ArgumentException($"header {paramName} has the char U+{(int)c:X4}, which is not Latin-1", paramName);
            }
        }
    }

    /// <summary>Writes an integer with an N-bit prefix (RFC 7541 5.1); <paramref name="flags"/> fills the bits above the prefix.</summary>
    private static void WriteInteger(IBufferWriter<byte> output, int value, int prefixBits, byte flags)
    {
        var span = output.GetSpan(6); // a prefix byte plus at most 5 continuation bytes for an int
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            span[0] = (byte)(flags | value);
            output.Advance(1);
            return;
        }

        span[0] = (byte)(flags | max);
        var n = 1;
        var rest = value - max;
        while (rest >= 0x80)
        {
            span[n++] = (byte)(0x80 | (rest & 0x7F));
            rest >>= 7;
        }

        span[n++] = (byte)rest;
        output.Advance(n);
    }

    /// <summary>Writes a string literal (RFC 7541 5.2) raw, H bit clear; the chars were checked to be Latin-1.</summary>
    private static void WriteString(IBufferWriter<byte> output, string s)
    {
        WriteInteger(output, s.Length, 7, 0x00);
        if (s.Length == 0)
        {
            return;
        }

        var span = output.GetSpan(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            span[i] = (byte)s[i];
        }

        output.Advance(s.Length);
    }
}

/// <summary>
/// HPACK (RFC 7541) decoder for the header blocks of one HTTP/2 connection: dynamic table, Huffman-coded strings,
/// and the limits we advertise in SETTINGS_HEADER_TABLE_SIZE and SETTINGS_MAX_HEADER_LIST_SIZE.
/// </summary>
internal sealed class HpackDecoder
{
    private const int EntryOverhead = 32; // RFC 7541 4.1

    private readonly int _maxTableSize;
    private readonly int _maxHeaderListSize;
    private readonly DynamicTable _table;

    /// <summary>Creates a decoder.</summary>
    /// <param name="maxTableSize">
    /// The SETTINGS_HEADER_TABLE_SIZE we advertise: the dynamic table starts at this size, and a dynamic table size
    /// update above it is an error.
    /// </param>
    /// <param name="maxHeaderListSize">
    /// The largest header list accepted in one block, counted as in RFC 7540 6.5.2 (name and value lengths plus 32
    /// per field).
    /// </param>
    public HpackDecoder(int maxTableSize = 4096, int maxHeaderListSize = 64 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxTableSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxHeaderListSize);
        _maxTableSize = maxTableSize;
        _maxHeaderListSize = maxHeaderListSize;
        _table = new DynamicTable(maxTableSize);
    }

    /// <summary>The dynamic table's current size in bytes (RFC 7541 4.1).</summary>
    public int DynamicTableSize => _table.Size;

    /// <summary>The dynamic table's current maximum size, as last set by a size update.</summary>
    public int DynamicTableMaxSize => _table.MaxSize;

    /// <summary>The dynamic table's entries, newest (HPACK index 62) first; for tests and diagnostics.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> GetDynamicTable()
    {
        var entries = new List<KeyValuePair<string, string>>(_table.Count);
        for (var i = 1; i <= _table.Count; i++)
        {
            entries.Add(_table[i]);
        }

        return entries;
    }

    /// <summary>
    /// Decodes one complete header block (a HEADERS fragment and its CONTINUATION fragments, concatenated) and
    /// appends its fields, in order, to <paramref name="headers"/>. Returns false when the header list is
    /// larger than the decoder's limit: the fields past it are dropped, but the whole block is still decoded,
    /// so the dynamic table stays in step with the peer's and only that one stream needs to fail
    /// (RFC 9113 section 10.5.1).
    /// </summary>
    /// <exception cref="HpackException">
    /// The block is malformed or exceeds the table's limit. The decoder's state is then undefined: the
    /// connection must be closed with COMPRESSION_ERROR.
    /// </exception>
    public bool Decode(ReadOnlySpan<byte> block, List<KeyValuePair<string, string>> headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        var pos = 0;
        var sawField = false;
        long listSize = 0;
        while (pos < block.Length)
        {
            var first = block[pos];
            KeyValuePair<string, string> field;
            if ((first & 0x80) != 0)
            {
                // Indexed header field (6.1): 1xxxxxxx.
                field = Lookup(ReadInteger(block, ref pos, 7));
            }
            else if ((first & 0xC0) == 0x40)
            {
                // Literal header field with incremental indexing (6.2.1): 01xxxxxx.
                field = ReadLiteral(block, ref pos, 6);
                _table.Add(field);
            }
            else if ((first & 0xE0) == 0x20)
            {
                // Dynamic table size update (6.3): 001xxxxx, only before the block's first field (4.2).
                if (sawField)
                {
                    throw new HpackException("a dynamic table size update must come before the header block's first field");
                }

                var size = ReadInteger(block, ref pos, 5);
                if (size > _maxTableSize)
                {
                    throw new HpackException($"dynamic table size update to {size} is above the advertised limit {_maxTableSize}");
                }

                _table.SetMaxSize(size);
                continue;
            }
            else
            {
                // Literal header field without indexing (6.2.2, 0000xxxx) or never indexed (6.2.3, 0001xxxx).
                field = ReadLiteral(block, ref pos, 4);
            }

            sawField = true;
            listSize += field.Key.Length + field.Value.Length + EntryOverhead;
            if (listSize <= _maxHeaderListSize)
            {
                headers.Add(field);
            }
        }

        return listSize <= _maxHeaderListSize;
    }

    /// <summary>The header list size this decoder accepts (SETTINGS_MAX_HEADER_LIST_SIZE).</summary>
    public int MaxHeaderListSize => _maxHeaderListSize;

    private KeyValuePair<string, string> ReadLiteral(ReadOnlySpan<byte> block, ref int pos, int prefixBits)
    {
        var index = ReadInteger(block, ref pos, prefixBits);
        var name = index == 0 ? ReadString(block, ref pos) : Lookup(index).Key;
        var value = ReadString(block, ref pos);
        return new KeyValuePair<string, string>(name, value);
    }

    private KeyValuePair<string, string> Lookup(int index)
    {
        if (index == 0)
        {
            throw new HpackException("index 0 is not a valid table index");
        }

        if (index <= HpackStaticTable.Count)
        {
            return HpackStaticTable.Get(index);
        }

        var dynamicIndex = index - HpackStaticTable.Count;
        if (dynamicIndex > _table.Count)
        {
            throw new HpackException($"index {index} is outside the static and dynamic tables");
        }

        return _table[dynamicIndex];
    }

    /// <summary>Reads an integer with an N-bit prefix (RFC 7541 5.1), rejecting values that do not fit an int.</summary>
    private static int ReadInteger(ReadOnlySpan<byte> block, ref int pos, int prefixBits)
    {
        var max = (1 << prefixBits) - 1;
        var value = block[pos++] & max;
        if (value < max)
        {
            return value;
        }

        long result = value;
        for (var shift = 0; shift <= 28; shift += 7)
        {
            if (pos >= block.Length)
            {
                throw new HpackException("the header block ends inside an integer");
            }

            var b = block[pos++];
            result += (long)(b & 0x7F) << shift;
            if (result > int.MaxValue)
            {
                throw new HpackException("an integer in the header block overflows a 32-bit int");
            }

            if ((b & 0x80) == 0)
            {
                return (int)result;
            }
        }

        throw new HpackException("an integer in the header block has more than 5 continuation bytes");
    }

    /// <summary>Reads a string literal (RFC 7541 5.2), Huffman-coded or raw, as Latin-1.</summary>
    private static string ReadString(ReadOnlySpan<byte> block, ref int pos)
    {
        if (pos >= block.Length)
        {
            throw new HpackException("the header block ends before a string literal");
        }

        var huffman = (block[pos] & 0x80) != 0;
        var length = ReadInteger(block, ref pos, 7);
        if (length > block.Length - pos)
        {
            throw new HpackException($"a string literal of {length} bytes runs past the end of the header block");
        }

        var bytes = block.Slice(pos, length);
        pos += length;
        return huffman ? Encoding.Latin1.GetString(HpackHuffman.Decode(bytes)) : Encoding.Latin1.GetString(bytes);
    }

    /// <summary>
    /// The dynamic table (RFC 7541 2.3.2, 4): a ring buffer of entries, HPACK index 1 being the newest. Every entry
    /// costs at least 32 bytes, so maxTableSize / 32 slots always suffice.
    /// </summary>
    private sealed class DynamicTable(int maxTableSize)
    {
        private readonly KeyValuePair<string, string>[] _entries = new KeyValuePair<string, string>[(maxTableSize / EntryOverhead) + 1];
        private int _newest = -1;

        public int Count { get; private set; }

        public int Size { get; private set; }

        public int MaxSize { get; private set; } = maxTableSize;

        /// <summary>The entry at 1-based dynamic index <paramref name="index"/> (1 = newest).</summary>
        public KeyValuePair<string, string> this[int index] => _entries[Slot(index)];

        public void Add(KeyValuePair<string, string> entry)
        {
            var entrySize = EntrySize(entry);
            while (Count > 0 && Size + entrySize > MaxSize)
            {
                EvictOldest();
            }

            if (entrySize > MaxSize)
            {
                return; // an entry larger than the table empties it and is not added (4.4)
            }

            _newest = (_newest + 1) % _entries.Length;
            _entries[_newest] = entry;
            Count++;
            Size += entrySize;
        }

        public void SetMaxSize(int maxSize)
        {
            MaxSize = maxSize;
            while (Size > MaxSize)
            {
                EvictOldest();
            }
        }

        private static int EntrySize(KeyValuePair<string, string> entry) => entry.Key.Length + entry.Value.Length + EntryOverhead;

        private int Slot(int index) => (_newest - (index - 1) + _entries.Length) % _entries.Length;

        private void EvictOldest()
        {
            var slot = Slot(Count);
            Size -= EntrySize(_entries[slot]);
            _entries[slot] = default;
            Count--;
        }
    }
}

/// <summary>A malformed or over-limit HPACK header block; the connection must end with COMPRESSION_ERROR.</summary>
internal sealed class HpackException(string message) : Exception(message);

/// <summary>The HPACK static table (RFC 7541 Appendix A), indices 1 to 61.</summary>
internal static class HpackStaticTable
{
    private static readonly KeyValuePair<string, string>[] Entries =
    [
        new(":authority", ""), // 1
        new(":method", "GET"),
        new(":method", "POST"),
        new(":path", "/"),
        new(":path", "/index.html"), // 5
        new(":scheme", "http"),
        new(":scheme", "https"),
        new(":status", "200"),
        new(":status", "204"),
        new(":status", "206"), // 10
        new(":status", "304"),
        new(":status", "400"),
        new(":status", "404"),
        new(":status", "500"),
        new("accept-charset", ""), // 15
        new("accept-encoding", "gzip, deflate"),
        new("accept-language", ""),
        new("accept-ranges", ""),
        new("accept", ""),
        new("access-control-allow-origin", ""), // 20
        new("age", ""),
        new("allow", ""),
        new("authorization", ""),
        new("cache-control", ""),
        new("content-disposition", ""), // 25
        new("content-encoding", ""),
        new("content-language", ""),
        new("content-length", ""),
        new("content-location", ""),
        new("content-range", ""), // 30
        new("content-type", ""),
        new("cookie", ""),
        new("date", ""),
        new("etag", ""),
        new("expect", ""), // 35
        new("expires", ""),
        new("from", ""),
        new("host", ""),
        new("if-match", ""),
        new("if-modified-since", ""), // 40
        new("if-none-match", ""),
        new("if-range", ""),
        new("if-unmodified-since", ""),
        new("last-modified", ""),
        new("link", ""), // 45
        new("location", ""),
        new("max-forwards", ""),
        new("proxy-authenticate", ""),
        new("proxy-authorization", ""),
        new("range", ""), // 50
        new("referer", ""),
        new("refresh", ""),
        new("retry-after", ""),
        new("server", ""),
        new("set-cookie", ""), // 55
        new("strict-transport-security", ""),
        new("transfer-encoding", ""),
        new("user-agent", ""),
        new("vary", ""),
        new("via", ""), // 60
        new("www-authenticate", ""),
    ];

    private static readonly Dictionary<string, int> IndexByName = BuildIndexByName();
    private static readonly Dictionary<(string Name, string Value), int> IndexByField = BuildIndexByField();

    /// <summary>The number of static entries (61).</summary>
    public static int Count => Entries.Length;

    /// <summary>The entry at 1-based <paramref name="index"/>.</summary>
    public static KeyValuePair<string, string> Get(int index) => Entries[index - 1];

    /// <summary>
    /// Finds the lowest index whose name and value match (<paramref name="valueMatches"/> true), else the lowest
    /// index whose name matches; returns false (index 0) when the name is not in the table.
    /// </summary>
    public static bool TryFind(string name, string value, out int index, out bool valueMatches)
    {
        if (IndexByField.TryGetValue((name, value), out index))
        {
            valueMatches = true;
            return true;
        }

        valueMatches = false;
        return IndexByName.TryGetValue(name, out index);
    }

    private static Dictionary<string, int> BuildIndexByName()
    {
        var map = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < Entries.Length; i++)
        {
            map.TryAdd(Entries[i].Key, i + 1);
        }

        return map;
    }

    private static Dictionary<(string Name, string Value), int> BuildIndexByField()
    {
        var map = new Dictionary<(string Name, string Value), int>();
        for (var i = 0; i < Entries.Length; i++)
        {
            map.TryAdd((Entries[i].Key, Entries[i].Value), i + 1);
        }

        return map;
    }
}

/// <summary>
/// The HPACK Huffman code (RFC 7541 Appendix B). The code is canonical (within each length, codes are consecutive
/// in symbol order), so decoding walks the input bit by bit and, at each code length, checks whether the bits read
/// so far fall in that length's range of codes.
/// </summary>
internal static class HpackHuffman
{
    private const int Eos = 256;
    private const int MaxCodeLength = 30;

    /// <summary>The code of each symbol 0-255 and EOS (256), right-aligned.</summary>
    private static readonly uint[] Codes =
    [
        0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7,  // 0-7
        0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec,  // 8-15
        0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3,  // 16-23
        0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb,  // 24-31
        0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa,  // 32-39
        0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,  // 40-47
        0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,  // 48-55
        0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc,  // 56-63
        0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62,  // 64-71
        0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,  // 72-79
        0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72,  // 80-87
        0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22,  // 88-95
        0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26,  // 96-103
        0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7,  // 104-111
        0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78,  // 112-119
        0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc,  // 120-127
        0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9,  // 128-135
        0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf,  // 136-143
        0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,  // 144-151
        0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef,  // 152-159
        0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde,  // 160-167
        0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec,  // 168-175
        0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef,  // 176-183
        0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1,  // 184-191
        0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec,  // 192-199
        0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed,  // 200-207
        0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2,  // 208-215
        0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5,  // 216-223
        0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,  // 224-231
        0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4,  // 232-239
        0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea,  // 240-247
        0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,  // 248-255
        0x3fffffff, // 256 (EOS)
    ];

    /// <summary>The bit length of each symbol's code.</summary>
    private static readonly byte[] Lengths =
    [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0-15
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16-31
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 32-47
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 48-63
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 64-79
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 80-95
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 96-111
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 112-127
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128-143
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144-159
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160-175
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176-191
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192-207
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208-223
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224-239
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240-255
        30, // 256 (EOS)
    ];

    // For each code length: the first (smallest) code, how many codes, and where they start in SymbolsByCode.
    private static readonly uint[] FirstCode = new uint[MaxCodeLength + 1];
    private static readonly int[] CodeCount = new int[MaxCodeLength + 1];
    private static readonly int[] FirstSymbol = new int[MaxCodeLength + 1];
    private static readonly int[] SymbolsByCode = BuildDecodingTables();

    /// <summary>
    /// Decodes a Huffman-coded string literal.
    /// </summary>
    /// <exception cref="HpackException">
    /// The input contains EOS, or ends with padding longer than 7 bits or not made of 1 bits (RFC 7541 5.2).
    /// </exception>
    public static byte[] Decode(ReadOnlySpan<byte> source)
    {
        // The shortest code has 5 bits, so the output has at most source.Length * 8 / 5 bytes.
        var output = new byte[(source.Length * 8 / 5) + 1];
        var count = 0;
        uint code = 0;
        var length = 0;
        foreach (var b in source)
        {
            for (var bit = 7; bit >= 0; bit--)
            {
                code = (code << 1) | (uint)((b >> bit) & 1);
                length++;
                var offset = code - FirstCode[length];
                if (offset < (uint)CodeCount[length])
                {
                    var symbol = SymbolsByCode[FirstSymbol[length] + (int)offset];
                    if (symbol == Eos)
                    {
                        throw new HpackException("a Huffman-coded string contains EOS");
                    }

                    output[count++] = (byte)symbol;
                    code = 0;
                    length = 0;
                }
                else if (length == MaxCodeLength)
                {
                    // Unreachable while the code table is complete; guards against a bad table.
                    throw new HpackException("a Huffman-coded string has an invalid code");
                }
            }
        }

        if (length > 7)
        {
            throw new HpackException($"a Huffman-coded string ends with {length} bits of padding (at most 7 are allowed)");
        }

        if (code != (1u << length) - 1)
        {
            throw new HpackException("a Huffman-coded string's padding is not all 1 bits");
        }

        return output.AsSpan(0, count).ToArray();
    }

    /// <summary>Huffman-codes <paramref name="source"/>, padding the last byte with 1 bits.</summary>
    public static byte[] Encode(ReadOnlySpan<byte> source)
    {
        long bitCount = 0;
        foreach (var b in source)
        {
            bitCount += Lengths[b];
        }

        var output = new byte[(bitCount + 7) / 8];
        var n = 0;
        ulong pending = 0; // at most 7 + 30 bits are pending at any time
        var pendingBits = 0;
        foreach (var b in source)
        {
            pending = (pending << Lengths[b]) | Codes[b];
            pendingBits += Lengths[b];
            while (pendingBits >= 8)
            {
                pendingBits -= 8;
                output[n++] = (byte)(pending >> pendingBits);
            }

            pending &= (1UL << pendingBits) - 1;
        }

        if (pendingBits > 0)
        {
            var padBits = 8 - pendingBits;
            output[n] = (byte)((pending << padBits) | ((1UL << padBits) - 1));
        }

        return output;
    }

    /// <summary>Fills the per-length tables from <see cref="Codes"/> and checks that the code is canonical.</summary>
    private static int[] BuildDecodingTables()
    {
        var symbols = Enumerable.Range(0, Codes.Length).OrderBy(s => Lengths[s]).ThenBy(s => Codes[s]).ToArray();
        for (var i = 0; i < symbols.Length; i++)
        {
            var symbol = symbols[i];
            int length = Lengths[symbol];
            if (CodeCount[length] == 0)
            {
                FirstCode[length] = Codes[symbol];
                FirstSymbol[length] = i;
            }
            else if (Codes[symbol] != FirstCode[length] + (uint)CodeCount[length])
            {
                throw new InvalidOperationException($"the Huffman codes of length {length} are not consecutive");
            }

            CodeCount[length]++;
        }

        return symbols;
    }
}
