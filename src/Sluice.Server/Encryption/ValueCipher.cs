using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Sluice.Server.Encryption;

/// <summary>
/// Seals and opens the values of one partition. The partition's data key (32 random bytes) is created
/// on the first seal and wrapped (RFC 5649) under the master key; each stored value is
/// <c>[1 byte wrappedKeyLen][wrapped key][12-byte nonce][AES-256-GCM ciphertext][16-byte tag]</c>.
/// Unwrapped keys are cached by their wrapped bytes, so reading does not unwrap per message.
/// </summary>
internal sealed class ValueCipher : IDisposable
{
    public const int NonceSize = 12;
    public const int TagSize = 16;
    private const int DataKeySize = 32;

    private readonly byte[] _masterKey;
    private readonly ConcurrentDictionary<string, DataKey> _keys = new(StringComparer.Ordinal);
    private readonly Lock _sealLock = new();
    private DataKey? _current;

    public ValueCipher(byte[] masterKey)
    {
        if (masterKey.Length is not (16 or 32))
        {
            throw new ArgumentException($"invalid AES key size: {masterKey.Length} bytes, the key must be 16 or 32 bytes", nameof(masterKey));
        }

        _masterKey = masterKey.ToArray();
    }

    /// <summary>Number of distinct data keys unwrapped so far (for tests).</summary>
    internal int CachedKeys => _keys.Count;

    public byte[] Seal(ReadOnlySpan<byte> plaintext)
    {
        lock (_sealLock)
        {
            var key = _current ??= NewDataKey();
            var wrapped = key.Wrapped;
            var output = new byte[1 + wrapped.Length + NonceSize + plaintext.Length + TagSize];
            output[0] = (byte)wrapped.Length;
            wrapped.CopyTo(output.AsSpan(1));
            var nonce = output.AsSpan(1 + wrapped.Length, NonceSize);
            RandomNumberGenerator.Fill(nonce);
            var body = output.AsSpan(1 + wrapped.Length + NonceSize);
            lock (key.Gcm)
            {
                key.Gcm.Encrypt(nonce, plaintext, body[..plaintext.Length], body[plaintext.Length..]);
            }

            return output;
        }
    }

    /// <summary>Opens a sealed value; throws <see cref="CryptographicException"/> when it is malformed or was tampered with.</summary>
    public byte[] Open(ReadOnlySpan<byte> sealedValue)
    {
        if (sealedValue.IsEmpty || sealedValue.Length < 1 + sealedValue[0] + NonceSize + TagSize)
        {
            throw new CryptographicException($"sealed value is too short ({sealedValue.Length} bytes)");
        }

        var wrapped = sealedValue.Slice(1, sealedValue[0]);
        var key = FindKey(wrapped);
        var nonce = sealedValue.Slice(1 + wrapped.Length, NonceSize);
        var body = sealedValue[(1 + wrapped.Length + NonceSize)..];
        var plaintext = new byte[body.Length - TagSize];
        lock (key.Gcm)
        {
            key.Gcm.Decrypt(nonce, body[..plaintext.Length], body[plaintext.Length..], plaintext);
        }

        return plaintext;
    }

    public void Dispose()
    {
        foreach (var key in _keys.Values)
        {
            key.Gcm.Dispose();
        }

        _current?.Gcm.Dispose();
        CryptographicOperations.ZeroMemory(_masterKey);
    }

    private DataKey FindKey(ReadOnlySpan<byte> wrapped)
    {
        if (_current is { } current && wrapped.SequenceEqual(current.Wrapped))
        {
            return current;
        }

        var id = Convert.ToBase64String(wrapped);
        if (_keys.TryGetValue(id, out var key))
        {
            return key;
        }

        var dataKey = AesKeyWrapPad.Unwrap(_masterKey, wrapped);
        if (dataKey.Length != DataKeySize)
        {
            throw new CryptographicException($"unwrapped data key has {dataKey.Length} bytes, expected {DataKeySize}");
        }

        var added = new DataKey(wrapped.ToArray(), new AesGcm(dataKey, TagSize));
        CryptographicOperations.ZeroMemory(dataKey);
        if (!_keys.TryAdd(id, added))
        {
            added.Gcm.Dispose();
            return _keys[id];
        }

        return added;
    }

    private DataKey NewDataKey()
    {
        var dataKey = RandomNumberGenerator.GetBytes(DataKeySize);
        var key = new DataKey(AesKeyWrapPad.Wrap(_masterKey, dataKey), new AesGcm(dataKey, TagSize));
        CryptographicOperations.ZeroMemory(dataKey);
        return key;
    }

    private sealed record DataKey(byte[] Wrapped, AesGcm Gcm);
}
