using Google.Protobuf;
using Sluice.TestKit;

namespace Sluice.Protocol.Tests.Wire;

/// <summary>Which of a message type's fields 1..<paramref name="KnownFields"/> are length-delimited, and one that is a varint.</summary>
internal sealed record WireShape(int KnownFields, int[] LengthDelimitedFields, int VarintField);

/// <summary>Noise the wire-reader tests mix into valid encodings.</summary>
internal static class WireFuzz
{
    /// <summary>
    /// <paramref name="message"/> encoded once or twice in a row (a reader must merge the copies as
    /// protobuf does), with fields from <see cref="WriteUnknownField"/> sometimes before each copy and after the last.
    /// </summary>
    public static byte[] EncodeWithNoise(IMessage message, Random random, WireShape shape)
    {
        using var output = new MemoryStream();
        var coded = new CodedOutputStream(output);
        for (var part = random.Next(1, 3); part > 0; part--)
        {
            if (random.Next(2) == 0)
            {
                WriteUnknownField(coded, random, shape);
            }

            message.WriteTo(coded);
        }

        if (random.Next(2) == 0)
        {
            WriteUnknownField(coded, random, shape);
        }

        coded.Flush();
        return output.ToArray();
    }

    /// <summary>
    /// Writes a field the reader must skip or read exactly as protobuf does: an unknown field number,
    /// or a known one with any wire type. A length-delimited value aimed at a known length-delimited
    /// field goes to the shape's varint field instead, where it has the wrong wire type and is skipped.
    /// </summary>
    public static void WriteUnknownField(CodedOutputStream coded, Random random, WireShape shape)
    {
        var field = random.Next(2) == 0 ? random.Next(shape.KnownFields + 1, 2000) : random.Next(1, shape.KnownFields + 1);
        switch (random.Next(5))
        {
            case 0:
                coded.WriteTag(field, WireFormat.WireType.Varint);
                coded.WriteUInt64((ulong)random.NextInt64());
                break;
            case 1:
                coded.WriteTag(field, WireFormat.WireType.Fixed64);
                coded.WriteFixed64((ulong)random.NextInt64());
                break;
            case 2:
                coded.WriteTag(field, WireFormat.WireType.Fixed32);
                coded.WriteFixed32((uint)random.Next());
                break;
            case 3:
                coded.WriteTag(field, WireFormat.WireType.StartGroup);
                coded.WriteTag(field + 1, WireFormat.WireType.Varint);
                coded.WriteUInt64(5);
                coded.WriteTag(field, WireFormat.WireType.EndGroup);
                break;
            default:
                if (shape.LengthDelimitedFields.Contains(field))
                {
                    field = shape.VarintField;
                }

                coded.WriteTag(field, WireFormat.WireType.LengthDelimited);
                coded.WriteBytes(ByteString.CopyFrom(RandomData.Bytes(random, 12)));
                break;
        }
    }

    /// <summary>
    /// Google.Protobuf and a wire reader agree on <paramref name="bytes"/>: both refuse them (the reader
    /// with <see cref="InvalidDataException"/>), or both read them and <paramref name="compare"/> passes.
    /// </summary>
    public static void Agree<TExpected, TWire>(byte[] bytes, Func<byte[], TExpected> google, Func<byte[], TWire> wire, Action<TExpected, TWire> compare)
    {
        TExpected expected;
        try
        {
            expected = google(bytes);
        }
        catch (InvalidProtocolBufferException)
        {
            Assert.Throws<InvalidDataException>(() => wire(bytes));
            return;
        }

        compare(expected, wire(bytes));
    }

    /// <summary>Each encoding, cut at every length, then with 1-3 random bytes changed, given to <paramref name="check"/>.</summary>
    public static void TruncateAndDamage(Func<Random, byte[]> encode, Action<byte[]> check, int seed, int truncationRounds, int damageRounds)
    {
        var random = new Random(seed);
        for (var round = 0; round < truncationRounds; round++)
        {
            var bytes = encode(random);
            for (var cut = 0; cut < bytes.Length; cut++)
            {
                check(bytes[..cut]);
            }
        }

        for (var round = 0; round < damageRounds; round++)
        {
            var bytes = encode(random);
            if (bytes.Length == 0)
            {
                continue;
            }

            for (var flips = random.Next(1, 4); flips > 0; flips--)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            }

            check(bytes);
        }
    }
}
