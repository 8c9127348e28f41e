using Sluice.Protocol.Http2;

namespace Sluice.Client.Http2;

/// <summary>
/// A client connection's flow-control windows (RFC 9113 section 5.2): the credit the server gave for request DATA
/// (the connection's here, each stream's on its <see cref="Http2Stream"/>), and the connection's receive window for
/// response DATA (each stream returns its own credit as its body is read). The send side is used under the
/// connection's lock (<see cref="Http2Connection.Sync"/>); the receive side by the reader thread alone.
/// </summary>
internal sealed class Http2ClientFlowControl
{
    /// <summary>Each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE): a fast subscription never waits on updates.</summary>
    public const int StreamReceiveWindow = 4 << 20;

    /// <summary>The connection's receive window: 16 MiB, room for four streams' full windows before an update.</summary>
    public const int ConnectionReceiveWindow = 16 << 20;

    private readonly Http2SendWindow _send = new();
    private long _connectionReceived; // reader thread only

    /// <summary>The server's SETTINGS_INITIAL_WINDOW_SIZE: a new stream's send window.</summary>
    public int PeerInitialWindow => _send.PeerInitialWindow;

    /// <summary>Takes credit for up to <paramref name="length"/> bytes of <paramref name="stream"/>: what both the connection's and the stream's windows allow.</summary>
    public int TakeSendCredit(Http2Stream stream, int length)
    {
        var take = _send.Take(stream.SendWindow, length);
        stream.SendWindow -= take;
        return take;
    }

    /// <summary>Gives back credit taken for bytes that were never sent: the server never returns it.</summary>
    public void RefundSendCredit(int credit) => _send.Refund(credit);

    /// <summary>A connection WINDOW_UPDATE from the server.</summary>
    public void OnConnectionWindowUpdate(int increment) => _send.OnConnectionUpdate(increment);

    /// <summary>A stream WINDOW_UPDATE from the server: null when it is fine, else the stream error it is.</summary>
    public static Http2ErrorCode? OnStreamWindowUpdate(Http2Stream stream, int increment)
    {
        stream.SendWindow += increment;
        return Http2SendWindow.CheckStreamUpdate(stream.SendWindow, increment);
    }

    /// <summary>The server changed SETTINGS_INITIAL_WINDOW_SIZE: every open stream's window moves by the difference.</summary>
    public void OnInitialWindowSize(uint value, Dictionary<int, Http2Stream>.ValueCollection streams)
    {
        var delta = _send.SetInitialWindowSize(value);
        foreach (var stream in streams)
        {
            stream.SendWindow += delta;
            Http2SendWindow.CheckAfterInitialWindowSize(stream.SendWindow, value, stream.Id);
        }
    }

    /// <summary>
    /// Counts a DATA frame against the connection's receive window (reader thread only); returns the connection credit
    /// to give back now (0 until half the window is used). Each stream's own window bounds what it buffers.
    /// </summary>
    public int OnDataReceived(int flowLength)
    {
        _connectionReceived += flowLength;
        if (_connectionReceived > ConnectionReceiveWindow)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "the server sent more than the connection's flow-control window");
        }

        if (_connectionReceived < ConnectionReceiveWindow / 2)
        {
            return 0;
        }

        var increment = (int)_connectionReceived;
        _connectionReceived = 0;
        return increment;
    }
}
