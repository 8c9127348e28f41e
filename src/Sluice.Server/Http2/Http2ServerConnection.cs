using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Http2;

namespace Sluice.Server.Http2;

/// <summary>
/// One accepted HTTP/2 connection (RFC 9113), h2c with prior knowledge or TLS with ALPN "h2".
/// <para>
/// Why it exists: Kestrel moves every request body read, response flush and socket write through
/// pipes whose loops run on the thread pool, which costs five to six context switches per
/// synchronous publish; on a 2-core machine that is most of its price (docs/benchmarks.md). Here a
/// dedicated thread per busy connection reads frames and hands them to the streams; a connection quiet for
/// <see cref="Grpc.GrpcServerOptions.ReaderLinger"/> gives its thread and buffers back and gets a new thread
/// when the client sends again (see <see cref="FillAsync"/>), so idle connections cost no threads. A request body's
/// reader resumes on that thread (with <see cref="Grpc.GrpcServerOptions.InlineIo"/>), so a publish
/// is decoded, appended and acked there, and a response is written to the socket on the thread that
/// produces it. Socket writes never wait (<see cref="ServerSocketStream"/>), so any thread may write,
/// the reader included.
/// </para>
/// <para>
/// Locks: <see cref="_sync"/> guards the stream table, windows and state; <see cref="_writeLock"/>
/// orders frames on the wire. A writer reserves window under the first and writes under the second;
/// nobody takes <see cref="_sync"/> while holding <see cref="_writeLock"/> except to check a reset.
/// </para>
/// </summary>
internal sealed partial class Http2ServerConnection : IDisposable
{
    /// <summary>Each stream's receive window (our SETTINGS_INITIAL_WINDOW_SIZE).</summary>
    internal const int StreamReceiveWindow = 2 << 20;

    /// <summary>
    /// The connection's receive window, raised from the default 64 KiB right after the preface. Its
    /// credit goes back as handlers examine request bytes (as each stream's does), so it bounds what one
    /// connection can make the server buffer, however many streams it opens.
    /// </summary>
    internal const int ConnectionReceiveWindow = 4 << 20;

    private const int MaxHeaderListSize = 64 << 10;
    private const int ReadBufferSize = 64 << 10;
    private const int HandshakeTimeoutMilliseconds = 10_000;
    private const int MaxRememberedResets = 1024;

    /// <summary>
    /// What the reader thread's batch may hold back before it goes to the socket anyway: far more than a read's
    /// acks, and a bound on a handler running inline (a subscription with a backlog), whose output would
    /// otherwise pile up here, out of reach of the output budget, until the batch ends.
    /// </summary>
    private const int CorkedOutputLimit = 256 << 10;

    private readonly Http2Listener _listener;
    private readonly Socket _socket;
    private readonly ServerSocketStream _socketStream;
    private readonly ILogger _logger;
    private readonly Lock _sync = new();
    private readonly Lock _writeLock = new();
    private readonly Http2CapacitySignal _capacity = new();
    private readonly PooledBufferWriter _output = new(16 * 1024); // given back to the pool while the connection is quiet
    private readonly ArrayBufferWriter<byte> _headerOut = new(512); // a response header block being encoded, under _writeLock
    private readonly Dictionary<int, Http2ServerStream> _streams = [];
    private readonly HpackDecoder _decoder = new(maxHeaderListSize: MaxHeaderListSize);
    private readonly List<KeyValuePair<string, string>> _headerFields = [];
    private readonly Http2HeaderBlock _headerBlock = new(MaxHeaderListSize * 2);
    private readonly Http2FrameReader _frames = new(ReadBufferSize, "client");
    private Stream _transport;
    private int _lastStreamId;
    private int _runningCalls; // handlers started and not yet finished
    private long _sendWindow = Http2Frame.DefaultWindowSize;
    private int _peerInitialWindow = Http2Frame.DefaultWindowSize;
    private int _peerMaxFrameSize = Http2Frame.DefaultMaxFrameSize;
    private long _connectionWindow = ConnectionReceiveWindow; // what the client may still send
    private long _connectionCredit; // received bytes no longer buffered, not yet returned
    private long _resetWindowStart = Environment.TickCount64; // reader thread only, as the next
    private int _resetsInWindow;
    private int _goAwayLastStreamId = int.MaxValue;
    private bool _clientGoingAway;
    private Exception? _failure;
    private long _lastFrameTicks = Environment.TickCount64;
    private long _pingSentTicks;
    private X509Certificate2? _clientCertificate;
    private bool _ready; // the handshake and preface are done and our SETTINGS is out, under _sync
    private long _idleSinceTicks; // when the last open stream ended (0 while one is open), under _sync
    private readonly long _startedTicks = Environment.TickCount64;
    private readonly List<Http2ServerStream> _unflushedBodies = []; // reader thread only
    private readonly HashSet<int> _resetIds = []; // streams this server reset or refused, under _sync
    private readonly Queue<int> _resetOrder = new();
    private int _readerThreadId;
    private bool _corked; // written by the reader thread; only the reader thread acts on it

    public Http2ServerConnection(Http2Listener listener, Socket socket, ILogger logger)
    {
        _listener = listener;
        _socket = socket;
        _logger = logger;
        _socketStream = new ServerSocketStream(socket, listener.MaxPendingOutputBytes, listener.OutputBudget, listener.OnOverBudget);
        _transport = _socketStream;
        Peer = socket.RemoteEndPoint?.ToString() ?? "unknown";
    }

    /// <summary>"ip:port" of the client.</summary>
    public string Peer { get; }

    /// <summary>Response bytes written for this client and not yet taken by the kernel, as counted against the listener's budget.</summary>
    public long PendingOutputBytes => _socketStream.AccountedPendingBytes;

    /// <summary>Cut for reading too slowly (<see cref="CutSlowClient"/>): its output is draining or about to be dropped.</summary>
    public bool IsBeingCut { get; private set; }

    /// <summary>The verified client certificate under mutual TLS.</summary>
    public X509Certificate2? ClientCertificate => _clientCertificate;

    /// <summary>Carried an authenticated internal call: another broker (set by the listener, under its lock).</summary>
    public bool IsPeerBroker { get; set; }

    /// <summary>Takes this connection's output off the slow-subscriber budget for good (a broker's).</summary>
    public void ExemptFromOutputBudget() => _socketStream.WriteOff();

    internal Http2Listener Listener => _listener;

    /// <summary>Starts reading on a reader thread of its own: TLS handshake, preface, then frames until the connection ends.</summary>
    public void Start() => RunOnNewReaderThread(static state => _ = ((Http2ServerConnection)state!).ReadLoopAsync(), this);

    /// <summary>
    /// Runs <paramref name="work"/> on a new reader thread; where the process may not start one (its thread limit), on
    /// the thread pool instead, so the connection is still served, only without a thread of its own.
    /// </summary>
    private void RunOnNewReaderThread(Action<object?> work, object? state)
    {
        if (_listener.TryTakeReaderThread())
        {
            try
            {
                new Thread(static s =>
                {
                    var (connection, work, state) = ((Http2ServerConnection, Action<object?>, object?))s!;
                    try
                    {
                        work(state); // until the connection goes quiet (or ends): then the thread ends
                    }
                    finally
                    {
                        connection._listener.ReturnReaderThread();
                    }
                })
                { IsBackground = true, Name = "sluice-h2 " + Peer }.UnsafeStart((this, work, state));
                return;
            }
            catch (Exception ex) when (ex is ThreadStartException or OutOfMemoryException)
            {
                _listener.ReturnReaderThread();
            }
        }

        ThreadPool.UnsafeQueueUserWorkItem(work, state, preferLocal: false);
    }

    /// <summary>
    /// An awaitable that goes on on a new reader thread: how a connection that gave its thread back while the client was
    /// quiet gets one again when the client sends.
    /// </summary>
    private readonly struct ToNewReaderThread(Http2ServerConnection connection) : ICriticalNotifyCompletion
    {
        public ToNewReaderThread GetAwaiter() => this;

        public bool IsCompleted => false;

        public void GetResult()
        {
        }

        public void OnCompleted(Action continuation) => UnsafeOnCompleted(continuation);

        public void UnsafeOnCompleted(Action continuation) => connection.RunOnNewReaderThread(static state => ((Action)state!)(), continuation);
    }

    /// <summary>Stops taking new streams (GOAWAY NO_ERROR); running ones go on, and the connection closes after the last.</summary>
    public void BeginShutdown()
    {
        bool closeNow;
        int last;
        lock (_sync)
        {
            if (_goAwayLastStreamId != int.MaxValue || _failure is not null)
            {
                return;
            }

            last = _goAwayLastStreamId = _lastStreamId;
            closeNow = _streams.Count == 0 || !_ready;
        }

        bool ready;
        lock (_sync)
        {
            ready = _ready;
        }

        if (ready)
        {
            WriteControl(output => Http2Frame.WriteGoAway(output, last, Http2ErrorCode.NoError));
        }

        if (closeNow)
        {
            Abort(new IOException("The server is shutting down."), graceful: ready);
        }
    }

    /// <summary>A call's handler finished (its stream may have ended earlier).</summary>
    public void OnCallFinished() => Interlocked.Decrement(ref _runningCalls);

    /// <summary>True on this connection's reader thread.</summary>
    public bool OnReaderThread => Environment.CurrentManagedThreadId == _readerThreadId;

    /// <summary>Closes the connection at once (see <see cref="Abort"/>).</summary>
    public void Dispose() => Abort(new IOException("The connection was closed by the server."));

    /// <summary>Closes the connection: open streams are aborted and the socket is closed.</summary>
    public void Abort(Exception reason, bool graceful = false) => Close(reason, graceful, drainMilliseconds: 1000);

    private void AbortAfterDrain(Exception reason, int drainMilliseconds) => Close(reason, graceful: true, drainMilliseconds);

    private void Close(Exception reason, bool graceful, int drainMilliseconds)
    {
        List<Http2ServerStream> streams;
        TaskCompletionSource? signal;
        lock (_sync)
        {
            if (_failure is not null)
            {
                return;
            }

            _failure = reason;
            streams = [.. _streams.Values];
            _streams.Clear();
            signal = _capacity.TakeLocked();
        }

        signal?.TrySetResult();
        foreach (var stream in streams)
        {
            stream.OnAborted(reason);
        }

        if (graceful)
        {
            lock (_writeLock)
            {
                _corked = false; // what the reader thread's batch holds back goes out before the FIN
                FlushLocked();
            }

            _ = _socketStream.CloseGracefullyAsync(drainMilliseconds); // lets a last GOAWAY reach the client
        }
        else
        {
            _socketStream.Abort();
        }

        if (_transport is SslStream ssl)
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
        lock (_sync)
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
            else if (_idleSinceTicks != 0 && Volatile.Read(ref _runningCalls) == 0 && now - _idleSinceTicks >= (long)idleTimeout.TotalMilliseconds)
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
            else if (now - Volatile.Read(ref _lastFrameTicks) >= (long)delay.TotalMilliseconds)
            {
                _pingSentTicks = now;
                ping = true;
            }
        }

        if (ping)
        {
            WriteControl(output => Http2Frame.WritePing(output, now, ack: false));
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

    // ---------------------------------------------------------------- sending (any thread)

    /// <summary>
    /// Sends <paramref name="stream"/>'s buffered response bytes as DATA (with its HEADERS first if they
    /// are not out yet), waiting for flow-control credit when there is none. With
    /// <paramref name="complete"/> the trailers follow and end the stream. Returns false when the
    /// stream or the connection is gone (the bytes are dropped).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // once per response flush: the box is reused
    public async ValueTask<bool> SendAsync(Http2ServerStream stream, bool complete, CancellationToken cancellationToken)
    {
        while (true)
        {
            var body = stream.Body;
            if (body.Length > 0 && !IsBeingCut && _listener.OutputBudget.Total > _listener.OutputBudget.Limit && _socketStream.AccountedPendingBytes > 0)
            {
                // All clients together hold more unsent output than the budget, and this one has some: add no more
                // until the slowest connection is cut (this one, maybe), so a burst cannot run far past the budget.
                _listener.OnOverBudget();
                await _listener.OutputBudget.WaitWithinLimitAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            int take;
            Task? wait = null;
            lock (_sync)
            {
                if (_failure is not null || stream.IsReset || stream.ResponseEnded)
                {
                    return false; // a late write after the call ended is dropped, never sent after END_STREAM
                }

                take = (int)Math.Max(0, Math.Min(Math.Min(_sendWindow, stream.SendWindow), body.Length));
                if (take == 0 && body.Length > 0)
                {
                    wait = _capacity.WaitLocked();
                }
                else
                {
                    _sendWindow -= take;
                    stream.SendWindow -= take;
                }
            }

            if (wait is not null)
            {
                await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            var last = take == body.Length;
            var ended = false;
            var closeAfter = false;
            lock (_writeLock)
            {
                if (stream.IsReset || stream.ResponseEnded)
                {
                    TaskCompletionSource? refunded;
                    lock (_sync)
                    {
                        _sendWindow += take; // the client never sees these bytes, so it never returns the credit
                        refunded = _capacity.TakeLocked();
                    }

                    refunded?.TrySetResult();
                    return false;
                }

                if (!stream.HeadersSent && (take > 0 || !complete))
                {
                    _headerOut.ResetWrittenCount();
                    stream.WriteResponseHeaders(_headerOut);
                    WriteHeaderBlock(stream.Id, endStream: false);
                    stream.HeadersSent = true;
                }

                stream.SentWholeMessages = last;
                var chunk = body[..take];
                while (!chunk.IsEmpty)
                {
                    var length = Math.Min(chunk.Length, _peerMaxFrameSize);
                    Http2Frame.Write(_output, FrameType.Data, 0, stream.Id, chunk.Span[..length]);
                    chunk = chunk[length..];
                }

                if (complete && last)
                {
                    _headerOut.ResetWrittenCount();
                    if (!stream.HeadersSent)
                    {
                        stream.WriteResponseHeaders(_headerOut); // trailers-only: one HEADERS frame with both
                        stream.HeadersSent = true;
                    }

                    stream.WriteTrailers(_headerOut);
                    WriteHeaderBlock(stream.Id, endStream: true);

                    lock (_sync)
                    {
                        if (!stream.RequestEnded)
                        {
                            // The call is over: tell the client to stop sending (RFC 9113 section 8.1).
                            Http2Frame.WriteRstStream(_output, stream.Id, Http2ErrorCode.NoError);
                            RememberResetLocked(stream.Id);
                        }

                        // The slot is free before the client can see END_STREAM: its next request is never refused for it.
                        stream.ResponseEnded = true;
                        ended = _streams.Remove(stream.Id);
                        NoteIdleLocked();
                        closeAfter = ended && _streams.Count == 0 && (_goAwayLastStreamId != int.MaxValue || _clientGoingAway);
                    }
                }

                FlushLocked();
            }

            stream.ConsumeBody(take);
            if (closeAfter)
            {
                Abort(new IOException("The connection closed after its last stream."), graceful: true);
            }

            if (ended || (complete && last))
            {
                return true;
            }

            if (last)
            {
                return true;
            }
        }
    }

    /// <summary>
    /// Ends a connection whose client reads too slowly for the server's output budget. Its queued output stays
    /// (dropping part of it would cut gRPC messages in two); behind it each open stream ends with
    /// RESOURCE_EXHAUSTED and <paramref name="reason"/> in its trailers (or, when its last DATA stopped inside a
    /// message, RST_STREAM ENHANCE_YOUR_CALM, which gRPC clients read as RESOURCE_EXHAUSTED too), then a GOAWAY
    /// with the reason. The client gets <paramref name="drainMilliseconds"/> to read it all before the socket closes
    /// (less when it reads nothing for a second); its bytes count against the budget until then, so other
    /// connections wait for them to go instead of piling up more.
    /// </summary>
    public void CutSlowClient(string reason, int drainMilliseconds)
    {
        IsBeingCut = true;
        List<Http2ServerStream> streams;
        int last;
        lock (_sync)
        {
            if (_failure is not null)
            {
                return;
            }

            streams = [.. _streams.Values];
            last = _lastStreamId;
        }

        var status = ((int)GrpcStatusCode.ResourceExhausted).ToString(CultureInfo.InvariantCulture);
        var message = GrpcStatusMessage.Encode(reason);
        lock (_writeLock)
        {
            foreach (var stream in streams)
            {
                lock (_sync)
                {
                    if (stream.IsReset || stream.ResponseEnded)
                    {
                        continue;
                    }

                    stream.ResponseEnded = true; // a send after this one is dropped; the abort below still cancels the call
                }

                if (stream.HeadersSent && !stream.SentWholeMessages)
                {
                    Http2Frame.WriteRstStream(_output, stream.Id, Http2ErrorCode.EnhanceYourCalm);
                    continue;
                }

                _headerOut.ResetWrittenCount();
                if (!stream.HeadersSent)
                {
                    stream.WriteResponseHeaders(_headerOut); // trailers-only
                    stream.HeadersSent = true;
                }

                HpackEncoder.Encode(_headerOut, "grpc-status", status);
                HpackEncoder.Encode(_headerOut, "grpc-message", message);
                WriteHeaderBlock(stream.Id, endStream: true);
            }

            Http2Frame.WriteGoAway(_output, last, Http2ErrorCode.EnhanceYourCalm, reason);
            _corked = false;
            FlushLocked();
        }

        AbortAfterDrain(new IOException(reason), drainMilliseconds);
    }

    /// <summary>Resets a stream from the server side (mark it aborted first, so nothing more is sent on it).</summary>
    public void ResetStream(Http2ServerStream stream, Http2ErrorCode code)
    {
        stream.MarkReset();
        lock (_sync)
        {
            RememberResetLocked(stream.Id);
        }

        WriteControl(output => Http2Frame.WriteRstStream(output, stream.Id, code));
        CloseStream(stream);
    }

    private void NoteIdleLocked()
    {
        if (_streams.Count == 0 && _idleSinceTicks == 0)
        {
            _idleSinceTicks = Environment.TickCount64;
        }
    }

    /// <summary>
    /// Notes a stream this server reset or refused: frames the client sent before it saw the reset
    /// (trailers among them) are then ignored, as RFC 9113 section 5.1 asks, instead of failing the connection.
    /// </summary>
    private void RememberResetLocked(int streamId)
    {
        if (_resetIds.Add(streamId))
        {
            _resetOrder.Enqueue(streamId);
            if (_resetOrder.Count > MaxRememberedResets)
            {
                _resetIds.Remove(_resetOrder.Dequeue());
            }
        }
    }

    /// <summary>
    /// The handler looked at <paramref name="bytes"/> more of a request body (examined, not only
    /// consumed: a message larger than the window is read whole before any of it is consumed): returns
    /// that credit to the client.
    /// </summary>
    public void OnBodyExamined(Http2ServerStream stream, int bytes)
    {
        var increment = 0;
        int connectionIncrement;
        lock (_sync)
        {
            if (_failure is not null)
            {
                return;
            }

            ReleaseBufferedLocked(stream, bytes);
            connectionIncrement = TakeConnectionCreditLocked();
            if (!stream.RequestEnded && !stream.IsReset)
            {
                stream.ReceiveCredit += bytes;
                increment = TakeStreamCreditLocked(stream);
            }
        }

        if (connectionIncrement > 0)
        {
            WriteControl(output => Http2Frame.WriteWindowUpdate(output, 0, connectionIncrement));
        }

        if (increment > 0)
        {
            WriteControl(output => Http2Frame.WriteWindowUpdate(output, stream.Id, increment));
        }
    }

    /// <summary>Up to <paramref name="bytes"/> of a stream's buffered request bytes no longer count against the connection's window.</summary>
    private void ReleaseBufferedLocked(Http2ServerStream stream, long bytes)
    {
        var released = Math.Min(bytes, stream.BufferedRequestBytes);
        stream.BufferedRequestBytes -= released;
        _connectionCredit += released;
    }

    /// <summary>The connection credit to return now, in steps of a quarter window (the same argument as a stream's, below).</summary>
    private int TakeConnectionCreditLocked()
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
    private static int TakeStreamCreditLocked(Http2ServerStream stream)
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

    /// <summary>Forgets a finished or reset stream; the last one of a connection shutting down closes it.</summary>
    private void CloseStream(Http2ServerStream stream)
    {
        bool closeNow;
        int connectionIncrement;
        TaskCompletionSource? signal;
        lock (_sync)
        {
            if (!_streams.Remove(stream.Id))
            {
                return;
            }

            // Bytes the handler never looked at (it ended early, or the stream was reset) are freed with the stream.
            ReleaseBufferedLocked(stream, stream.BufferedRequestBytes);
            connectionIncrement = _failure is null ? TakeConnectionCreditLocked() : 0;
            closeNow = _streams.Count == 0 && (_goAwayLastStreamId != int.MaxValue || _clientGoingAway);
            NoteIdleLocked();
            signal = _capacity.TakeLocked(); // a flush waiting for credit on a reset stream must see it
        }

        signal?.TrySetResult();
        if (closeNow)
        {
            Abort(new IOException("The connection closed after its last stream."), graceful: true);
        }
        else if (connectionIncrement > 0)
        {
            WriteControl(output => Http2Frame.WriteWindowUpdate(output, 0, connectionIncrement));
        }
    }

    /// <summary>Frames <see cref="_headerOut"/> as HEADERS (and CONTINUATION); the caller holds <see cref="_writeLock"/>.</summary>
    private void WriteHeaderBlock(int streamId, bool endStream) =>
        Http2Frame.WriteHeaders(_output, streamId, _headerOut.WrittenSpan, endStream, _peerMaxFrameSize);

    /// <summary>Writes one control frame now; writes never wait, so the reader thread may call this too.</summary>
    private void WriteControl(Action<PooledBufferWriter> write)
    {
        lock (_writeLock)
        {
            write(_output);
            FlushLocked();
        }
    }

    /// <summary>Hands <see cref="_output"/> to the socket; the caller holds <see cref="_writeLock"/>. A failure aborts the connection.</summary>
    private void FlushLocked()
    {
        if (_output.WrittenCount == 0 || (_corked && _output.WrittenCount < CorkedOutputLimit && Environment.CurrentManagedThreadId == _readerThreadId))
        {
            return; // the reader thread sends its batch's output when the batch ends
        }

        try
        {
            _transport.Write(_output.WrittenSpan);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
        {
            // Abort takes _sync, never _writeLock: safe to call here.
            ThreadPool.UnsafeQueueUserWorkItem(static state => state.Connection.Abort(state.Error), (Connection: this, Error: ex), preferLocal: false);
        }
        finally
        {
            _output.ResetWrittenCount();
        }
    }



    // ---------------------------------------------------------------- reading (the reader thread)

    private async Task ReadLoopAsync()
    {
        _readerThreadId = Environment.CurrentManagedThreadId;
        try
        {
            if (_listener.Tls is { } tls)
            {
                // Asynchronous, so a client that connects and says nothing holds no thread; the keepalive tick aborts a
                // handshake that takes longer than HandshakeTimeoutMilliseconds.
                var ssl = new SslStream(_socketStream, leaveInnerStreamOpen: true);
                var handshake = ssl.AuthenticateAsServerAsync(tls);
                if (!handshake.IsCompleted)
                {
                    _readerThreadId = -1;
                    await handshake.ConfigureAwait(false);
                    await Resume();
                }

                handshake.GetAwaiter().GetResult();
                _clientCertificate = ssl.RemoteCertificate as X509Certificate2 ?? (ssl.RemoteCertificate is { } c ? new X509Certificate2(c) : null);
                lock (_writeLock)
                {
                    _transport = ssl;
                }
            }

            await ReadPrefaceAsync().ConfigureAwait(false);
            WriteControl(output =>
            {
                Http2Frame.WriteSettings(output,
                [
                    (Http2Frame.SettingsMaxConcurrentStreams, (uint)_listener.MaxConcurrentStreams),
                    (Http2Frame.SettingsInitialWindowSize, StreamReceiveWindow),
                    (Http2Frame.SettingsMaxHeaderListSize, MaxHeaderListSize),
                    (Http2Frame.SettingsEnablePush, 0),
                ]);
                Http2Frame.WriteWindowUpdate(output, 0, ConnectionReceiveWindow - Http2Frame.DefaultWindowSize);
            });
            lock (_sync)
            {
                _ready = true; // from here other threads may send frames (keepalive PINGs, GOAWAY)
                _idleSinceTicks = Environment.TickCount64;
            }

            var first = true;
            while (true)
            {
                // One batch: the frames of one socket read. Request bytes reach the handlers at its end, so
                // a burst of publishes is seen as one (appended as a batch, acked with one flush), and what
                // handlers running here write leaves in one socket write (see FlushLocked).
                _corked = true;
                try
                {
                    while (_frames.TryRead(out var type, out var flags, out var streamId, out var payload))
                    {
                        Volatile.Write(ref _lastFrameTicks, Environment.TickCount64);
                        if (first && (type != FrameType.Settings || (flags & Http2Frame.Ack) != 0))
                        {
                            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "the client preface must end with a SETTINGS frame");
                        }

                        first = false;
                        OnFrame(type, flags, streamId, payload.Span);
                    }

                    FlushRequestBodies();
                }
                finally
                {
                    _corked = false;
                }

                lock (_writeLock)
                {
                    FlushLocked();
                }

                var filling = FillAsync();
                if (!filling.IsCompletedSuccessfully)
                {
                    await filling.ConfigureAwait(false);
                }
            }
        }
        catch (Http2ConnectionException ex)
        {
            LogProtocolError(_logger, Peer, ex.Code, ex.Message);
            int last;
            lock (_sync)
            {
                last = _lastStreamId;
            }

            WriteControl(output => Http2Frame.WriteGoAway(output, last, ex.Code, ex.Message));
            Abort(new IOException($"HTTP/2 protocol error ({ex.Code}): {ex.Message}", ex), graceful: true);
        }
        catch (HpackException ex)
        {
            LogProtocolError(_logger, Peer, Http2ErrorCode.CompressionError, ex.Message);
            int last;
            lock (_sync)
            {
                last = _lastStreamId;
            }

            WriteControl(output => Http2Frame.WriteGoAway(output, last, Http2ErrorCode.CompressionError, ex.Message));
            Abort(new IOException($"HTTP/2 header compression error: {ex.Message}", ex), graceful: true);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or System.Security.Authentication.AuthenticationException or InvalidOperationException or OperationCanceledException)
        {
            LogConnectionEnded(_logger, Peer, ex.Message);
            Abort(ex as IOException ?? new IOException(ex.Message, ex));
        }
        catch (Exception ex)
        {
            LogReaderFailed(_logger, ex, Peer);
            Abort(new IOException($"The HTTP/2 connection failed: {ex.Message}", ex));
        }
        finally
        {
            _readerThreadId = -1;
        }
    }

    /// <summary>
    /// Reads more of the client's bytes into <see cref="_frames"/>. What has arrived is read at once. Otherwise a reader
    /// thread waits in poll(2) for up to <see cref="Http2Listener.ReaderLingerMilliseconds"/> (the kernel wakes it directly,
    /// which keeps a busy connection's round trip short), and past that gives the thread back: the connection then holds
    /// neither a thread nor a read buffer until the client sends, and goes on on a new reader thread. With a linger of 0
    /// it never holds a thread: each read that must wait resumes on the thread pool.
    /// </summary>
    private ValueTask FillAsync()
    {
        var linger = _listener.ReaderLingerMilliseconds;
        var onOwnThread = Thread.CurrentThread.IsThreadPoolThread is false;
        if (ReferenceEquals(_transport, _socketStream))
        {
            while (true)
            {
                var read = _socketStream.TryRead(_frames.FreeSpace().Span);
                if (read >= 0)
                {
                    _frames.Filled(read);
                    return ValueTask.CompletedTask;
                }

                if (linger <= 0 || !onOwnThread || !_socketStream.WaitReadable(linger))
                {
                    return ParkAsync(tls: null);
                }
            }
        }

        // TLS: the SslStream may hold decrypted bytes the socket no longer shows, so ask it, not the socket.
        var reading = _transport.ReadAsync(_frames.FreeSpace());
        if (reading.IsCompletedSuccessfully)
        {
            _frames.Filled(reading.Result);
            return ValueTask.CompletedTask;
        }

        var task = reading.AsTask();
        if (linger > 0 && onOwnThread)
        {
            try
            {
                if (task.Wait(linger))
                {
                    _frames.Filled(task.Result);
                    return ValueTask.CompletedTask;
                }
            }
            catch (AggregateException ex) when (ex.InnerException is { } inner)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(inner);
            }
        }

        return ParkAsync(task);
    }

    /// <summary>Gives the thread back until the client sends (or, with <paramref name="tls"/>, until that read completes).</summary>
    private async ValueTask ParkAsync(Task<int>? tls)
    {
        _readerThreadId = -1;
        if (tls is not null)
        {
            var read = await tls.ConfigureAwait(false);
            await Resume();
            _frames.Filled(read);
            return;
        }

        while (true)
        {
            ReleaseBuffers();
            await _socketStream.WaitReadableAsync().ConfigureAwait(false);
            await Resume();
            var read = _socketStream.TryRead(_frames.FreeSpace().Span);
            if (read >= 0)
            {
                _frames.Filled(read);
                return;
            }

            _readerThreadId = -1; // woken with nothing to read after all: wait again
        }
    }

    /// <summary>A quiet connection's buffers go back to the pool: the read buffer, a header block's, the output's.</summary>
    private void ReleaseBuffers()
    {
        _frames.ReleaseIfEmpty();
        _headerBlock.ReleaseIfIdle();
        lock (_writeLock)
        {
            _output.ReleaseIfEmpty(); // a writer (a subscription) rents it again when it next writes
        }
    }

    /// <summary>After an await: goes on on a new reader thread (or here, on the pool, with a linger of 0), as the reader.</summary>
    private async ValueTask Resume()
    {
        if (_listener.ReaderLingerMilliseconds > 0)
        {
            await new ToNewReaderThread(this);
        }

        _readerThreadId = Environment.CurrentManagedThreadId;
    }

    private async ValueTask ReadPrefaceAsync()
    {
        while (!PrefaceRead())
        {
            await FillAsync().ConfigureAwait(false);
        }
    }

    /// <summary>True once the whole preface was read (and skipped); throws as soon as the bytes differ from it.</summary>
    private bool PrefaceRead()
    {
        var preface = Http2Frame.Preface;
        var buffered = _frames.Buffered;
        var have = Math.Min(buffered.Length, preface.Length);
        if (!buffered[..have].SequenceEqual(preface[..have]))
        {
            throw new Http2ConnectionException(
                Http2ErrorCode.ProtocolError,
                "not an HTTP/2 connection preface: this endpoint speaks gRPC over HTTP/2 only (h2c with prior knowledge, or TLS with ALPN h2)");
        }

        if (have < preface.Length)
        {
            return false;
        }

        _frames.Skip(preface.Length);
        return true;
    }

    private void OnFrame(FrameType type, byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (_headerBlock.InProgress && type != FrameType.Continuation)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"a {type} frame arrived inside a header block");
        }

        switch (type)
        {
            case FrameType.Data:
                OnData(flags, streamId, payload);
                break;
            case FrameType.Headers:
                OnHeaders(flags, streamId, payload);
                break;
            case FrameType.Continuation:
                OnContinuation(flags, streamId, payload);
                break;
            case FrameType.RstStream:
                OnRstStream(streamId, payload);
                break;
            case FrameType.Settings:
                OnSettings(flags, streamId, payload);
                break;
            case FrameType.Ping:
                OnPing(flags, streamId, payload);
                break;
            case FrameType.GoAway:
                OnGoAway(streamId, payload);
                break;
            case FrameType.WindowUpdate:
                OnWindowUpdate(streamId, payload);
                break;
            case FrameType.Priority:
                Http2Frame.ValidatePriority(streamId, payload);
                break;
            case FrameType.PushPromise:
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "PUSH_PROMISE from a client");
            default:
                break; // unknown frame types are ignored (RFC 9113 section 4.1)
        }
    }

    private void OnData(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (streamId == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "DATA on stream 0");
        }

        var flowLength = payload.Length;
        var data = Http2Frame.RemovePadding(flags, payload);
        var endStream = (flags & Http2Frame.EndStream) != 0;
        var connectionIncrement = 0;
        var streamIncrement = 0;
        Http2ServerStream? stream;
        Http2ServerStream? halfClosed = null;
        lock (_sync)
        {
            _connectionWindow -= flowLength;
            if (_connectionWindow < 0)
            {
                throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "the client sent more than the connection's flow-control window");
            }

            stream = FindStreamLocked(streamId, "DATA");
            if (stream is not null)
            {
                if (stream.RequestEnded)
                {
                    halfClosed = stream; // a stream error (RFC 9113 section 5.1), handled outside the lock
                    stream = null;
                }
                else
                {
                    stream.ReceiveWindow -= flowLength;
                    if (stream.ReceiveWindow < 0)
                    {
                        throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, $"the client sent more than stream {streamId}'s flow-control window");
                    }

                    // Padding is never read by the handler: its credit goes back with the next update.
                    stream.ReceiveCredit += flowLength - data.Length;
                    stream.BufferedRequestBytes += data.Length;
                    if (endStream)
                    {
                        stream.RequestEnded = true;
                    }
                    else if (flowLength > data.Length)
                    {
                        streamIncrement = TakeStreamCreditLocked(stream);
                    }
                }
            }

            // Whatever the stream does not buffer (padding, frames for closed or unknown streams) is credited now.
            _connectionCredit += stream is null ? flowLength : flowLength - data.Length;
            connectionIncrement = TakeConnectionCreditLocked();
        }

        if (halfClosed is not null)
        {
            halfClosed.OnAborted(new IOException($"The client sent DATA on stream {streamId} after ending its request."));
            ResetStream(halfClosed, Http2ErrorCode.StreamClosed);
        }

        if (connectionIncrement > 0)
        {
            WriteControl(output => Http2Frame.WriteWindowUpdate(output, 0, connectionIncrement));
        }

        if (streamIncrement > 0)
        {
            WriteControl(output => Http2Frame.WriteWindowUpdate(output, streamId, streamIncrement));
        }

        if (stream is null)
        {
            return;
        }

        if (!data.IsEmpty)
        {
            stream.AppendRequestData(data);
        }

        if (endStream)
        {
            stream.EndRequest(); // may run the handler inline: no lock held
        }
        else if (!data.IsEmpty && !stream.FlushPending)
        {
            stream.FlushPending = true;
            _unflushedBodies.Add(stream);
        }
    }

    /// <summary>Makes the batch's request bytes visible to their handlers (which may run here, inline).</summary>
    private void FlushRequestBodies()
    {
        for (var i = 0; i < _unflushedBodies.Count; i++)
        {
            var stream = _unflushedBodies[i];
            stream.FlushPending = false;
            stream.FlushRequestData();
        }

        _unflushedBodies.Clear();
    }

    private void OnHeaders(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (_headerBlock.OnHeaders(flags, streamId, payload))
        {
            OnHeaderBlock(streamId, _headerBlock.EndStream);
        }
    }

    private void OnContinuation(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (_headerBlock.OnContinuation(flags, streamId, payload))
        {
            OnHeaderBlock(streamId, _headerBlock.EndStream);
        }
    }

    private void OnHeaderBlock(int streamId, bool endStream)
    {
        _headerFields.Clear();
        var fits = _decoder.Decode(_headerBlock.Block, _headerFields); // always: the decoder's table must follow the client's
        var tooLarge = false;

        Http2ServerStream? stream;
        string? refusal = null;
        var refusalCode = Http2ErrorCode.RefusedStream;
        lock (_sync)
        {
            if (_streams.TryGetValue(streamId, out var existing))
            {
                // Request trailers: they must end the request.
                if (existing.RequestEnded || !endStream)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"a second header block on stream {streamId} that does not end its request");
                }

                existing.RequestEnded = true;
                stream = existing;
                if (!fits)
                {
                    refusal = $"request trailers larger than {_decoder.MaxHeaderListSize} bytes";
                    refusalCode = Http2ErrorCode.ProtocolError;
                }
            }
            else if (_resetIds.Contains(streamId))
            {
                return; // sent before the client saw our reset: ignored (its block was decoded above)
            }
            else
            {
                if ((streamId & 1) == 0 || streamId <= _lastStreamId)
                {
                    throw new Http2ConnectionException(
                        (streamId & 1) == 0 ? Http2ErrorCode.ProtocolError : Http2ErrorCode.StreamClosed,
                        $"HEADERS for stream {streamId}, which a client may not open now (last opened: {_lastStreamId})");
                }

                _lastStreamId = streamId;
                stream = null;
                if (_failure is not null)
                {
                    return; // the connection is closing: frames still buffered start nothing
                }

                if (streamId > _goAwayLastStreamId || _clientGoingAway)
                {
                    refusal = "the server is shutting down";
                }
                else if (Math.Max(_streams.Count, Volatile.Read(ref _runningCalls)) >= _listener.MaxConcurrentStreams)
                {
                    // Calls still running after their stream was reset count too: resetting streams as fast as
                    // they open (the "rapid reset" attack) cannot start more handlers than the limit.
                    refusal = $"more than {_listener.MaxConcurrentStreams} concurrent streams";
                }
                else if (!fits)
                {
                    tooLarge = true; // answered below with a gRPC status the caller can read
                }
                else if (Http2ServerStream.ValidateRequestHeaders(_headerFields) is { } malformed)
                {
                    refusal = malformed;
                    refusalCode = Http2ErrorCode.ProtocolError;
                }
                else
                {
                    stream = new Http2ServerStream(this, streamId, _headerFields, _peerInitialWindow, StreamReceiveWindow, endStream);
                    _streams.Add(streamId, stream);
                    _idleSinceTicks = 0;
                }

                if (stream is null)
                {
                    RememberResetLocked(streamId);
                }
            }
        }

        if (tooLarge)
        {
            RefuseHeaderListTooLarge(streamId, endStream);
            return;
        }

        if (refusal is not null)
        {
            LogStreamRefused(_logger, Peer, streamId, refusal);
            if (stream is not null)
            {
                stream.OnAborted(new IOException($"The client sent {refusal}."));
                ResetStream(stream, refusalCode);
            }
            else
            {
                WriteControl(output => Http2Frame.WriteRstStream(output, streamId, refusalCode));
            }

            return;
        }

        if (stream!.Started)
        {
            stream.EndRequest();
        }
        else
        {
            stream.Started = true;
            Interlocked.Increment(ref _runningCalls);
            _listener.StartCall(stream);
        }
    }

    /// <summary>
    /// Answers a request whose header list is over our SETTINGS_MAX_HEADER_LIST_SIZE with a trailers-only
    /// RESOURCE_EXHAUSTED response naming the limit (then RST_STREAM NO_ERROR if the client is still
    /// sending), instead of closing the connection: the block was decoded whole, so the connection is sound.
    /// </summary>
    private void RefuseHeaderListTooLarge(int streamId, bool endStream)
    {
        var reason = $"request headers larger than {_decoder.MaxHeaderListSize} bytes";
        LogStreamRefused(_logger, Peer, streamId, reason);
        lock (_writeLock)
        {
            _headerOut.ResetWrittenCount();
            HpackEncoder.Encode(_headerOut, ":status", "200");
            HpackEncoder.Encode(_headerOut, "content-type", "application/grpc");
            HpackEncoder.Encode(_headerOut, "grpc-status", ((int)GrpcStatusCode.ResourceExhausted).ToString(CultureInfo.InvariantCulture));
            HpackEncoder.Encode(_headerOut, "grpc-message", reason);
            WriteHeaderBlock(streamId, endStream: true);
            if (!endStream)
            {
                Http2Frame.WriteRstStream(_output, streamId, Http2ErrorCode.NoError);
            }

            FlushLocked();
        }
    }

    private void OnRstStream(int streamId, ReadOnlySpan<byte> payload)
    {
        var code = Http2Frame.ReadRstStream(streamId, payload);
        Http2ServerStream? stream;
        lock (_sync)
        {
            stream = FindStreamLocked(streamId, "RST_STREAM");
        }

        if (stream is not null)
        {
            CountClientReset();
            stream.OnAborted(new IOException($"The client reset the stream ({code})."));
            CloseStream(stream);
        }
    }

    /// <summary>
    /// Counts a client reset of an open stream (reader thread only). Opening and resetting streams in a
    /// loop ("rapid reset") cannot run more handlers than the stream limit, since running calls count
    /// against it, but each one still starts and cancels a call: more than
    /// <see cref="Http2Listener.MaxResetsPerWindow"/> resets in <see cref="Http2Listener.ResetWindow"/>
    /// end the connection with ENHANCE_YOUR_CALM.
    /// </summary>
    private void CountClientReset()
    {
        var now = Environment.TickCount64;
        if (now - _resetWindowStart >= (long)Http2Listener.ResetWindow.TotalMilliseconds)
        {
            _resetWindowStart = now;
            _resetsInWindow = 0;
        }

        if (++_resetsInWindow > _listener.MaxResetsPerWindow)
        {
            throw new Http2ConnectionException(
                Http2ErrorCode.EnhanceYourCalm,
                $"the client reset more than {_listener.MaxResetsPerWindow} streams within {Http2Listener.ResetWindow.TotalSeconds:0} s");
        }
    }

    private void OnSettings(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (Http2Frame.ReadSettingsIsAck(flags, streamId, payload))
        {
            return;
        }

        TaskCompletionSource? signal;
        lock (_sync)
        {
            for (var i = 0; i < payload.Length; i += 6)
            {
                var id = BinaryPrimitives.ReadUInt16BigEndian(payload[i..]);
                var value = BinaryPrimitives.ReadUInt32BigEndian(payload[(i + 2)..]);
                Http2Frame.ValidateSetting(id, value);
                switch (id)
                {
                    case Http2Frame.SettingsInitialWindowSize:
                        var delta = (int)value - _peerInitialWindow;
                        _peerInitialWindow = (int)value;
                        foreach (var stream in _streams.Values)
                        {
                            stream.SendWindow += delta;
                            if (stream.SendWindow > Http2Frame.MaxWindowSize)
                            {
                                throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, $"SETTINGS_INITIAL_WINDOW_SIZE {value} takes stream {stream.Id}'s window above 2^31-1");
                            }
                        }

                        break;
                    case Http2Frame.SettingsMaxFrameSize:
                        _peerMaxFrameSize = (int)value;
                        break;
                    default:
                        break; // header table size (our encoder never indexes), concurrent streams (we never push), header list size, unknown ids
                }
            }

            signal = _capacity.TakeLocked();
        }

        WriteControl(static output => Http2Frame.Write(output, FrameType.Settings, Http2Frame.Ack, 0, []));
        signal?.TrySetResult();
    }

    private void OnPing(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        var data = Http2Frame.ReadPing(streamId, payload);
        if ((flags & Http2Frame.Ack) != 0)
        {
            lock (_sync)
            {
                _pingSentTicks = 0;
            }

            return;
        }

        WriteControl(output => Http2Frame.WritePing(output, data, ack: true));
    }

    private void OnGoAway(int streamId, ReadOnlySpan<byte> payload)
    {
        Http2Frame.ReadGoAway(streamId, payload); // checked; a client's last stream id and code change nothing here
        bool closeNow;
        lock (_sync)
        {
            _clientGoingAway = true;
            closeNow = _streams.Count == 0;
        }

        if (closeNow)
        {
            Abort(new IOException("The client closed the connection (GOAWAY)."), graceful: true);
        }
    }

    private void OnWindowUpdate(int streamId, ReadOnlySpan<byte> payload)
    {
        var increment = Http2Frame.ReadWindowIncrement(payload);
        TaskCompletionSource? signal;
        Http2ServerStream? broken = null;
        var brokenCode = Http2ErrorCode.FlowControlError;
        lock (_sync)
        {
            if (streamId == 0)
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
            else if (FindStreamLocked(streamId, "WINDOW_UPDATE") is { } stream)
            {
                stream.SendWindow += increment;
                if (increment == 0)
                {
                    broken = stream;
                    brokenCode = Http2ErrorCode.ProtocolError;
                }
                else if (stream.SendWindow > Http2Frame.MaxWindowSize)
                {
                    broken = stream;
                }
            }

            signal = _capacity.TakeLocked();
        }

        if (broken is not null)
        {
            broken.OnAborted(new IOException($"The client sent an invalid WINDOW_UPDATE for the stream ({brokenCode})."));
            ResetStream(broken, brokenCode);
        }

        signal?.TrySetResult();
    }

    /// <summary>The open stream, or null for one already closed; a stream never opened is a connection error.</summary>
    private Http2ServerStream? FindStreamLocked(int streamId, string frame)
    {
        if (_streams.TryGetValue(streamId, out var stream))
        {
            return stream;
        }

        if (streamId > _lastStreamId)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"{frame} for stream {streamId}, which the client never opened");
        }

        return null; // closed or reset: frames in flight are dropped
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "HTTP/2 connection from {Peer} ended: {Reason}")]
    private static partial void LogConnectionEnded(ILogger logger, string peer, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "HTTP/2 protocol error from {Peer} ({Code}): {Reason}; the connection is closed")]
    private static partial void LogProtocolError(ILogger logger, string peer, Http2ErrorCode code, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "HTTP/2 stream {StreamId} from {Peer} refused: {Reason}")]
    private static partial void LogStreamRefused(ILogger logger, string peer, int streamId, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "HTTP/2 connection reader for {Peer} failed")]
    private static partial void LogReaderFailed(ILogger logger, Exception exception, string peer);
}
