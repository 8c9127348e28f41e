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

    private long _sendWindow = Http2Frame.DefaultWindowSize;
    private long _connectionReceived; // reader thread only

    /// <summary>The server's SETTINGS_INITIAL_WINDOW_SIZE: a new stream's send window (under the lock).</summary>
    public int PeerInitialWindow { get; private set; } = Http2Frame.DefaultWindowSize;

    /// <summary>
    /// Takes credit for up to <paramref name="length"/> request bytes of <paramref name="stream"/>: what both windows
    /// allow. A window can be negative after the server lowers SETTINGS_INITIAL_WINDOW_SIZE; then it is 0.
    /// </summary>
    public int TakeSendCredit(Http2Stream stream, int length)
    {
        var take = (int)Math.Max(0, Math.Min(Math.Min(_sendWindow, stream.SendWindow), length));
        _sendWindow -= take;
        stream.SendWindow -= take;
        return take;
    }

    /// <summary>Gives back credit taken for bytes that were never sent: the server never returns it.</summary>
    public void RefundSendCredit(int credit) => _sendWindow += credit;

    /// <summary>A connection WINDOW_UPDATE from the server.</summary>
    public void OnConnectionWindowUpdate(int increment)
    {
        if (increment == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "WINDOW_UPDATE with increment 0 on the connection");
        }

        _sendWindow += increment;
        if (_sendWindow > Http2Frame.MaxWindowSize)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "the connection's send window went above 2^31-1");
        }
    }

    /// <summary>A stream WINDOW_UPDATE from the server: null when it is fine, else the stream error it is.</summary>
    public static Http2ErrorCode? OnStreamWindowUpdate(Http2Stream stream, int increment)
    {
        stream.SendWindow += increment;
        if (increment == 0)
        {
            return Http2ErrorCode.ProtocolError;
        }

        return stream.SendWindow > Http2Frame.MaxWindowSize ? Http2ErrorCode.FlowControlError : null;
    }

    /// <summary>The server changed SETTINGS_INITIAL_WINDOW_SIZE: every open stream's window moves by the difference.</summary>
    public void OnInitialWindowSize(uint value, Dictionary<int, Http2Stream>.ValueCollection streams)
    {
        var delta = (int)value - PeerInitialWindow;
        PeerInitialWindow = (int)value;
        foreach (var stream in streams)
        {
            stream.SendWindow += delta;
            if (stream.SendWindow > Http2Frame.MaxWindowSize)
            {
                throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, $"SETTINGS_INITIAL_WINDOW_SIZE {value} takes stream {stream.Id}'s window above 2^31-1");
            }
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
