using System.Buffers.Binary;

namespace Sluice.Protocol.Http2;

/// <summary>
/// Reads whole HTTP/2 frames from a stream into one buffer: the read side shared by the client's
/// and the server's connections. Not thread-safe: one reader thread at a time.
/// </summary>
internal sealed class Http2FrameReader
{
    private readonly int _bufferSize;
    private readonly string _peer;
    private byte[] _buffer;
    private int _start;
    private int _end;

    /// <param name="bufferSize">Read buffer size; must hold at least one frame of <see cref="Http2Frame.DefaultMaxFrameSize"/>.</param>
    /// <param name="peer">"client" or "server": who sends the frames, for error messages.</param>
    public Http2FrameReader(int bufferSize, string peer)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bufferSize, Http2Frame.HeaderSize + Http2Frame.DefaultMaxFrameSize);
        _bufferSize = bufferSize;
        _buffer = [];
        _peer = peer;
    }

    /// <summary>The bytes read but not yet taken as frames.</summary>
    public ReadOnlySpan<byte> Buffered => _buffer.AsSpan(_start, _end - _start);

    /// <summary>Whether a read buffer is held now (none before the first read and after <see cref="ReleaseIfEmpty"/>).</summary>
    public bool HoldsBuffer => _buffer.Length > 0;

    /// <summary>
    /// Gives the read buffer back to the pool when nothing unread is in it, so a quiet connection holds none; the next
    /// <see cref="FreeSpace"/> rents one again. Payloads returned earlier must not be used after this.
    /// </summary>
    public void ReleaseIfEmpty()
    {
        if (_start != _end || _buffer.Length == 0)
        {
            return;
        }

        var buffer = _buffer;
        _buffer = [];
        _start = _end = 0;
        System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
    }

    /// <summary>Drops <paramref name="count"/> buffered bytes (a preface).</summary>
    public void Skip(int count) => _start += Math.Min(count, _end - _start);

    /// <summary>
    /// The next whole frame in the buffer, if there is one. The payload stays valid until the next
    /// <see cref="Fill"/>. A frame above the default maximum size is a FRAME_SIZE_ERROR (we never
    /// advertise a larger SETTINGS_MAX_FRAME_SIZE).
    /// </summary>
    public bool TryRead(out FrameType type, out byte flags, out int streamId, out ReadOnlyMemory<byte> payload)
    {
        type = default;
        flags = 0;
        streamId = 0;
        payload = default;
        if (_end - _start < Http2Frame.HeaderSize)
        {
            return false;
        }

        var header = _buffer.AsSpan(_start, Http2Frame.HeaderSize);
        var length = (header[0] << 16) | (header[1] << 8) | header[2];
        if (length > Http2Frame.DefaultMaxFrameSize)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, $"a {length}-byte frame is larger than the {Http2Frame.DefaultMaxFrameSize} bytes this {(_peer == "client" ? "server" : "client")} allows");
        }

        if (_end - _start < Http2Frame.HeaderSize + length)
        {
            return false;
        }

        type = (FrameType)header[3];
        flags = header[4];
        streamId = BinaryPrimitives.ReadInt32BigEndian(header[5..]) & int.MaxValue;
        payload = _buffer.AsMemory(_start + Http2Frame.HeaderSize, length);
        _start += Http2Frame.HeaderSize + length;
        return true;
    }

    /// <summary>Reads more bytes (waiting), moving unread bytes to the front first when the tail has no room for a frame.</summary>
    /// <exception cref="IOException">The peer closed the connection.</exception>
    public void Fill(Stream transport) => Filled(transport.Read(FreeSpace().Span));

    /// <summary>
    /// Where the next read goes: the free tail of the buffer (renting one if none is held), after moving unread bytes
    /// to the front when the tail has no room for a frame. Pass what was read to <see cref="Filled"/>.
    /// </summary>
    public Memory<byte> FreeSpace()
    {
        if (_buffer.Length == 0)
        {
            _buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(_bufferSize);
            _start = _end = 0;
        }
        else if (_start == _end)
        {
            _start = _end = 0;
        }
        else if (_buffer.Length - _end < Http2Frame.HeaderSize + Http2Frame.DefaultMaxFrameSize)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        return _buffer.AsMemory(_end);
    }

    /// <summary><paramref name="read"/> bytes arrived in <see cref="FreeSpace"/>; 0 means the peer closed the connection.</summary>
    /// <exception cref="IOException">The peer closed the connection.</exception>
    public void Filled(int read)
    {
        if (read == 0)
        {
            throw new IOException($"The {_peer} closed the connection.");
        }

        _end += read;
    }
}
