using Sluice.Protocol.Http2;

namespace Sluice.Server.Http2;

/// <summary>
/// A connection's flow-control windows (RFC 9113 section 5.2), both ways: the credit the client gave for response
/// DATA (the connection's and, on each <see cref="Http2ServerStream"/>, the stream's), and the credit this server
/// gave for request DATA, returned in WINDOW_UPDATEs as handlers examine request bytes. Not thread-safe: every
/// member is used under the connection's state lock (<see cref="Http2ServerConnection.Sync"/>); the WINDOW_UPDATE
/// frames the increments call for are written by the caller, outside it.
/// </summary>
internal sealed class Http2ServerFlowControl
{
    /// <summary>Each stream's receive window (our SETTINGS_INITIAL_WINDOW_SIZE).</summary>
    internal const int StreamReceiveWindow = 2 << 20;

    /// <summary>
    /// The connection's receive window, raised from the default 64 KiB right after the preface. Its
    /// credit goes back as handlers examine request bytes (as each stream's does), so it bounds what one
    /// connection can make the server buffer, however many streams it opens.
    /// </summary>
    internal const int ConnectionReceiveWindow = 4 << 20;

    private readonly Http2SendWindow _send = new();
    private long _connectionWindow = ConnectionReceiveWindow; // what the client may still send
    private long _connectionCredit; // received bytes no longer buffered, not yet returned

    /// <summary>The client's SETTINGS_INITIAL_WINDOW_SIZE: a new stream's send window.</summary>
    public int PeerInitialWindow => _send.PeerInitialWindow;

    // ------------------------------------------------------------ sending: the client's credit

    /// <summary>Takes credit for up to <paramref name="length"/> bytes of <paramref name="stream"/>: what both the connection's and the stream's windows allow.</summary>
    public int TakeSendCredit(Http2ServerStream stream, int length)
    {
        var take = _send.Take(stream.SendWindow, length);
        stream.SendWindow -= take;
        return take;
    }

    /// <summary>Gives back credit taken for bytes that were never sent: the client never returns it.</summary>
    public void RefundSendCredit(int credit) => _send.Refund(credit);

    /// <summary>A connection WINDOW_UPDATE from the client.</summary>
    public void OnConnectionWindowUpdate(int increment) => _send.OnConnectionUpdate(increment);

    /// <summary>A stream WINDOW_UPDATE from the client: null when it is fine, else the stream error it is.</summary>
    public static Http2ErrorCode? OnStreamWindowUpdate(Http2ServerStream stream, int increment)
    {
        stream.SendWindow += increment;
        return Http2SendWindow.CheckStreamUpdate(stream.SendWindow, increment);
    }

    /// <summary>The client changed SETTINGS_INITIAL_WINDOW_SIZE: every open stream's window moves by the difference.</summary>
    public void OnInitialWindowSize(uint value, Dictionary<int, Http2ServerStream>.ValueCollection streams)
    {
        var delta = _send.SetInitialWindowSize(value);
        foreach (var stream in streams)
        {
            stream.SendWindow += delta;
            Http2SendWindow.CheckAfterInitialWindowSize(stream.SendWindow, value, stream.Id);
        }
    }

    // ------------------------------------------------------------ receiving: our credit

    /// <summary>
    /// Accounts a DATA frame of <paramref name="flowLength"/> bytes (<paramref name="dataLength"/> of them data, the
    /// rest padding) for <paramref name="stream"/> (null: closed or unknown, or half-closed). Returns the connection
    /// credit to return now; <paramref name="streamIncrement"/> is the stream's.
    /// </summary>
    public int OnData(Http2ServerStream? stream, int streamId, int flowLength, int dataLength, bool endStream, out int streamIncrement)
    {
        streamIncrement = 0;
        if (stream is not null)
        {
            stream.ReceiveWindow -= flowLength;
            if (stream.ReceiveWindow < 0)
            {
                throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, $"the client sent more than stream {streamId}'s flow-control window");
            }

            // Padding is never read by the handler: its credit goes back with the next update.
            stream.ReceiveCredit += flowLength - dataLength;
            stream.BufferedRequestBytes += dataLength;
            if (endStream)
            {
                stream.RequestEnded = true;
            }
            else if (flowLength > dataLength)
            {
                streamIncrement = TakeStreamCredit(stream);
            }
        }

        // Whatever the stream does not buffer (padding, frames for closed or unknown streams) is credited now.
        _connectionCredit += stream is null ? flowLength : flowLength - dataLength;
        return TakeConnectionCredit();
    }

    /// <summary>Takes a DATA frame's length off the connection's window; more than it allows is a connection error.</summary>
    public void OnConnectionData(int flowLength)
    {
        _connectionWindow -= flowLength;
        if (_connectionWindow < 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "the client sent more than the connection's flow-control window");
        }
    }

    /// <summary>
    /// The handler examined <paramref name="bytes"/> more of <paramref name="stream"/>'s request. Returns the
    /// connection credit to return now; <paramref name="streamIncrement"/> is the stream's.
    /// </summary>
    public int OnBodyExamined(Http2ServerStream stream, int bytes, out int streamIncrement)
    {
        ReleaseBuffered(stream, bytes);
        var connectionIncrement = TakeConnectionCredit();
        streamIncrement = 0;
        if (!stream.RequestEnded && !stream.IsReset)
        {
            stream.ReceiveCredit += bytes;
            streamIncrement = TakeStreamCredit(stream);
        }

        return connectionIncrement;
    }

    /// <summary>
    /// A stream closed: bytes its handler never looked at (it ended early, or the stream was reset) are freed
    /// with it. Returns the connection credit to return now.
    /// </summary>
    public int OnStreamClosed(Http2ServerStream stream, bool connectionFailed)
    {
        ReleaseBuffered(stream, stream.BufferedRequestBytes);
        return connectionFailed ? 0 : TakeConnectionCredit();
    }

    /// <summary>Up to <paramref name="bytes"/> of a stream's buffered request bytes no longer count against the connection's window.</summary>
    private void ReleaseBuffered(Http2ServerStream stream, long bytes)
    {
        var released = Math.Min(bytes, stream.BufferedRequestBytes);
        stream.BufferedRequestBytes -= released;
        _connectionCredit += released;
    }

    /// <summary>The connection credit to return now, in steps of a quarter window (the same argument as a stream's, below).</summary>
    private int TakeConnectionCredit()
    {
        if (_connectionCredit < ConnectionReceiveWindow / 4)
        {
            return 0;
        }

        var increment = (int)_connectionCredit;
        _connectionCredit = 0;
        _connectionWindow += increment;
        return increment;
    }

    /// <summary>
    /// The credit to return now, in steps of a quarter window. A client out of credit always gets some:
    /// then everything it sent is either padding (credited on receipt) or buffered, and a handler
    /// waiting for more has examined all of it, so the pending credit is a whole window.
    /// </summary>
    private static int TakeStreamCredit(Http2ServerStream stream)
    {
        if (stream.ReceiveCredit < StreamReceiveWindow / 4)
        {
            return 0;
        }

        var increment = stream.ReceiveCredit;
        stream.ReceiveCredit = 0;
        stream.ReceiveWindow += increment;
        return increment;
    }
}
