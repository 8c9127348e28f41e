using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using Sluice.Protocol.Http2;

namespace Sluice.Server.Http2;

/// <summary>
/// The reading side of one <see cref="Http2ServerConnection"/>: the TLS handshake, the preface, then batches of
/// frames (all those of one socket read) handed to <see cref="Http2ServerFrameHandler"/>. A dedicated thread reads
/// while the client is busy; a connection quiet for <see cref="Http2Listener.ReaderLingerMilliseconds"/> gives its
/// thread and buffers back ("parks", see <see cref="FillAsync"/>) and gets a new thread when the client sends again,
/// so idle connections cost no threads.
/// </summary>
internal sealed class Http2ServerReader
{
    private const int ReadBufferSize = 64 << 10; // a read's worth of frames: a 16 KiB DATA frame four times over

    private readonly Http2ServerConnection _connection;
    private readonly Http2Listener _listener;
    private readonly ServerSocketStream _socketStream;
    private readonly Http2ServerOutput _output;
    private readonly Http2ServerFrameHandler _handler;
    private readonly Http2FrameReader _frames = new(ReadBufferSize, "client");
    private int _threadId;
    private long _lastFrameTicks = Environment.TickCount64;

    public Http2ServerReader(Http2ServerConnection connection, Http2Listener listener, ServerSocketStream socketStream, Http2ServerOutput output, Http2ServerFrameHandler handler)
    {
        _connection = connection;
        _listener = listener;
        _socketStream = socketStream;
        _output = output;
        _handler = handler;
    }

    /// <summary>True on this connection's reader thread.</summary>
    public bool OnThread => Environment.CurrentManagedThreadId == _threadId;

    /// <summary>When the last frame arrived (for keepalive PINGs).</summary>
    public long LastFrameTicks => Volatile.Read(ref _lastFrameTicks);

    /// <summary>Starts reading on a reader thread of its own: TLS handshake, preface, then frames until the connection ends.</summary>
    public void Start() => RunOnNewThread(static state => _ = ((Http2ServerReader)state!).ReadLoopAsync(), this);

    /// <summary>
    /// Runs <paramref name="work"/> on a new reader thread; where the process may not start one (its thread limit), on
    /// the thread pool instead, so the connection is still served, only without a thread of its own.
    /// </summary>
    private void RunOnNewThread(Action<object?> work, object? state)
    {
        if (_listener.TryTakeReaderThread())
        {
            try
            {
                new Thread(static s =>
                {
                    var (listener, work, state) = ((Http2Listener, Action<object?>, object?))s!;
                    try
                    {
                        work(state); // until the connection goes quiet (or ends): then the thread ends
                    }
                    finally
                    {
                        listener.ReturnReaderThread();
                    }
                })
                { IsBackground = true, Name = "sluice-h2 " + _connection.Peer }.UnsafeStart((_listener, work, state));
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
    private readonly struct ToNewReaderThread(Http2ServerReader reader) : ICriticalNotifyCompletion
    {
        public ToNewReaderThread GetAwaiter() => this;

        public bool IsCompleted => false;

        public void GetResult()
        {
        }

        public void OnCompleted(Action continuation) => UnsafeOnCompleted(continuation);

        public void UnsafeOnCompleted(Action continuation) => reader.RunOnNewThread(static state => ((Action)state!)(), continuation);
    }

    private async Task ReadLoopAsync()
    {
        _threadId = Environment.CurrentManagedThreadId;
        try
        {
            if (_listener.Tls is { } tls)
            {
                // Asynchronous, so a client that connects and says nothing holds no thread; the keepalive tick aborts a
                // handshake that takes longer than the handshake timeout.
                var ssl = new SslStream(_socketStream, leaveInnerStreamOpen: true);
                var handshake = ssl.AuthenticateAsServerAsync(tls);
                if (!handshake.IsCompleted)
                {
                    _threadId = -1;
                    await handshake.ConfigureAwait(false);
                    await Resume();
                }

                handshake.GetAwaiter().GetResult();
                _connection.ClientCertificate = ssl.RemoteCertificate as X509Certificate2 ?? (ssl.RemoteCertificate is { } c ? new X509Certificate2(c) : null);
                _output.UseTransport(ssl);
            }

            await ReadPrefaceAsync().ConfigureAwait(false);
            _connection.OnPrefaceRead();

            var first = true;
            while (true)
            {
                // One batch: the frames of one socket read. Request bytes reach the handlers at its end, so
                // a burst of publishes is seen as one (appended as a batch, acked with one flush), and what
                // handlers running here write leaves in one socket write (see Http2ServerOutput.Corked).
                _output.Corked = true;
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
                        _handler.OnFrame(type, flags, streamId, payload.Span);
                    }

                    _handler.FlushRequestBodies();
                }
                finally
                {
                    _output.Corked = false;
                }

                _output.Flush();

                var filling = FillAsync();
                if (!filling.IsCompletedSuccessfully)
                {
                    await filling.ConfigureAwait(false);
                }
            }
        }
        catch (Http2ConnectionException ex)
        {
            _connection.OnProtocolError(ex.Code, ex.Message, new IOException($"HTTP/2 protocol error ({ex.Code}): {ex.Message}", ex));
        }
        catch (HpackException ex)
        {
            _connection.OnProtocolError(Http2ErrorCode.CompressionError, ex.Message, new IOException($"HTTP/2 header compression error: {ex.Message}", ex));
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or System.Security.Authentication.AuthenticationException or InvalidOperationException or OperationCanceledException)
        {
            _connection.OnReaderEnded(ex);
        }
        catch (Exception ex)
        {
            _connection.OnReaderFailed(ex);
        }
        finally
        {
            _threadId = -1;
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
        var transport = _output.Transport;
        if (ReferenceEquals(transport, _socketStream))
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
        var reading = transport.ReadAsync(_frames.FreeSpace());
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
        _threadId = -1;
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

            _threadId = -1; // woken with nothing to read after all: wait again
        }
    }

    /// <summary>A quiet connection's buffers go back to the pool: the read buffer, a header block's, the output's.</summary>
    private void ReleaseBuffers()
    {
        _frames.ReleaseIfEmpty();
        _handler.ReleaseBuffers();
        _output.ReleaseBuffer();
    }

    /// <summary>After an await: goes on on a new reader thread (or here, on the pool, with a linger of 0), as the reader.</summary>
    private async ValueTask Resume()
    {
        if (_listener.ReaderLingerMilliseconds > 0)
        {
            await new ToNewReaderThread(this);
        }

        _threadId = Environment.CurrentManagedThreadId;
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
}
