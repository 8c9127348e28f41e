using System.Buffers;

namespace Sluice.Protocol.Http2;

/// <summary>
/// A growable byte buffer like <see cref="ArrayBufferWriter{T}"/> whose array comes from the shared pool and goes back
/// to it (<see cref="ReleaseIfEmpty"/>) while nothing is written in it: what lets a quiet connection hold no buffers.
/// Not thread-safe; callers serialize it as they would an ArrayBufferWriter.
/// </summary>
internal sealed class PooledBufferWriter(int initialCapacity) : IBufferWriter<byte>
{
    private byte[] _buffer = [];
    private int _written;

    /// <summary>The bytes written since the last reset.</summary>
    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _written);

    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _written);

    public int WrittenCount => _written;

    /// <summary>Whether an array is held now.</summary>
    public bool HoldsBuffer => _buffer.Length > 0;

    /// <summary>Forgets what was written; the array is kept for the next writes.</summary>
    public void ResetWrittenCount() => _written = 0;

    /// <summary>Returns the array to the pool if nothing is written in it; the next write rents one again.</summary>
    public void ReleaseIfEmpty()
    {
        if (_written != 0 || _buffer.Length == 0)
        {
            return;
        }

        var buffer = _buffer;
        _buffer = [];
        ArrayPool<byte>.Shared.Return(buffer);
    }

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (_written + count > _buffer.Length)
        {
            throw new InvalidOperationException($"advanced {count} bytes past the end of the buffer");
        }

        _written += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(_written);
    }

    private void Ensure(int sizeHint)
    {
        var need = _written + Math.Max(sizeHint, 1);
        if (need <= _buffer.Length)
        {
            return;
        }

        var grown = ArrayPool<byte>.Shared.Rent(Math.Max(need, Math.Max(initialCapacity, _buffer.Length * 2)));
        _buffer.AsSpan(0, _written).CopyTo(grown);
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }

        _buffer = grown;
    }
}
