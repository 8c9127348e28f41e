using System.Buffers;

namespace Sluice.Protocol.Http2;

/// <summary>
/// Assembles a header block from a HEADERS frame and its CONTINUATION frames (RFC 9113 section 4.3),
/// dropping padding and priority fields: the part shared by the client's and the server's readers.
/// </summary>
internal sealed class Http2HeaderBlock(int maxBlockSize)
{
    private readonly PooledBufferWriter _block = new(4096);
    private int _streamId;
    private bool _endStream;

    /// <summary>Gives the block's buffer back to the pool unless a block is open (a quiet connection holds none).</summary>
    public void ReleaseIfIdle()
    {
        if (_streamId == 0)
        {
            _block.ResetWrittenCount();
            _block.ReleaseIfEmpty();
        }
    }

    /// <summary>A block is open: only CONTINUATION frames for its stream may follow.</summary>
    public bool InProgress => _streamId != 0;

    /// <summary>The assembled block, valid once <see cref="OnHeaders"/> or <see cref="OnContinuation"/> returned true.</summary>
    public ReadOnlySpan<byte> Block => _block.WrittenSpan;

    /// <summary>Whether the block's HEADERS frame carried END_STREAM.</summary>
    public bool EndStream => _endStream;

    /// <summary>Starts a block from a HEADERS frame; true when it is already complete (END_HEADERS).</summary>
    public bool OnHeaders(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (streamId == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "HEADERS on stream 0");
        }

        var fragment = Http2Frame.RemovePadding(flags, payload);
        if ((flags & Http2Frame.PriorityFlag) != 0)
        {
            if (fragment.Length < 5)
            {
                throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "HEADERS too short for its priority fields");
            }

            fragment = fragment[5..];
        }

        _block.ResetWrittenCount();
        _block.Write(fragment);
        _endStream = (flags & Http2Frame.EndStream) != 0;
        if ((flags & Http2Frame.EndHeaders) == 0)
        {
            _streamId = streamId;
            return false;
        }

        return true;
    }

    /// <summary>Adds a CONTINUATION frame; true when it ends the block.</summary>
    public bool OnContinuation(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (_streamId == 0 || streamId != _streamId)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "CONTINUATION without a header block in progress on that stream");
        }

        if (_block.WrittenCount + payload.Length > maxBlockSize)
        {
            throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm, "header block too large");
        }

        _block.Write(payload);
        if ((flags & Http2Frame.EndHeaders) == 0)
        {
            return false;
        }

        _streamId = 0;
        return true;
    }
}
