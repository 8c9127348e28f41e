using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Sluice.Server.Encryption;

/// <summary>
/// AES key wrap with padding (RFC 5649): the RFC 3394 wrap over an 8-byte alternative IV
/// (<c>A65959A6 || 32-bit length</c>) and the key padded with zeros to a multiple of 8 bytes.
/// Any AES key size works here; <see cref="MasterKey"/> restricts what the broker accepts.
/// </summary>
internal static class AesKeyWrapPad
{
    private const uint IvPrefix = 0xA65959A6;

    public static byte[] Wrap(ReadOnlySpan<byte> kek, ReadOnlySpan<byte> plaintext)
    {
        if (plaintext.IsEmpty)
        {
            throw new ArgumentException("cannot wrap an empty key", nameof(plaintext));
        }

        var n = (plaintext.Length + 7) / 8; // 64-bit blocks of padded plaintext
        var output = new byte[8 * (n + 1)];
        BinaryPrimitives.WriteUInt32BigEndian(output, IvPrefix);
        BinaryPrimitives.WriteUInt32BigEndian(output.AsSpan(4), (uint)plaintext.Length);
        plaintext.CopyTo(output.AsSpan(8)); // the padding stays zero

        using var aes = Aes.Create();
        aes.Key = kek.ToArray();
        if (n == 1)
        {
            aes.EncryptEcb(output, output, PaddingMode.None); // one block: AIV || P
            return output;
        }

        Span<byte> block = stackalloc byte[16];
        var a = output.AsSpan(0, 8);
        for (var j = 0; j < 6; j++)
        {
            for (var i = 1; i <= n; i++)
            {
                var r = output.AsSpan(8 * i, 8);
                a.CopyTo(block);
                r.CopyTo(block[8..]);
                aes.EncryptEcb(block, block, PaddingMode.None);
                var t = (ulong)(n * j + i);
                BinaryPrimitives.WriteUInt64BigEndian(a, BinaryPrimitives.ReadUInt64BigEndian(block) ^ t);
                block[8..].CopyTo(r);
            }
        }

        return output;
    }

    public static byte[] Unwrap(ReadOnlySpan<byte> kek, ReadOnlySpan<byte> wrapped)
    {
        if (wrapped.Length < 16 || wrapped.Length % 8 != 0)
        {
            throw new CryptographicException($"wrapped key has an invalid length {wrapped.Length}");
        }

        var n = wrapped.Length / 8 - 1;
        var buffer = wrapped.ToArray();
        using var aes = Aes.Create();
        aes.Key = kek.ToArray();
        if (n == 1)
        {
            aes.DecryptEcb(buffer, buffer, PaddingMode.None);
        }
        else
        {
            Span<byte> block = stackalloc byte[16];
            var a = buffer.AsSpan(0, 8);
            for (var j = 5; j >= 0; j--)
            {
                for (var i = n; i >= 1; i--)
                {
                    var r = buffer.AsSpan(8 * i, 8);
                    var t = (ulong)(n * j + i);
                    BinaryPrimitives.WriteUInt64BigEndian(block, BinaryPrimitives.ReadUInt64BigEndian(a) ^ t);
                    r.CopyTo(block[8..]);
                    aes.DecryptEcb(block, block, PaddingMode.None);
                    block[..8].CopyTo(a);
                    block[8..].CopyTo(r);
                }
            }
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(4));
        var valid = BinaryPrimitives.ReadUInt32BigEndian(buffer) == IvPrefix
            && length > 8 * (uint)(n - 1) && length <= 8 * (uint)n
            && !buffer.AsSpan(8 + (int)length).ContainsAnyExcept((byte)0);
        if (!valid)
        {
            CryptographicOperations.ZeroMemory(buffer);
            throw new CryptographicException("key unwrap failed: integrity check");
        }

        var key = buffer.AsSpan(8, (int)length).ToArray();
        CryptographicOperations.ZeroMemory(buffer);
        return key;
    }
}
