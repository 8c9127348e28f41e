namespace Sluice.Protocol.Http2;

/// <summary>
/// The peer's flow-control credit for what this side sends (RFC 9113 section 6.9), the same rules for client and
/// server: the connection's window here, each stream's kept by the caller on its stream. Not thread-safe: the
/// caller holds its connection's lock.
/// </summary>
internal sealed class Http2SendWindow
{
    private long _connection = Http2Frame.DefaultWindowSize;

    /// <summary>The peer's SETTINGS_INITIAL_WINDOW_SIZE: a new stream's window.</summary>
    public int PeerInitialWindow { get; private set; } = Http2Frame.DefaultWindowSize;

    /// <summary>
    /// Takes credit for up to <paramref name="length"/> bytes on a stream whose window is <paramref name="streamWindow"/>:
    /// what both windows allow, 0 when either is empty (a stream window may be negative after the peer lowered
    /// SETTINGS_INITIAL_WINDOW_SIZE). The caller takes the result off the stream's window.
    /// </summary>
    public int Take(long streamWindow, int length)
    {
        var take = (int)Math.Max(0, Math.Min(Math.Min(_connection, streamWindow), length));
        _connection -= take;
        return take;
    }

    /// <summary>Gives back credit taken for bytes that were never sent: the peer never returns it.</summary>
    public void Refund(int credit) => _connection += credit;

    /// <summary>A connection WINDOW_UPDATE from the peer; an invalid one is a connection error.</summary>
    public void OnConnectionUpdate(int increment)
    {
        if (increment == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "WINDOW_UPDATE with increment 0 on the connection");
        }

        _connection += increment;
        if (_connection > Http2Frame.MaxWindowSize)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "the connection's send window went above 2^31-1");
        }
    }

    /// <summary>
    /// Checks a stream WINDOW_UPDATE of <paramref name="increment"/> that took the stream's window to
    /// <paramref name="windowAfter"/>: null when it is fine, else the stream error it is.
    /// </summary>
    public static Http2ErrorCode? CheckStreamUpdate(long windowAfter, int increment) =>
        increment == 0 ? Http2ErrorCode.ProtocolError : windowAfter > Http2Frame.MaxWindowSize ? Http2ErrorCode.FlowControlError : null;

    /// <summary>The peer's new SETTINGS_INITIAL_WINDOW_SIZE; returns how far every open stream's window moves.</summary>
    public int SetInitialWindowSize(uint value)
    {
        var delta = (int)value - PeerInitialWindow;
        PeerInitialWindow = (int)value;
        return delta;
    }

    /// <summary>Checks a stream's window after a SETTINGS_INITIAL_WINDOW_SIZE change; above 2^31-1 is a connection error.</summary>
    public static void CheckAfterInitialWindowSize(long windowAfter, uint value, int streamId)
    {
        if (windowAfter > Http2Frame.MaxWindowSize)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, $"SETTINGS_INITIAL_WINDOW_SIZE {value} takes stream {streamId}'s window above 2^31-1");
        }
    }
}
