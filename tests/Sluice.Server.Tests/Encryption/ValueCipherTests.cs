using System.Security.Cryptography;
using System.Text;
using Sluice.Server.Encryption;

namespace Sluice.Server.Tests.Encryption;

public sealed class ValueCipherTests
{
    private static readonly byte[] MasterKey16 = Encoding.UTF8.GetBytes("0123456789abcdef");

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(5000)]
    public void Seal_then_open_round_trips_with_the_documented_layout(int size)
    {
        using var cipher = new ValueCipher(MasterKey16);
        var plaintext = RandomNumberGenerator.GetBytes(size);
        var sealedValue = cipher.Seal(plaintext);
        Assert.Equal(40, sealedValue[0]); // RFC 5649 wrap of a 32-byte key
        Assert.Equal(1 + 40 + ValueCipher.NonceSize + size + ValueCipher.TagSize, sealedValue.Length);
        Assert.Equal(plaintext, cipher.Open(sealedValue));
    }

    [Fact]
    public void One_data_key_per_cipher_and_a_fresh_nonce_per_value()
    {
        using var cipher = new ValueCipher(MasterKey16);
        var a = cipher.Seal("same"u8);
        var b = cipher.Seal("same"u8);
        Assert.Equal(a.AsSpan(0, 41).ToArray(), b.AsSpan(0, 41).ToArray());
        Assert.NotEqual(a.AsSpan(41, 12).ToArray(), b.AsSpan(41, 12).ToArray());
    }

    [Fact]
    public void Another_cipher_with_the_same_master_key_opens_and_caches_the_data_key()
    {
        using var writer = new ValueCipher(MasterKey16);
        using var reader = new ValueCipher(MasterKey16);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("v"u8.ToArray(), reader.Open(writer.Seal("v"u8)));
        }

        Assert.Equal(1, reader.CachedKeys);
    }

    [Fact]
    public void Tampering_or_a_wrong_master_key_fails_to_open()
    {
        using var cipher = new ValueCipher(MasterKey16);
        var sealedValue = cipher.Seal("secret"u8);
        var tampered = sealedValue.ToArray();
        tampered[^20] ^= 0x80; // ciphertext
        Assert.ThrowsAny<CryptographicException>(() => cipher.Open(tampered));
        Assert.ThrowsAny<CryptographicException>(() => cipher.Open(sealedValue.AsSpan(0, 30)));
        using var other = new ValueCipher(RandomNumberGenerator.GetBytes(32));
        Assert.ThrowsAny<CryptographicException>(() => other.Open(sealedValue));
    }

    [Theory]
    [InlineData("something-in-correct", "invalid AES key size")]
    [InlineData("", "is not set")]
    [InlineData(null, "is not set")]
    public void Master_key_must_be_16_or_32_bytes(string? text, string error)
    {
        Assert.Null(Server.Encryption.MasterKey.Parse(text, out var message));
        Assert.Contains(error, message, StringComparison.Ordinal);
        Assert.NotNull(Server.Encryption.MasterKey.Parse(new string('k', 32), out _));
        Assert.Throws<ArgumentException>(() => new ValueCipher(new byte[24]));
    }
}
