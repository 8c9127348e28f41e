using System.Buffers.Binary;

namespace Sluice.Protocol.Http2;

/// <summary>
/// Reads whole HTTP/2 frames from a stream into one buffer: the read side shared by the client's
/// and the server's connections. Not thread-safe: one reader thread at a time.
/// </summary>
internal sealed class Http2FrameReader
{
    private readonly byte[] _buffer;
    private readonly string _peer;
    private int _start;
    private int _end;

    /// <param name="bufferSize">Read buffer size; must hold at least one frame of <see cref="Http2Frame.DefaultMaxFrameSize"/>.</param>
    /// <param name="peer">"client" or "server": who sends the frames, for error messages.</param>
    public Http2FrameReader(int bufferSize, string peer)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bufferSize, Http2Frame.HeaderSize + Http2Frame.DefaultMaxFrameSize);
        _buffer = new byte[bufferSize];
        _peer = peer;
    }

    /// <summary>The bytes read but not yet taken as frames.</summary>
    public ReadOnlySpan<byte> Buffered => _buffer.AsSpan(_start, _end - _start);

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
    public void Fill(Stream transport)
    {
        if (_start == _end)
        {
            _start = _end = 0;
        }
        else if (_buffer.Length - _end < Http2Frame.HeaderSize + Http2Frame.DefaultMaxFrameSize)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        var read = transport.Read(_buffer, _end, _buffer.Length - _end);
        if (read == 0)
        {
            throw new IOException($"The {_peer} closed the connection.");
        }

        _end += read;
    }
}
