using System.Numerics;
using System.Text;

namespace Sluice.Protocol.Wire;

/// <summary>
/// Protobuf wire-format primitives for the hand-written readers and writers of hot messages
/// (<see cref="WireMessage"/>, <see cref="WirePublishResponse"/>, the server's subscription frames,
/// the client's publish frames). Read errors are <see cref="InvalidDataException"/>s whose texts
/// say what was wrong. Writers leave out default values, as protobuf encoders do.
/// </summary>
public static class ProtoWire
{
    /// <summary>Bytes of a base-128 varint (negative int32/int64 values are 10).</summary>
    public static int VarintSize(ulong value) => value == 0 ? 1 : ((63 - BitOperations.LeadingZeroCount(value)) / 7) + 1;

    /// <summary>Size of a varint field (tag of one byte) holding <paramref name="value"/>; 0 for the default 0.</summary>
    public static int VarintFieldSize(long value) => value == 0 ? 0 : 1 + VarintSize((ulong)value);

    /// <summary>Size of a bytes or string field (tag of one byte) of <paramref name="length"/> bytes; 0 when empty.</summary>
    public static int BytesFieldSize(int length) => length == 0 ? 0 : LengthDelimitedSize(length);

    /// <summary>Size of a length-delimited field (tag of one byte) written even when empty, as map entries are.</summary>
    public static int LengthDelimitedSize(int length) => 1 + VarintSize((uint)length) + length;

    public static void WriteVarint(Span<byte> destination, ref int position, ulong value)
    {
        while (value >= 0x80)
        {
            destination[position++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[position++] = (byte)value;
    }

    /// <summary>A varint field (field numbers 1-15); nothing for the default 0.</summary>
    public static void WriteVarintField(Span<byte> destination, ref int position, int field, long value)
    {
        if (value != 0)
        {
            destination[position++] = (byte)(field << 3);
            WriteVarint(destination, ref position, (ulong)value);
        }
    }

    /// <summary>A bytes field (field numbers 1-15); nothing when empty unless <paramref name="always"/>.</summary>
    public static void WriteBytesField(Span<byte> destination, ref int position, int field, ReadOnlySpan<byte> bytes, bool always = false)
    {
        if (bytes.IsEmpty && !always)
        {
            return;
        }

        destination[position++] = (byte)((field << 3) | 2);
        WriteVarint(destination, ref position, (uint)bytes.Length);
        bytes.CopyTo(destination[position..]);
        position += bytes.Length;
    }

    /// <summary>Size of a <c>map&lt;string, bytes&gt;</c> entry's body (key and value are always written).</summary>
    public static int MapEntrySize(int nameUtf8Length, int valueLength) => LengthDelimitedSize(nameUtf8Length) + LengthDelimitedSize(valueLength);

    /// <summary>One entry of a <c>map&lt;string, bytes&gt;</c> field (field numbers 1-15).</summary>
    public static void WriteMapEntry(Span<byte> destination, ref int position, int field, string name, int nameUtf8Length, ReadOnlySpan<byte> value)
    {
        destination[position++] = (byte)((field << 3) | 2);
        WriteVarint(destination, ref position, (uint)MapEntrySize(nameUtf8Length, value.Length));
        WriteStringField(destination, ref position, 1, name, nameUtf8Length, always: true);
        WriteBytesField(destination, ref position, 2, value, always: true);
    }

    /// <summary>A string field (field numbers 1-15) of <paramref name="utf8Length"/> bytes, encoded straight into <paramref name="destination"/>.</summary>
    public static void WriteStringField(Span<byte> destination, ref int position, int field, string text, int utf8Length, bool always = false)
    {
        if (utf8Length == 0 && !always)
        {
            return;
        }

        destination[position++] = (byte)((field << 3) | 2);
        WriteVarint(destination, ref position, (uint)utf8Length);
        position += Encoding.UTF8.GetBytes(text, destination[position..]);
    }

    /// <summary>
    /// Reads the <c>map&lt;string, bytes&gt;</c> field with tag <paramref name="mapTag"/> from a message
    /// already checked by its reader: names decoded, values viewing <paramref name="buffer"/>. As
    /// protobuf: a missing key or value is empty, and the last value of a repeated name wins (in
    /// the name's first position).
    /// </summary>
    public static Dictionary<string, ReadOnlyMemory<byte>> ReadStringBytesMap(byte[] buffer, int start, int length, uint mapTag, int entries)
    {
        const uint EntryKeyTag = (1 << 3) | 2;
        const uint EntryValueTag = (2 << 3) | 2;
        var map = new Dictionary<string, ReadOnlyMemory<byte>>(entries, StringComparer.Ordinal);
        if (entries == 0)
        {
            return map;
        }

        var data = new ReadOnlySpan<byte>(buffer, start, length);
        var position = 0;
        while (position < data.Length)
        {
            var tag = ReadTag(data, ref position);
            if (tag != mapTag)
            {
                Skip(data, ref position, tag);
                continue;
            }

            var entry = ReadLengthDelimited(data, ref position);
            var entryData = data.Slice(entry.Start, entry.Length);
            (int Start, int Length) name = default;
            (int Start, int Length) value = default;
            var at = 0;
            while (at < entryData.Length)
            {
                var entryTag = ReadTag(entryData, ref at);
                if (entryTag == EntryKeyTag)
                {
                    name = ReadLengthDelimited(entryData, ref at);
                }
                else if (entryTag == EntryValueTag)
                {
                    value = ReadLengthDelimited(entryData, ref at);
                }
                else
                {
                    Skip(entryData, ref at, entryTag, inEntry: true);
                }
            }

            var key = name.Length == 0 ? string.Empty : System.Text.Encoding.UTF8.GetString(buffer, start + entry.Start + name.Start, name.Length);
            map[key] = value.Length == 0 ? ReadOnlyMemory<byte>.Empty : new ReadOnlyMemory<byte>(buffer, start + entry.Start + value.Start, value.Length);
        }

        return map;
    }

    /// <summary>A field read by <see cref="ReadLengthDelimited"/> from a message at <paramref name="start"/> of <paramref name="buffer"/>, as a view of the buffer.</summary>
    public static ReadOnlyMemory<byte> View(byte[] buffer, int start, (int Start, int Length) field) =>
        field.Length == 0 ? ReadOnlyMemory<byte>.Empty : new ReadOnlyMemory<byte>(buffer, start + field.Start, field.Length);

    /// <summary>
    /// Reads a length-delimited string field: as <see cref="ReadLengthDelimited"/>, and the bytes must be
    /// valid UTF-8. proto3 requires it and Google.Protobuf (since 3.26), Go's protobuf and upb refuse the
    /// whole message otherwise; refusing here keeps every path of a peer's message agreeing with them.
    /// </summary>
    public static (int Start, int Length) ReadString(ReadOnlySpan<byte> data, ref int position)
    {
        var field = ReadLengthDelimited(data, ref position);
        CheckUtf8(data.Slice(field.Start, field.Length));
        return field;
    }

    /// <summary>Refuses bytes that are not valid UTF-8, with Google.Protobuf's text.</summary>
    public static void CheckUtf8(ReadOnlySpan<byte> text)
    {
        if (!System.Text.Unicode.Utf8.IsValid(text))
        {
            throw new InvalidDataException("String is invalid UTF-8.");
        }
    }

    /// <summary>Checks a <c>map&lt;string, bytes&gt;</c> entry as Google.Protobuf reads one: well formed, and every key occurrence valid UTF-8.</summary>
    public static void CheckStringKeyEntry(ReadOnlySpan<byte> entry) => CheckMessage(entry, [1], inEntry: true);

    /// <summary>
    /// Checks that <paramref name="message"/> is a well-formed encoding of some message (every field skipped,
    /// <paramref name="inEntry"/> as for <see cref="Skip"/>) whose length-delimited fields numbered in
    /// <paramref name="stringFields"/> (its string fields) are valid UTF-8.
    /// </summary>
    public static void CheckMessage(ReadOnlySpan<byte> message, ReadOnlySpan<int> stringFields = default, bool inEntry = false)
    {
        var position = 0;
        while (position < message.Length)
        {
            var tag = ReadTag(message, ref position);
            if ((tag & 7) == 2 && stringFields.Contains((int)(tag >> 3)))
            {
                ReadString(message, ref position);
            }
            else
            {
                Skip(message, ref position, tag, inEntry);
            }
        }
    }

    /// <summary>The same field decoded as a string (its reader checked that it is valid UTF-8).</summary>
    public static string Text(byte[] buffer, int start, (int Start, int Length) field) =>
        field.Length == 0 ? string.Empty : Encoding.UTF8.GetString(buffer, start + field.Start, field.Length);

    /// <summary>
    /// Bytes for a proto3 string field, which must be valid UTF-8 (Go's protobuf refuses the whole
    /// message otherwise): <paramref name="bytes"/> themselves when valid, else their decoded text
    /// (bad bytes as U+FFFD) encoded again.
    /// </summary>
    public static ReadOnlyMemory<byte> AsValidUtf8(ReadOnlyMemory<byte> bytes) =>
        System.Text.Unicode.Utf8.IsValid(bytes.Span) ? bytes : Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(bytes.Span));

    /// <summary>Reads a field tag; field number 0 is an error.</summary>
    public static uint ReadTag(ReadOnlySpan<byte> data, ref int position)
    {
        var raw = ReadVarint(data, ref position);
        var tag = (uint)raw;
        if (tag >> 3 == 0)
        {
            throw new InvalidDataException("Protocol message contained an invalid tag (zero).");
        }

        return tag;
    }

    /// <summary>A base-128 varint of up to 10 bytes; bits beyond 64 are dropped, as protobuf does.</summary>
    public static ulong ReadVarint(ReadOnlySpan<byte> data, ref int position)
    {
        ulong result = 0;
        for (var shift = 0; shift < 70; shift += 7)
        {
            if (position >= data.Length)
            {
                throw Truncated();
            }

            var b = data[position++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return result;
            }
        }

        throw new InvalidDataException("Protocol message contained a malformed varint (more than 10 bytes).");
    }

    /// <summary>A length-delimited field's bytes: where they start in <paramref name="data"/> and how many.</summary>
    public static (int Start, int Length) ReadLengthDelimited(ReadOnlySpan<byte> data, ref int position)
    {
        var length = (int)(uint)ReadVarint(data, ref position);
        if (length < 0)
        {
            throw new InvalidDataException("Protocol message contained a negative length.");
        }

        if (length > data.Length - position)
        {
            throw Truncated();
        }

        var start = position;
        position += length;
        return (start, length);
    }

    /// <summary>
    /// Skips the field whose tag was just read. Inside a map entry (<paramref name="inEntry"/>)
    /// Google.Protobuf skips nothing for the invalid wire types 6 and 7 instead of failing; so does this.
    /// </summary>
    public static void Skip(ReadOnlySpan<byte> data, ref int position, uint tag, bool inEntry = false, int depth = 0)
    {
        switch (tag & 7)
        {
            case 0:
                ReadVarint(data, ref position);
                break;
            case 1:
                Advance(data, ref position, 8);
                break;
            case 2:
                ReadLengthDelimited(data, ref position);
                break;
            case 5:
                Advance(data, ref position, 4);
                break;
            case 3:
                if (depth >= 100)
                {
                    throw new InvalidDataException("Protocol message had too many levels of nesting.");
                }

                var end = (tag & ~7u) | 4;
                while (true)
                {
                    if (position >= data.Length)
                    {
                        throw Truncated();
                    }

                    var inner = ReadTag(data, ref position);
                    if (inner == end)
                    {
                        return;
                    }

                    if ((inner & 7) == 4)
                    {
                        throw new InvalidDataException("Protocol message contained a mismatched end-group tag.");
                    }

                    Skip(data, ref position, inner, inEntry, depth + 1);
                }

            case 4:
                throw new InvalidDataException("Protocol message contained an end-group tag without a start-group tag.");
            default:
                if (!inEntry)
                {
                    throw new InvalidDataException($"Protocol message contained a tag with an invalid wire type ({tag & 7}).");
                }

                break;
        }
    }

    private static void Advance(ReadOnlySpan<byte> data, ref int position, int count)
    {
        if (count > data.Length - position)
        {
            throw Truncated();
        }

        position += count;
    }

    private static InvalidDataException Truncated() =>
        new("While parsing a protocol message, the input ended unexpectedly in the middle of a field.");
}
