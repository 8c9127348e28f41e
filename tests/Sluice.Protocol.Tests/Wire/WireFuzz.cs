using Google.Protobuf;
using Sluice.TestKit;

namespace Sluice.Protocol.Tests.Wire;

/// <summary>Noise the wire-reader tests mix into valid encodings.</summary>
internal static class WireFuzz
{
    /// <summary>
    /// Writes a field the reader must skip or read exactly as protobuf does: an unknown field number,
    /// or a known one (1..<paramref name="knownFields"/>) with any wire type. A length-delimited
    /// value aimed at a known length-delimited field goes to <paramref name="varintField"/> instead,
    /// where it has the wrong wire type and is skipped.
    /// </summary>
    public static void WriteUnknownField(CodedOutputStream coded, Random random, int knownFields, int[] lengthDelimitedFields, int varintField)
    {
        var field = random.Next(2) == 0 ? random.Next(knownFields + 1, 2000) : random.Next(1, knownFields + 1);
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
                if (lengthDelimitedFields.Contains(field))
                {
                    field = varintField;
                }

                coded.WriteTag(field, WireFormat.WireType.LengthDelimited);
                coded.WriteBytes(ByteString.CopyFrom(RandomData.Bytes(random, 12)));
                break;
        }
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
