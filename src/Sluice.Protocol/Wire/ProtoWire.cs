namespace Sluice.Protocol.Wire;

/// <summary>
/// Protobuf wire-format primitives for the hand-written readers of hot messages (<see cref="WireMessage"/>,
/// <see cref="WirePublishResponse"/>). Errors are <see cref="InvalidDataException"/>s whose texts say what was wrong.
/// </summary>
public static class ProtoWire
{
    /// <summary>Checks that <paramref name="message"/> is a well-formed encoding of some message (every field skipped).</summary>
    public static void CheckMessage(ReadOnlySpan<byte> message)
    {
        var position = 0;
        while (position < message.Length)
        {
            Skip(message, ref position, ReadTag(message, ref position));
        }
    }

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
