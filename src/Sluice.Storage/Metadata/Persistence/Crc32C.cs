using System.Buffers.Binary;
using System.Numerics;

namespace Sluice.Storage.Metadata.Persistence;

/// <summary>CRC-32C (Castagnoli) on the CPU's CRC instructions when present.</summary>
internal static class Crc32C
{
    /// <summary>Starting state for an incremental CRC.</summary>
    public const uint Seed = 0xFFFFFFFFu;

    public static uint Compute(ReadOnlySpan<byte> data) => Finish(Append(Seed, data));

    public static uint Finish(uint state) => ~state;

    public static uint Append(uint state, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            state = BitOperations.Crc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }

        foreach (var b in data)
        {
            state = BitOperations.Crc32C(state, b);
        }

        return state;
    }

    public static uint Append(uint state, long value) => BitOperations.Crc32C(state, (ulong)value);
}
