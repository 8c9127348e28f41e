using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Sluice.Client.Grpc;
using Sluice.Protocol.Http2;

namespace Sluice.Client.Http2;

/// <summary>
/// One client HTTP/2 connection (RFC 9113), h2c with prior knowledge or TLS with ALPN "h2".
/// <para>
/// Why it exists: HttpClient's HTTP/2 connection hands every write, flush and read to its own loops
/// and completes each asynchronously, which costs several thread hops per request message. On a
/// 2-core machine that is most of the price of a synchronous publish (docs/benchmarks.md). Here a
/// caller's write goes to the socket on the caller's thread, and one dedicated thread per connection
/// reads frames from a blocking socket and hands them to the streams. Their waiters resume on the
/// thread pool, as HttpClient's do, except the publish session's ack reader and the acks it completes,
/// which run on the reader thread (see <see cref="TryDefer"/>).
/// </para>
/// <para>
/// Writes are serialized by <see cref="_writeLock"/>; frames that the reader must send (SETTINGS
/// and PING acknowledgements, window updates, resets) are queued in <see cref="_control"/> and sent
/// by whoever holds or next takes the write lock, so the reader never waits for a writer.
/// </para>
/// </summary>
internal sealed class Http2Connection : IDisposable
{
    /// <summary>Each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE): a fast subscription never waits on updates.</summary>
    public const int StreamReceiveWindow = 4 << 20;

    private const int ConnectionReceiveWindow = 16 << 20;
    private const int MaxHeaderListSize = 64 << 10;
    private const int ReadBufferSize = 64 << 10;

    [ThreadStatic]
    private static Http2Connection? _threadReader;

    [ThreadStatic]
    private static int _threadReaderGeneration;

    private readonly Stream _transport;
    private readonly string _scheme;
    private readonly string _authority;
    private readonly GrpcChannelOptions _options;
    private readonly HpackDecoder _decoder = new(maxHeaderListSize: MaxHeaderListSize);
    private readonly Dictionary<int, Http2Stream> _streams = [];
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Http2CapacitySignal _capacity = new();
    private readonly ArrayBufferWriter<byte> _output = new(64 * 1024);
    private readonly ArrayBufferWriter<byte> _control = new(256);
    private readonly TaskCompletionSource _settingsReceived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<KeyValuePair<string, string>> _headerFields = [];
    private readonly Http2HeaderBlock _headerBlock = new(MaxHeaderListSize * 2);
    private readonly Timer? _keepAlive;
    private int _reserved;
    private int _nextStreamId = 1;
    private long _sendWindow = Http2Frame.DefaultWindowSize;
    private int _peerInitialWindow = Http2Frame.DefaultWindowSize;
    private int _peerMaxFrameSize = Http2Frame.DefaultMaxFrameSize;
    private long _peerMaxConcurrentStreams = uint.MaxValue;
    private long _connectionReceived;
    private bool _goingAway;
    private Exception? _failure;
    private long _lastFrameTicks = Environment.TickCount64;
    private long _pingSentTicks;

    // The reader: its buffer belongs to the thread of the current generation; _readerSync guards the rest.
    private readonly Lock _readerSync = new();
    private readonly Queue<IDeferredCompletion> _deferred = new();
    private readonly Http2FrameReader _frames = new(ReadBufferSize, "server");
    private int _readerGeneration;
    private long _userCodeSince;

    private Http2Connection(Stream transport, Uri address, GrpcChannelOptions options)
    {
        _transport = transport;
        _scheme = address.Scheme;
        var host = address.HostNameType == UriHostNameType.IPv6 ? $"[{address.IdnHost}]" : address.IdnHost; // IdnHost drops IPv6 brackets
        _authority = address.IsDefaultPort ? host : $"{host}:{address.Port}";
        _options = options;
        if (options.KeepAlivePingDelay > TimeSpan.Zero && options.KeepAlivePingDelay != Timeout.InfiniteTimeSpan)
        {
            var period = TimeSpan.FromTicks(Math.Clamp(Math.Min(options.KeepAlivePingDelay.Ticks, options.KeepAlivePingTimeout.Ticks) / 4, TimeSpan.TicksPerMillisecond * 50, TimeSpan.TicksPerSecond * 5));
            _keepAlive = new Timer(static state => ((Http2Connection)state!).OnKeepAliveTick(), this, period, period);
        }
    }

    /// <summary>The lock that guards this connection's and its streams' state.</summary>
    public Lock Sync { get; } = new();

    /// <summary>False once the connection failed, was closed or is going away: it takes no new streams.</summary>
    public bool IsUsable
    {
        get
        {
            lock (Sync)
            {
                return _failure is null && !_goingAway;
            }
        }
    }

    /// <summary>False while the server's SETTINGS_MAX_CONCURRENT_STREAMS is 0.</summary>
    public bool AllowsStreams
    {
        get
        {
            lock (Sync)
            {
                return _peerMaxConcurrentStreams > 0;
            }
        }
    }

    /// <summary>True once the connection failed or was closed.</summary>
    public bool IsClosed
    {
        get
        {
            lock (Sync)
            {
                return _failure is not null;
            }
        }
    }

    /// <summary>Connects, exchanges prefaces and waits for the server's first SETTINGS.</summary>
    public static async Task<Http2Connection> ConnectAsync(Uri address, GrpcChannelOptions options, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        try
        {
            var addresses = await Dns.GetHostAddressesAsync(address.IdnHost, timeout.Token).ConfigureAwait(false);
            var transport = await Task.Run(() => ConnectBlocking(addresses, address, options.Tls, timeout.Token), CancellationToken.None).ConfigureAwait(false);
            var connection = new Http2Connection(transport, address, options);
            await connection.StartAsync(timeout.Token).ConfigureAwait(false);
            return connection;
        }
        catch (Exception ex) when (ex is not HttpRequestException)
        {
            if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            var reason = timeout.IsCancellationRequested ? $"timed out after {options.ConnectTimeout.TotalMilliseconds:0} ms" : ex.Message;
            throw new HttpRequestException(HttpRequestError.ConnectionError, $"Connecting to {address.Authority} failed: {reason}", ex);
        }
    }

    /// <summary>
    /// Connects (and runs the TLS handshake) with blocking calls only. On Linux a .NET socket that
    /// ever ran an asynchronous operation turns non-blocking for good, and its synchronous calls then
    /// go through the runtime's epoll thread: two more thread hops per read. The token closes the socket.
    /// </summary>
    private static Stream ConnectBlocking(IPAddress[] addresses, Uri address, GrpcClientTlsOptions? tls, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var abort = cancellationToken.Register(socket.Dispose);
        Stream? transport = null;
        try
        {
            socket.Connect(addresses, address.Port);
            transport = new NetworkStream(socket, ownsSocket: true);
            if (address.Scheme == Uri.UriSchemeHttps)
            {
                transport = Authenticate(transport, address, tls);
            }

            cancellationToken.ThrowIfCancellationRequested();
            return transport;
        }
        catch
        {
            ((IDisposable?)transport ?? socket).Dispose(); // the transport owns the socket
            cancellationToken.ThrowIfCancellationRequested();
            throw;
        }
    }

    /// <summary>Reserves room for one more stream; false when the server's concurrency limit is reached or the connection is unusable.</summary>
    public bool TryReserveStream()
    {
        lock (Sync)
        {
            if (_failure is not null || _goingAway || _reserved >= _peerMaxConcurrentStreams || _nextStreamId > int.MaxValue - (2 * _reserved) - 2)
            {
                return false;
            }

            _reserved++;
            return true;
        }
    }

    /// <summary>Completes when a stream closes or the connection changes state, so a waiting caller can try again.</summary>
    public Task CapacityChanged()
    {
        lock (Sync)
        {
            return _capacity.WaitLocked();
        }
    }



    /// <summary>
    /// Sends a request's HEADERS on a stream reserved with <see cref="TryReserveStream"/>, and starts its
    /// body. Null when the connection started going away (GOAWAY) before the request could be sent: the
    /// request is untouched and may go on another connection.
    /// </summary>
    public async Task<HttpResponseMessage?> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var stream = new Http2Stream(this, request);
        var endStream = request.Content is null;
        ArrayBufferWriter<byte> block;
        try
        {
            block = EncodeHeaders(request);
            await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            ReleaseReservation();
            throw;
        }

        try
        {
            lock (Sync)
            {
                // One block: an Abort or a GOAWAY either sees this stream or is seen here (RFC 9113 section 6.8).
                if (_failure is { } failure)
                {
                    _reserved--;
                    throw new HttpRequestException(HttpRequestError.ConnectionError, $"The HTTP/2 connection failed: {failure.Message}", failure);
                }

                if (_goingAway)
                {
                    _reserved--;
                    return null; // the request is untouched: it may go on another connection
                }

                stream.Id = _nextStreamId;
                stream.SendWindow = _peerInitialWindow;
                _nextStreamId += 2;
                _streams.Add(stream.Id, stream);
            }

            Http2Frame.WriteHeaders(_output, stream.Id, block.WrittenSpan, endStream, _peerMaxFrameSize);
            FlushLocked();
        }
        finally
        {
            ReleaseWriter();
        }

        if (endStream)
        {
            stream.OnEndStreamWritten();
        }
        else
        {
            _ = stream.SendContentAsync(request.Content!, cancellationToken);
        }

        return await stream.ResponseAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Gives back a reservation that did not become a stream.</summary>
    public void ReleaseReservation()
    {
        TaskCompletionSource? signal;
        lock (Sync)
        {
            _reserved--;
            signal = _capacity.TakeLocked();
        }

        signal?.TrySetResult();
    }

    /// <summary>
    /// Sends <paramref name="data"/> as DATA frames on <paramref name="stream"/>, waiting for flow-control
    /// credit when there is none; with <paramref name="endStream"/> the last frame ends the request.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))] // once per request write: the box is reused
    public async ValueTask WriteDataAsync(Http2Stream stream, ReadOnlyMemory<byte> data, bool endStream, CancellationToken cancellationToken)
    {
        while (true)
        {
            int take;
            Task? wait = null;
            lock (Sync)
            {
                ThrowIfFailed();
                stream.ThrowIfCannotSend();
                // A window can be negative after the server lowers SETTINGS_INITIAL_WINDOW_SIZE; an empty
                // END_STREAM frame needs no credit (RFC 9113 section 6.9.1).
                take = (int)Math.Max(0, Math.Min(Math.Min(_sendWindow, stream.SendWindow), data.Length));
                if (take <= 0 && !data.IsEmpty)
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

            var last = take == data.Length;
            await _writeLock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                RefundIfReset(stream, take); // reset meanwhile: no frame may follow RST_STREAM

                var chunk = data[..take];
                do
                {
                    var length = Math.Min(chunk.Length, _peerMaxFrameSize);
                    var flags = last && endStream && length == chunk.Length ? Http2Frame.EndStream : (byte)0;
                    Http2Frame.Write(_output, FrameType.Data, flags, stream.Id, chunk.Span[..length]);
                    chunk = chunk[length..];
                }
                while (!chunk.IsEmpty);
                FlushLocked();
            }
            finally
            {
                ReleaseWriter();
            }

            if (last)
            {
                if (endStream)
                {
                    stream.OnEndStreamWritten();
                }

                return;
            }

            data = data[take..];
        }
    }

    /// <summary>
    /// Throws if <paramref name="stream"/> was reset after it took <paramref name="credit"/> from the
    /// connection's send window, giving that credit back first: the server never sees those bytes, so it
    /// never returns them, and the connection's window would otherwise shrink for good.
    /// </summary>
    private void RefundIfReset(Http2Stream stream, int credit)
    {
        TaskCompletionSource? signal;
        Exception failure;
        lock (Sync)
        {
            if (stream.Failure is null)
            {
                return;
            }

            failure = stream.Failure;
            _sendWindow += credit;
            signal = _capacity.TakeLocked();
        }

        signal?.TrySetResult();
        throw AsIOException(failure);
    }

    /// <summary>A failure as the <see cref="IOException"/> that stream and connection callers see.</summary>
    public static IOException AsIOException(Exception failure) => failure as IOException ?? new IOException(failure.Message, failure);

    /// <summary>Returns <paramref name="increment"/> bytes of receive credit to the server for a stream.</summary>
    public void SendWindowUpdate(int streamId, int increment) => QueueControl(output => Http2Frame.WriteWindowUpdate(output, streamId, increment));

    /// <summary>Resets a stream from this side.</summary>
    public void SendReset(int streamId, Http2ErrorCode code) => QueueControl(output => Http2Frame.WriteRstStream(output, streamId, code));

    /// <summary>A stream ended or was reset: forget it and free its slot.</summary>
    public void OnStreamClosed(Http2Stream stream)
    {
        TaskCompletionSource? signal;
        bool closeNow;
        lock (Sync)
        {
            if (stream.Id == 0 || !_streams.Remove(stream.Id))
            {
                return;
            }

            _reserved--;
            signal = _capacity.TakeLocked();
            closeNow = _goingAway && _streams.Count == 0 && _failure is null;
        }

        signal?.TrySetResult();
        if (closeNow)
        {
            Abort(new IOException("The server closed the connection (GOAWAY) and its last stream ended."));
        }
    }

    /// <summary>Closes the connection: GOAWAY, then the socket; open streams fail.</summary>
    public void Dispose()
    {
        Abort(new IOException("The HTTP/2 connection was closed by the client."), Http2ErrorCode.NoError);
    }

    private static SslStream Authenticate(Stream transport, Uri address, GrpcClientTlsOptions? tls)
    {
        var ssl = new SslStream(transport, leaveInnerStreamOpen: false);
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = tls?.TargetHost ?? address.IdnHost,
            ApplicationProtocols = [SslApplicationProtocol.Http2],
            ClientCertificates = tls?.ClientCertificate is { } certificate ? [certificate] : null,
            RemoteCertificateValidationCallback = tls?.ServerCertificateValidation
                ?? (tls?.TrustedCertificateAuthorities is { } roots ? (_, cert, _, errors) => GrpcChannel.ChainsTo(roots, cert, errors) : null),
        };
        ssl.AuthenticateAsClient(options);
        if (ssl.NegotiatedApplicationProtocol != SslApplicationProtocol.Http2)
        {
            ssl.Dispose();
            throw new HttpRequestException($"The server at {address.Authority} did not agree to HTTP/2 in the TLS handshake (ALPN h2).");
        }

        return ssl;
    }

    private async Task StartAsync(CancellationToken cancellationToken)
    {
        _output.Write(Http2Frame.Preface);
        Http2Frame.WriteSettings(_output,
        [
            (Http2Frame.SettingsEnablePush, 0),
            (Http2Frame.SettingsInitialWindowSize, StreamReceiveWindow),
            (Http2Frame.SettingsMaxHeaderListSize, MaxHeaderListSize),
        ]);
        Http2Frame.WriteWindowUpdate(_output, 0, ConnectionReceiveWindow - Http2Frame.DefaultWindowSize);
        ReaderWatchdog.Register(this); // before the reader, whose failure unregisters it
        try
        {
            _transport.Write(_output.WrittenSpan);
            _output.ResetWrittenCount();
            StartReader(0);
            await _settingsReceived.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Abort(new IOException("The connection was abandoned before the server's SETTINGS arrived."));
            throw;
        }
    }

    private ArrayBufferWriter<byte> EncodeHeaders(HttpRequestMessage request)
    {
        var uri = request.RequestUri ?? throw new InvalidOperationException("The request has no URI.");
        var block = new ArrayBufferWriter<byte>(256);
        HpackEncoder.Encode(block, ":method", request.Method.Method);
        HpackEncoder.Encode(block, ":scheme", _scheme);
        HpackEncoder.Encode(block, ":authority", _authority);
        HpackEncoder.Encode(block, ":path", uri.PathAndQuery);
        foreach (var header in request.Headers.NonValidated)
        {
            AddHeader(block, header.Key, header.Value);
        }

        if (request.Content is { } content)
        {
            foreach (var header in content.Headers.NonValidated)
            {
                if (!header.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    AddHeader(block, header.Key, header.Value);
                }
            }
        }

        return block;
    }

    private static void AddHeader(ArrayBufferWriter<byte> block, string name, HeaderStringValues values)
    {
        var lower = name.ToLowerInvariant();
        if (lower is "host" or "connection" or "keep-alive" or "proxy-connection" or "transfer-encoding" or "upgrade")
        {
            return; // connection-specific: not allowed in HTTP/2 (RFC 9113 section 8.2.2)
        }

        foreach (var value in values)
        {
            HpackEncoder.Encode(block, lower, value);
        }
    }

    private void ThrowIfFailed()
    {
        if (_failure is { } failure)
        {
            throw AsIOException(failure);
        }
    }

    /// <summary>
    /// Sends <see cref="_output"/> plus queued control frames; the caller holds the write lock. The
    /// socket is blocking (see <see cref="ConnectBlocking"/>): on loopback or with room in the socket
    /// buffer this returns at once; when the server stops reading, it holds this one writer, and other
    /// writers wait for the write lock without a thread. A failed write aborts the connection and throws.
    /// </summary>
    private void FlushLocked()
    {
        if (TryFlushLocked() is { } error)
        {
            throw new IOException($"Writing to the HTTP/2 connection failed: {error.Message}", error);
        }
    }

    /// <summary>Like <see cref="FlushLocked"/>, but returns the failure (the connection is then aborted) instead of throwing.</summary>
    private Exception? TryFlushLocked()
    {
        lock (_control)
        {
            _output.Write(_control.WrittenSpan);
            _control.ResetWrittenCount();
        }

        if (_output.WrittenCount == 0)
        {
            return null;
        }

        try
        {
            _transport.Write(_output.WrittenSpan);
            return null;
        }
        catch (Exception ex)
        {
            Abort(ex); // on a timer or reader thread nothing may escape
            return ex;
        }
        finally
        {
            _output.ResetWrittenCount();
        }
    }

    /// <summary>Releases the write lock, then sends control frames queued meanwhile if nobody else took it.</summary>
    private void ReleaseWriter()
    {
        while (true)
        {
            _writeLock.Release();
            lock (_control)
            {
                if (_control.WrittenCount == 0)
                {
                    return;
                }
            }

            if (!_writeLock.Wait(0, CancellationToken.None))
            {
                return; // the holder sends them
            }

            TryFlushLocked();
        }
    }

    private void QueueControl(Action<ArrayBufferWriter<byte>> write)
    {
        lock (_control)
        {
            write(_control);
        }

        if (_threadReader == this)
        {
            // The reader must never block on the socket's send buffer (a server that waits for us to
            // read before it reads would deadlock with it): a pool thread sends the frame.
            ThreadPool.UnsafeQueueUserWorkItem(static connection => connection.TrySendControl(), this, preferLocal: false);
            return;
        }

        TrySendControl();
    }

    /// <summary>Sends queued control frames now if no writer holds the lock (the holder sends them otherwise).</summary>
    private void TrySendControl()
    {
        if (_writeLock.Wait(0, CancellationToken.None))
        {
            TryFlushLocked();
            ReleaseWriter();
        }
    }

    private void OnKeepAliveTick()
    {
        var now = Environment.TickCount64;
        bool send;
        lock (Sync)
        {
            if (_failure is not null)
            {
                return;
            }

            if (_pingSentTicks != 0)
            {
                if (now - _pingSentTicks >= (long)_options.KeepAlivePingTimeout.TotalMilliseconds)
                {
                    send = false;
                }
                else
                {
                    return;
                }
            }
            else if (now - Volatile.Read(ref _lastFrameTicks) >= (long)_options.KeepAlivePingDelay.TotalMilliseconds)
            {
                _pingSentTicks = now;
                send = true;
            }
            else
            {
                return;
            }
        }

        if (send)
        {
            QueueControl(output => Http2Frame.WritePing(output, now, ack: false));
        }
        else
        {
            Abort(new IOException($"The server did not answer a keepalive PING within {_options.KeepAlivePingTimeout.TotalMilliseconds:0} ms."));
        }
    }

    /// <summary>
    /// Fails the connection and every stream on it, and closes the socket; with <paramref name="goAway"/>
    /// it first sends GOAWAY with that code if no writer holds the lock. The first reason wins.
    /// </summary>
    private void Abort(Exception reason, Http2ErrorCode? goAway = null)
    {
        Http2Stream[] streams;
        TaskCompletionSource? signal;
        lock (Sync)
        {
            if (_failure is not null)
            {
                return;
            }

            _failure = reason as IOException ?? new IOException($"The HTTP/2 connection failed: {reason.Message}", reason);
            streams = [.. _streams.Values];
            signal = _capacity.TakeLocked();
        }

        _keepAlive?.Dispose();
        ReaderWatchdog.Unregister(this);
        signal?.TrySetResult();
        _settingsReceived.TrySetException(_failure);
        foreach (var stream in streams)
        {
            stream.Fail(_failure);
        }

        // Send what is queued (and the GOAWAY) if no writer holds the lock, then close. The GOAWAY is not
        // sent through QueueControl: from the reader that hands it to a pool thread, which could then
        // hold the lock while the socket closes under it.
        if (goAway is { } code)
        {
            lock (_control)
            {
                Http2Frame.WriteGoAway(_control, 0, code);
            }
        }

        if (_writeLock.Wait(0, CancellationToken.None))
        {
            TryFlushLocked();
            _writeLock.Release();
        }

        _transport.Dispose();
    }

    /// <summary>
    /// Runs <paramref name="completion"/> later on this thread if it is a connection's current reader
    /// thread, after the frames in hand are handled and before the next socket read; false otherwise.
    /// An awaited publish then resumes on the thread that read its ack, with no thread hop, which on a
    /// 2-core machine nearly doubles synchronous publishes. Completions run outside every lock of the
    /// connection, and the watchdog hands the socket to a new reader thread when one of them blocks.
    /// </summary>
    public static bool TryDefer(IDeferredCompletion completion)
    {
        if (_threadReader is not { } connection)
        {
            return false;
        }

        lock (connection._readerSync)
        {
            if (connection._readerGeneration != _threadReaderGeneration || connection._failure is not null)
            {
                return false;
            }

            connection._deferred.Enqueue(completion);
            return true;
        }
    }

    /// <summary>
    /// Called by <see cref="ReaderWatchdog"/>: when deferred completions have held the reader thread for
    /// longer than <see cref="ReaderWatchdog.StuckAfter"/> (user code that blocks, or is slow), a new
    /// reader thread takes over the socket, the bytes read so far and the completions still queued. The
    /// old thread ends when its completion returns.
    /// </summary>
    public void TakeOverIfStuck(long now)
    {
        int generation;
        lock (_readerSync)
        {
            if (_userCodeSince == 0 || now - _userCodeSince < (long)ReaderWatchdog.StuckAfter.TotalMilliseconds || _failure is not null)
            {
                return;
            }

            _userCodeSince = 0;
            generation = ++_readerGeneration;
        }

        StartReader(generation);
    }

    private void StartReader(int generation)
    {
        var reader = new Thread(static state =>
        {
            var (connection, generation) = ((Http2Connection, int))state!;
            connection.ReadLoop(generation);
        })
        {
            IsBackground = true,
            Name = $"sluice h2 {_authority}",
        };
        reader.Start((this, generation));
    }

    private void ReadLoop(int generation)
    {
        _threadReader = this;
        _threadReaderGeneration = generation;
        try
        {
            while (true)
            {
                while (_frames.TryRead(out var type, out var flags, out var streamId, out var payload))
                {
                    Volatile.Write(ref _lastFrameTicks, Environment.TickCount64);
                    OnFrame(type, flags, streamId, payload.Span);
                }

                if (!RunDeferred(generation))
                {
                    return; // another reader took over while a completion held this thread
                }

                _frames.Fill(_transport);
            }
        }
        catch (Http2ConnectionException ex)
        {
            Abort(new IOException($"HTTP/2 protocol error from the server ({ex.Code}): {ex.Message}", ex), ex.Code);
        }
        catch (HpackException ex)
        {
            Abort(new IOException($"The server sent headers this client cannot decode: {ex.Message}", ex), Http2ErrorCode.CompressionError);
        }
        catch (Exception ex)
        {
            Abort(ex is IOException or SocketException or ObjectDisposedException
                ? new IOException($"The HTTP/2 connection closed: {ex.Message}", ex)
                : new IOException($"The HTTP/2 connection failed: {ex.Message}", ex));
        }
        finally
        {
            _threadReader = null;
        }

        // The connection failed: completions queued before it (acks that did arrive) still run.
        RunDeferred(generation);
    }

    /// <summary>Runs the deferred completions; false when another reader took over meanwhile.</summary>
    private bool RunDeferred(int generation)
    {
        while (true)
        {
            IDeferredCompletion? completion;
            lock (_readerSync)
            {
                if (_readerGeneration != generation)
                {
                    return false;
                }

                if (!_deferred.TryDequeue(out completion))
                {
                    _userCodeSince = 0;
                    return true;
                }

                _userCodeSince = Environment.TickCount64;
            }

            try
            {
                completion.Run();
            }
            catch (Exception ex)
            {
                // Completions catch their own errors; one that still throws must not stop the reader.
                System.Diagnostics.Trace.TraceError($"Sluice HTTP/2: a deferred completion threw: {ex}");
            }
        }
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
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "PUSH_PROMISE although this client disabled push");
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
        _connectionReceived += flowLength;
        if (_connectionReceived > ConnectionReceiveWindow)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "the server sent more than the connection's flow-control window");
        }

        if (_connectionReceived >= ConnectionReceiveWindow / 2)
        {
            var increment = (int)_connectionReceived;
            _connectionReceived = 0;
            SendWindowUpdate(0, increment); // each stream's own window bounds what it buffers
        }

        if (FindStream(streamId) is { } stream)
        {
            try
            {
                stream.OnData(data, flowLength, (flags & Http2Frame.EndStream) != 0);
            }
            catch (Http2StreamException ex)
            {
                ResetForStreamError(stream, ex);
            }
        }
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
        var fits = _decoder.Decode(_headerBlock.Block, _headerFields); // always: the decoder's table must follow the server's
        if (FindStream(streamId) is { } stream)
        {
            try
            {
                if (!fits)
                {
                    throw new Http2StreamException(Http2ErrorCode.ProtocolError, $"The server sent a header list larger than {_decoder.MaxHeaderListSize} bytes.");
                }

                stream.OnHeaders(_headerFields, endStream);
            }
            catch (Http2StreamException ex)
            {
                ResetForStreamError(stream, ex);
            }
        }
    }

    private void OnRstStream(int streamId, ReadOnlySpan<byte> payload)
    {
        var code = (uint)Http2Frame.ReadRstStream(streamId, payload);
        if (FindStream(streamId) is { } stream)
        {
            stream.Fail(new HttpProtocolException(code, $"The server reset the stream ({(Http2ErrorCode)code}).", null));
        }
    }

    private void OnSettings(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (Http2Frame.ReadSettingsIsAck(flags, streamId, payload))
        {
            return;
        }

        TaskCompletionSource? signal = null;
        lock (Sync)
        {
            for (var i = 0; i < payload.Length; i += 6)
            {
                var id = BinaryPrimitives.ReadUInt16BigEndian(payload[i..]);
                var value = BinaryPrimitives.ReadUInt32BigEndian(payload[(i + 2)..]);
                Http2Frame.ValidateSetting(id, value);
                switch (id)
                {
                    case Http2Frame.SettingsMaxConcurrentStreams:
                        _peerMaxConcurrentStreams = value;
                        break;
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
                        break; // header table size (our encoder never indexes), push, header list size, unknown ids
                }
            }

            signal = _capacity.TakeLocked();
        }

        QueueControl(static output => Http2Frame.Write(output, FrameType.Settings, Http2Frame.Ack, 0, []));
        signal?.TrySetResult();
        _settingsReceived.TrySetResult();
    }

    private void OnPing(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        var data = Http2Frame.ReadPing(streamId, payload);
        if ((flags & Http2Frame.Ack) != 0)
        {
            lock (Sync)
            {
                _pingSentTicks = 0;
            }

            return;
        }

        QueueControl(output => Http2Frame.WritePing(output, data, ack: true));
    }

    private void OnGoAway(int streamId, ReadOnlySpan<byte> payload)
    {
        var (lastStreamId, code) = Http2Frame.ReadGoAway(streamId, payload);
        var debug = System.Text.Encoding.UTF8.GetString(payload[8..]);
        List<Http2Stream> refused = [];
        TaskCompletionSource? signal;
        bool closeNow;
        lock (Sync)
        {
            _goingAway = true;
            foreach (var stream in _streams.Values)
            {
                if (stream.Id > lastStreamId)
                {
                    refused.Add(stream);
                }
            }

            signal = _capacity.TakeLocked();
            closeNow = _streams.Count == refused.Count;
        }

        var reason = $"The server is closing the connection (GOAWAY {code}{(debug.Length > 0 ? ": " + debug : string.Empty)}).";
        foreach (var stream in refused)
        {
            // Not processed by the server (RFC 9113 section 6.8): the caller may retry elsewhere.
            stream.Fail(new HttpRequestException(HttpRequestError.ConnectionError, reason, null));
        }

        signal?.TrySetResult();
        if (closeNow)
        {
            Abort(new IOException(reason));
        }
    }

    private void OnWindowUpdate(int streamId, ReadOnlySpan<byte> payload)
    {
        var increment = Http2Frame.ReadWindowIncrement(payload);
        TaskCompletionSource? signal;
        Http2Stream? broken = null;
        var brokenCode = Http2ErrorCode.FlowControlError;
        lock (Sync)
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
            else if (_streams.TryGetValue(streamId, out var stream))
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

        broken?.Reset(brokenCode, new IOException("The server sent an invalid WINDOW_UPDATE for the stream."));
        signal?.TrySetResult();
    }

    private static void ResetForStreamError(Http2Stream stream, Http2StreamException error) =>
        stream.Reset(error.Code, new IOException($"HTTP/2 stream error from the server ({error.Code}): {error.Message}", error));

    private Http2Stream? FindStream(int streamId)
    {
        lock (Sync)
        {
            if (_streams.TryGetValue(streamId, out var stream))
            {
                return stream;
            }

            if (streamId >= _nextStreamId || (streamId & 1) == 0)
            {
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"a frame for stream {streamId}, which this client never opened");
            }

            return null; // a stream this client already closed or reset: late frames are dropped
        }
    }
}
