using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Http2;

namespace Sluice.Server.Http2;

/// <summary>
/// One accepted HTTP/2 connection (RFC 9113), h2c with prior knowledge or TLS with ALPN "h2": its state and
/// lifecycle (handshake deadline, keepalive PINGs, idle close, GOAWAY, abort), and the parts that do the work.
/// <para>
/// Why it exists: Kestrel moves every request body read, response flush and socket write through
/// pipes whose loops run on the thread pool, which costs five to six context switches per
/// synchronous publish; on a 2-core machine that is most of its price (docs/benchmarks.md). Here a
/// dedicated thread per busy connection reads frames and hands them to the streams
/// (<see cref="Http2ServerReader"/>, which also parks a quiet connection without a thread, and
/// <see cref="Http2ServerFrameHandler"/>). A request body's reader resumes on that thread (with
/// <see cref="Http2Listener.InlineRequestReads"/>), so a publish is decoded, appended and acked there, and a
/// response is written to the socket on the thread that produces it (<see cref="Http2ServerOutput"/>).
/// <see cref="Http2ServerFlowControl"/> keeps the windows and <see cref="Http2ServerStreamTable"/> the streams.
/// </para>
/// <para>
/// Locks: <see cref="Sync"/> guards the stream table, the windows and this connection's state;
/// <see cref="Http2ServerOutput.WriteLock"/> orders frames on the wire. A writer reserves window under the first
/// and writes under the second; nobody takes <see cref="Sync"/> while holding the write lock except to check a reset.
/// </para>
/// </summary>
internal sealed partial class Http2ServerConnection : IDisposable
{
    private const int HandshakeTimeoutMilliseconds = 10_000;

    private readonly Http2Listener _listener;
    private readonly ServerSocketStream _socketStream;
    private readonly ILogger _logger;
    private readonly Http2ServerOutput _output;
    private readonly Http2ServerReader _reader;
    private readonly long _startedTicks = Environment.TickCount64;
    private int _runningCalls; // handlers started and not yet finished
    private int _goAwayLastStreamId = int.MaxValue; // under Sync
    private bool _clientGoingAway; // under Sync
    private Exception? _failure; // under Sync
    private long _pingSentTicks; // under Sync
    private bool _ready; // the handshake and preface are done and our SETTINGS is out, under Sync

    public Http2ServerConnection(Http2Listener listener, Socket socket, ILogger logger)
    {
        _listener = listener;
        _logger = logger;
        _socketStream = new ServerSocketStream(socket, listener.MaxPendingOutputBytes, listener.OutputBudget, listener.OnOverBudget);
        _output = new Http2ServerOutput(this, listener, _socketStream);
        _reader = new Http2ServerReader(this, listener, _socketStream, _output, new Http2ServerFrameHandler(this, listener, _output));
        Peer = socket.RemoteEndPoint?.ToString() ?? "unknown";
    }

    /// <summary>"ip:port" of the client.</summary>
    public string Peer { get; }

    /// <summary>Response bytes written for this client and not yet taken by the kernel, as counted against the listener's budget.</summary>
    public long PendingOutputBytes => _socketStream.AccountedPendingBytes;

    /// <summary>Cut for reading too slowly (<see cref="CutSlowClient"/>): its output is draining or about to be dropped.</summary>
    public bool IsBeingCut { get; private set; }

    /// <summary>The verified client certificate under mutual TLS (set by the reader after the handshake).</summary>
    public X509Certificate2? ClientCertificate { get; internal set; }

    /// <summary>Carried an authenticated internal call: another broker (set by the listener, under its lock).</summary>
    public bool IsPeerBroker { get; set; }

    /// <summary>Takes this connection's output off the slow-subscriber budget for good (a broker's).</summary>
    public void ExemptFromOutputBudget() => _socketStream.WriteOff();

    internal Http2Listener Listener => _listener;

    /// <summary>Guards the stream table, the windows and the connection's state.</summary>
    internal Lock Sync { get; } = new();

    /// <summary>The open streams (under <see cref="Sync"/>).</summary>
    internal Http2ServerStreamTable Streams { get; } = new();

    /// <summary>The flow-control windows (under <see cref="Sync"/>).</summary>
    internal Http2ServerFlowControl FlowControl { get; } = new();

    /// <summary>Wakes senders waiting for flow-control credit (taken under <see cref="Sync"/>).</summary>
    internal Http2CapacitySignal Capacity { get; } = new();

    /// <summary>The connection failed or closed (under <see cref="Sync"/>).</summary>
    internal bool FailedLocked => _failure is not null;

    /// <summary>Either side began to close: the connection ends after its last stream (under <see cref="Sync"/>).</summary>
    internal bool ShuttingDownLocked => _goAwayLastStreamId != int.MaxValue || _clientGoingAway;

    /// <summary>A new stream <paramref name="streamId"/> is refused because either side began to close (under <see cref="Sync"/>).</summary>
    internal bool RefusesStreamLocked(int streamId) => streamId > _goAwayLastStreamId || _clientGoingAway;

    /// <summary>Handlers started and not yet finished: they count against the stream limit.</summary>
    internal int RunningCalls => Volatile.Read(ref _runningCalls);

    /// <summary>True on this connection's reader thread.</summary>
    public bool OnReaderThread => _reader.OnThread;

    /// <summary>Starts reading on a reader thread of its own: TLS handshake, preface, then frames until the connection ends.</summary>
    public void Start() => _reader.Start();

    /// <summary>Frames and sends responses (<see cref="Http2ServerOutput.SendAsync"/>).</summary>
    internal Http2ServerOutput Output => _output;

    /// <summary>The preface is read: our SETTINGS (and the larger connection window) go out, and other threads may send frames.</summary>
    internal void OnPrefaceRead()
    {
        var maxStreams = (uint)_listener.MaxConcurrentStreams;
        _output.WriteControl(output =>
        {
            Http2Frame.WriteSettings(output,
            [
                (Http2Frame.SettingsMaxConcurrentStreams, maxStreams),
                (Http2Frame.SettingsInitialWindowSize, Http2ServerFlowControl.StreamReceiveWindow),
                (Http2Frame.SettingsMaxHeaderListSize, Http2ServerFrameHandler.MaxHeaderListSize),
                (Http2Frame.SettingsEnablePush, 0),
            ]);
            Http2Frame.WriteWindowUpdate(output, 0, Http2ServerFlowControl.ConnectionReceiveWindow - Http2Frame.DefaultWindowSize);
        });
        lock (Sync)
        {
            _ready = true; // from here other threads may send frames (keepalive PINGs, GOAWAY)
            Streams.StartIdle(Environment.TickCount64);
        }
    }

    /// <summary>Starts a call's handler (on the thread pool); it counts against the stream limit until <see cref="OnCallFinished"/>.</summary>
    internal void StartCall(Http2ServerStream stream)
    {
        Interlocked.Increment(ref _runningCalls);
        _listener.StartCall(stream);
    }

    /// <summary>A call's handler finished (its stream may have ended earlier).</summary>
    public void OnCallFinished() => Interlocked.Decrement(ref _runningCalls);

    /// <summary>Stops taking new streams (GOAWAY NO_ERROR); running ones go on, and the connection closes after the last.</summary>
    public void BeginShutdown()
    {
        bool closeNow;
        int last;
        lock (Sync)
        {
            if (_goAwayLastStreamId != int.MaxValue || _failure is not null)
            {
                return;
            }

            last = _goAwayLastStreamId = Streams.LastStreamId;
            closeNow = Streams.Count == 0 || !_ready;
        }

        bool ready;
        lock (Sync)
        {
            ready = _ready;
        }

        if (ready)
        {
            _output.WriteControl(output => Http2Frame.WriteGoAway(output, last, Http2ErrorCode.NoError));
        }

        if (closeNow)
        {
            Abort(new IOException("The server is shutting down."), graceful: ready);
        }
    }

    /// <summary>The client sent GOAWAY: no new streams; the connection closes now if none is open, else after the last.</summary>
    internal void OnClientGoingAway()
    {
        bool closeNow;
        lock (Sync)
        {
            _clientGoingAway = true;
            closeNow = Streams.Count == 0;
        }

        if (closeNow)
        {
            Abort(new IOException("The client closed the connection (GOAWAY)."), graceful: true);
        }
    }

    /// <summary>The client answered our keepalive PING.</summary>
    internal void OnPingAck()
    {
        lock (Sync)
        {
            _pingSentTicks = 0;
        }
    }

    /// <summary>Closes the connection at once (see <see cref="Abort"/>).</summary>
    public void Dispose() => Abort(new IOException("The connection was closed by the server."));

    /// <summary>Closes the connection: open streams are aborted and the socket is closed.</summary>
    public void Abort(Exception reason, bool graceful = false) => Close(reason, graceful, drainMilliseconds: 1000);

    private void Close(Exception reason, bool graceful, int drainMilliseconds)
    {
        List<Http2ServerStream> streams;
        TaskCompletionSource? signal;
        lock (Sync)
        {
            if (_failure is not null)
            {
                return;
            }

            _failure = reason;
            streams = Streams.TakeAll();
            signal = Capacity.TakeLocked();
        }

        signal?.TrySetResult();
        foreach (var stream in streams)
        {
            stream.OnAborted(reason);
        }

        if (graceful)
        {
            _output.Flush(uncork: true); // what the reader thread's batch holds back goes out before the FIN
            _ = _socketStream.CloseGracefullyAsync(drainMilliseconds); // lets a last GOAWAY reach the client
        }
        else
        {
            _socketStream.Abort();
        }

        if (_output.Transport is SslStream ssl)
        {
            ssl.Dispose(); // the socket stays with _socketStream (leaveInnerStreamOpen)
        }

        _listener.OnConnectionClosed(this);
    }

    /// <summary>
    /// Sends a PING when the connection has been quiet for the keepalive time; aborts it when a PING goes
    /// unanswered or the handshake takes too long; closes it (GOAWAY) when it had no stream for <paramref name="idleTimeout"/>.
    /// </summary>
    public void OnKeepAliveTick(long now, TimeSpan delay, TimeSpan timeout, TimeSpan idleTimeout)
    {
        string? failure = null;
        var idle = false;
        var ping = false;
        lock (Sync)
        {
            if (_failure is not null)
            {
                return;
            }

            if (!_ready)
            {
                if (now - _startedTicks > HandshakeTimeoutMilliseconds)
                {
                    failure = $"The client did not finish its handshake within {HandshakeTimeoutMilliseconds / 1000} s.";
                }
            }
            else if (Streams.IdleSinceTicks != 0 && Volatile.Read(ref _runningCalls) == 0 && now - Streams.IdleSinceTicks >= (long)idleTimeout.TotalMilliseconds)
            {
                idle = true;
            }
            else if (_pingSentTicks != 0)
            {
                if (now - _pingSentTicks > (long)timeout.TotalMilliseconds)
                {
                    failure = $"The client did not answer a keepalive PING within {timeout.TotalSeconds:0} s.";
                }
            }
            else if (now - _reader.LastFrameTicks >= (long)delay.TotalMilliseconds)
            {
                _pingSentTicks = now;
                ping = true;
            }
        }

        if (ping)
        {
            _output.WriteControl(output => Http2Frame.WritePing(output, now, ack: false));
        }
        else if (idle)
        {
            LogConnectionEnded(_logger, Peer, $"no stream for {idleTimeout.TotalSeconds:0.###} s: closed as idle");
            BeginShutdown();
        }
        else if (failure is not null)
        {
            Abort(new IOException(failure));
        }
    }

    /// <summary>
    /// Ends a connection whose client reads too slowly for the server's output budget. Its queued output stays
    /// (dropping part of it would cut gRPC messages in two); behind it each open stream ends with
    /// RESOURCE_EXHAUSTED and <paramref name="reason"/> (see <see cref="Http2ServerOutput.WriteCut"/>), then a GOAWAY
    /// with the reason. The client gets <paramref name="drainMilliseconds"/> to read it all before the socket closes
    /// (less when it reads nothing for a second); its bytes count against the budget until then, so other
    /// connections wait for them to go instead of piling up more.
    /// </summary>
    public void CutSlowClient(string reason, int drainMilliseconds)
    {
        IsBeingCut = true;
        List<Http2ServerStream> streams;
        int last;
        lock (Sync)
        {
            if (_failure is not null)
            {
                return;
            }

            streams = Streams.Snapshot();
            last = Streams.LastStreamId;
        }

        _output.WriteCut(streams, last, reason);
        Close(new IOException(reason), graceful: true, drainMilliseconds);
    }

    /// <summary>Resets a stream from the server side (mark it aborted first, so nothing more is sent on it).</summary>
    public void ResetStream(Http2ServerStream stream, Http2ErrorCode code)
    {
        stream.MarkReset();
        lock (Sync)
        {
            Streams.RememberReset(stream.Id);
        }

        _output.WriteControl(output => Http2Frame.WriteRstStream(output, stream.Id, code));
        CloseStream(stream);
    }

    /// <summary>
    /// The handler looked at <paramref name="bytes"/> more of a request body (examined, not only
    /// consumed: a message larger than the window is read whole before any of it is consumed): returns
    /// that credit to the client.
    /// </summary>
    public void OnBodyExamined(Http2ServerStream stream, int bytes)
    {
        int increment;
        int connectionIncrement;
        lock (Sync)
        {
            if (_failure is not null)
            {
                return;
            }

            connectionIncrement = FlowControl.OnBodyExamined(stream, bytes, out increment);
        }

        if (connectionIncrement > 0)
        {
            _output.WriteControl(output => Http2Frame.WriteWindowUpdate(output, 0, connectionIncrement));
        }

        if (increment > 0)
        {
            _output.WriteControl(output => Http2Frame.WriteWindowUpdate(output, stream.Id, increment));
        }
    }

    /// <summary>Forgets a finished or reset stream; the last one of a connection shutting down closes it.</summary>
    internal void CloseStream(Http2ServerStream stream)
    {
        bool closeNow;
        int connectionIncrement;
        TaskCompletionSource? signal;
        lock (Sync)
        {
            if (!Streams.Remove(stream.Id))
            {
                return;
            }

            connectionIncrement = FlowControl.OnStreamClosed(stream, connectionFailed: _failure is not null);
            closeNow = Streams.Count == 0 && ShuttingDownLocked;
            signal = Capacity.TakeLocked(); // a flush waiting for credit on a reset stream must see it
        }

        signal?.TrySetResult();
        if (closeNow)
        {
            Abort(new IOException("The connection closed after its last stream."), graceful: true);
        }
        else if (connectionIncrement > 0)
        {
            _output.WriteControl(output => Http2Frame.WriteWindowUpdate(output, 0, connectionIncrement));
        }
    }

    /// <summary>The reader found a protocol error: GOAWAY with its code and reason, then the connection closes.</summary>
    internal void OnProtocolError(Http2ErrorCode code, string message, IOException reason)
    {
        LogProtocolError(_logger, Peer, code, message);
        int last;
        lock (Sync)
        {
            last = Streams.LastStreamId;
        }

        _output.WriteControl(output => Http2Frame.WriteGoAway(output, last, code, message));
        Abort(reason, graceful: true);
    }

    /// <summary>The reader ended because the socket or TLS did (the client went away).</summary>
    internal void OnReaderEnded(Exception ex)
    {
        LogConnectionEnded(_logger, Peer, ex.Message);
        Abort(ex as IOException ?? new IOException(ex.Message, ex));
    }

    /// <summary>The reader failed unexpectedly.</summary>
    internal void OnReaderFailed(Exception ex)
    {
        LogReaderFailed(_logger, ex, Peer);
        Abort(new IOException($"The HTTP/2 connection failed: {ex.Message}", ex));
    }

    internal void LogStreamRefused(int streamId, string reason) => LogStreamRefused(_logger, Peer, streamId, reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "HTTP/2 connection from {Peer} ended: {Reason}")]
    private static partial void LogConnectionEnded(ILogger logger, string peer, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "HTTP/2 protocol error from {Peer} ({Code}): {Reason}; the connection is closed")]
    private static partial void LogProtocolError(ILogger logger, string peer, Http2ErrorCode code, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "HTTP/2 stream {StreamId} from {Peer} refused: {Reason}")]
    private static partial void LogStreamRefused(ILogger logger, string peer, int streamId, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "HTTP/2 connection reader for {Peer} failed")]
    private static partial void LogReaderFailed(ILogger logger, Exception exception, string peer);
}
