namespace Sluice.Protocol.Hashing;

/// <summary>
/// CRC-32 with the IEEE 802.3 polynomial (reflected 0xEDB88320), the checksum Go's
/// <c>crc32.ChecksumIEEE</c> computes. Liftbridge uses it to partition by key and to place cursors,
/// so the client and the server must both produce the very same numbers: one implementation serves both.
/// </summary>
public static class Crc32Ieee
{
    private static readonly uint[] Table = CreateTable();

    /// <summary>The CRC of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return ~crc;
    }

    /// <summary>The CRC of the UTF-8 bytes of <paramref name="text"/>.</summary>
    public static uint Compute(string text)
    {
        var max = System.Text.Encoding.UTF8.GetMaxByteCount(text.Length);
        Span<byte> stack = stackalloc byte[256]; // cursor keys and stream names are short; longer ones rent
        byte[]? rented = null;
        var buffer = max <= stack.Length ? stack : (rented = System.Buffers.ArrayPool<byte>.Shared.Rent(max));
        try
        {
            var length = System.Text.Encoding.UTF8.GetBytes(text, buffer);
            return Compute(buffer[..length]);
        }
        finally
        {
            if (rented is not null)
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private static uint[] CreateTable()
    {
        var table = new uint[256];
        for (var i = 0u; i < 256; i++)
        {
            var c = i;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }

            table[i] = c;
        }

        return table;
    }
}
