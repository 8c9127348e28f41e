using System.Security.Cryptography;
using Sluice.Server.Encryption;

namespace Sluice.Server.Tests.Encryption;

public sealed class AesKeyWrapPadTests
{
    private const string Kek = "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8";

    [Theory] // RFC 5649 §6
    [InlineData("c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a")]
    [InlineData("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f")]
    public void Rfc5649_test_vectors(string key, string wrapped)
    {
        var kek = Convert.FromHexString(Kek);
        Assert.Equal(wrapped, Convert.ToHexStringLower(AesKeyWrapPad.Wrap(kek, Convert.FromHexString(key))));
        Assert.Equal(key, Convert.ToHexStringLower(AesKeyWrapPad.Unwrap(kek, Convert.FromHexString(wrapped))));
    }

    [Theory]
    [InlineData(16, 1)]
    [InlineData(16, 8)]
    [InlineData(32, 32)]
    [InlineData(32, 33)]
    public void Round_trips_any_length(int kekSize, int keySize)
    {
        var kek = RandomNumberGenerator.GetBytes(kekSize);
        var key = RandomNumberGenerator.GetBytes(keySize);
        var wrapped = AesKeyWrapPad.Wrap(kek, key);
        Assert.Equal(8 * ((keySize + 7) / 8 + 1), wrapped.Length);
        Assert.Equal(key, AesKeyWrapPad.Unwrap(kek, wrapped));
    }

    [Fact]
    public void Unwrap_rejects_a_tampered_or_foreign_wrap()
    {
        var kek = RandomNumberGenerator.GetBytes(32);
        var wrapped = AesKeyWrapPad.Wrap(kek, RandomNumberGenerator.GetBytes(32));
        var tampered = wrapped.ToArray();
        tampered[^1] ^= 1;
        Assert.Throws<CryptographicException>(() => AesKeyWrapPad.Unwrap(kek, tampered));
        Assert.Throws<CryptographicException>(() => AesKeyWrapPad.Unwrap(RandomNumberGenerator.GetBytes(32), wrapped));
        Assert.Throws<CryptographicException>(() => AesKeyWrapPad.Unwrap(kek, wrapped.AsSpan(0, 12)));
    }
}
