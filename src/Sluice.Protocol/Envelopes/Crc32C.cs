using System.Buffers.Binary;
using System.Numerics;

namespace Sluice.Protocol.Envelopes;

/// <summary>CRC-32C (Castagnoli), as Go's crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)).</summary>
internal static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        // BitOperations.Crc32C works on the raw register (no pre/post inversion), hence the ~ on both ends.
        var crc = ~0u;
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }

        foreach (var b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        return ~crc;
    }
}
