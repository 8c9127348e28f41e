using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using Sluice.Client.Grpc;
using Sluice.Protocol.Http2;

namespace Sluice.Client.Http2;

/// <summary>
/// One client HTTP/2 connection (RFC 9113), h2c with prior knowledge or TLS with ALPN "h2": connecting, its state
/// (failed, going away), opening streams, keepalive PINGs and closing; the parts that do the work are
/// <see cref="Http2ClientReader"/> (the reader thread), <see cref="Http2ClientFrameHandler"/> (what each frame
/// does), <see cref="Http2ClientOutput"/> (writes), <see cref="Http2ClientFlowControl"/> (the windows) and
/// <see cref="Http2ClientStreamTable"/> (the streams).
/// <para>
/// Why it exists: HttpClient's HTTP/2 connection hands every write, flush and read to its own loops
/// and completes each asynchronously, which costs several thread hops per request message. On a
/// 2-core machine that is most of the price of a synchronous publish (docs/benchmarks.md). Here a
/// caller's write goes to the socket on the caller's thread, and one dedicated thread per connection
/// reads frames from a blocking socket and hands them to the streams. Their waiters resume on the
/// thread pool, as HttpClient's do, except the publish session's ack reader and the acks it completes,
/// which run on the reader thread (see <see cref="Http2ClientReader.TryDefer"/>).
/// </para>
/// </summary>
internal sealed class Http2Connection : IDisposable
{
    private readonly string _scheme;
    private readonly string _authority;
    private readonly GrpcChannelOptions _options;
    private readonly TaskCompletionSource _settingsReceived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Timer? _keepAlive;
    private readonly Http2ClientOutput _output;
    private readonly Http2ClientReader _reader;
    private bool _goingAway;
    private Exception? _failure;
    private long _pingSentTicks;

    private Http2Connection(Stream transport, Uri address, GrpcChannelOptions options)
    {
        _scheme = address.Scheme;
        var host = address.HostNameType == UriHostNameType.IPv6 ? $"[{address.IdnHost}]" : address.IdnHost; // IdnHost drops IPv6 brackets
        _authority = address.IsDefaultPort ? host : $"{host}:{address.Port}";
        _options = options;
        _output = new Http2ClientOutput(this, transport);
        _reader = new Http2ClientReader(this, transport, new Http2ClientFrameHandler(this, _output), _authority);
        if (options.KeepAlivePingDelay > TimeSpan.Zero && options.KeepAlivePingDelay != Timeout.InfiniteTimeSpan)
        {
            var period = TimeSpan.FromTicks(Math.Clamp(Math.Min(options.KeepAlivePingDelay.Ticks, options.KeepAlivePingTimeout.Ticks) / 4, TimeSpan.TicksPerMillisecond * 50, TimeSpan.TicksPerSecond * 5));
            _keepAlive = new Timer(static state => ((Http2Connection)state!).OnKeepAliveTick(), this, period, period);
        }
    }

    /// <summary>The lock that guards this connection's and its streams' state.</summary>
    public Lock Sync { get; } = new();

    /// <summary>The streams (under <see cref="Sync"/>).</summary>
    internal Http2ClientStreamTable Streams { get; } = new();

    /// <summary>The flow-control windows (the send side under <see cref="Sync"/>).</summary>
    internal Http2ClientFlowControl FlowControl { get; } = new();

    /// <summary>Wakes callers waiting for a stream slot or for send credit (taken under <see cref="Sync"/>).</summary>
    internal Http2CapacitySignal Capacity { get; } = new();

    /// <summary>The connection failed or was closed (read without the lock: a hint, as for deferring work to the reader).</summary>
    internal bool HasFailed => _failure is not null;

    /// <summary>True on this connection's reader thread.</summary>
    internal bool OnReaderThread => _reader.OnThread;

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
                return Streams.AllowsStreams;
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
            return _failure is null && !_goingAway && Streams.TryReserve();
        }
    }

    /// <summary>Completes when a stream closes or the connection changes state, so a waiting caller can try again.</summary>
    public Task CapacityChanged()
    {
        lock (Sync)
        {
            return Capacity.WaitLocked();
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
            await _output.EnterAsync(cancellationToken).ConfigureAwait(false);
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
                    Streams.Release();
                    throw new HttpRequestException(HttpRequestError.ConnectionError, $"The HTTP/2 connection failed: {failure.Message}", failure);
                }

                if (_goingAway)
                {
                    Streams.Release();
                    return null; // the request is untouched: it may go on another connection
                }

                Streams.Add(stream, FlowControl.PeerInitialWindow);
            }

            _output.WriteHeadersLocked(stream.Id, block.WrittenSpan, endStream);
        }
        finally
        {
            _output.Exit();
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
            Streams.Release();
            signal = Capacity.TakeLocked();
        }

        signal?.TrySetResult();
    }

    /// <summary>Writes request DATA (<see cref="Http2ClientOutput.WriteDataAsync"/>).</summary>
    internal Http2ClientOutput Output => _output;

    /// <summary>A failure as the <see cref="IOException"/> that stream and connection callers see.</summary>
    public static IOException AsIOException(Exception failure) => failure as IOException ?? new IOException(failure.Message, failure);

    /// <summary>Returns <paramref name="increment"/> bytes of receive credit to the server for a stream.</summary>
    public void SendWindowUpdate(int streamId, int increment) => _output.QueueControl(output => Http2Frame.WriteWindowUpdate(output, streamId, increment));

    /// <summary>Resets a stream from this side.</summary>
    public void SendReset(int streamId, Http2ErrorCode code) => _output.QueueControl(output => Http2Frame.WriteRstStream(output, streamId, code));

    /// <summary>A stream ended or was reset: forget it and free its slot.</summary>
    public void OnStreamClosed(Http2Stream stream)
    {
        TaskCompletionSource? signal;
        bool closeNow;
        lock (Sync)
        {
            if (!Streams.Close(stream))
            {
                return;
            }

            signal = Capacity.TakeLocked();
            closeNow = _goingAway && Streams.Count == 0 && _failure is null;
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

    /// <summary>The server's first SETTINGS arrived: the connection is ready.</summary>
    internal void OnSettingsReceived() => _settingsReceived.TrySetResult();

    /// <summary>The server answered our keepalive PING.</summary>
    internal void OnPingAck()
    {
        lock (Sync)
        {
            _pingSentTicks = 0;
        }
    }

    /// <summary>
    /// The server sent GOAWAY: no new streams; those above <paramref name="lastStreamId"/> were not processed and fail
    /// with <paramref name="reason"/> (the caller may retry them elsewhere); the connection closes after the last.
    /// </summary>
    internal void OnGoAway(int lastStreamId, string reason)
    {
        List<Http2Stream> refused = [];
        TaskCompletionSource? signal;
        bool closeNow;
        lock (Sync)
        {
            _goingAway = true;
            foreach (var stream in Streams.Open)
            {
                if (stream.Id > lastStreamId)
                {
                    refused.Add(stream);
                }
            }

            signal = Capacity.TakeLocked();
            closeNow = Streams.Count == refused.Count;
        }

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

    /// <summary>Throws the connection's failure, if any (under <see cref="Sync"/>).</summary>
    internal void ThrowIfFailed()
    {
        if (_failure is { } failure)
        {
            throw AsIOException(failure);
        }
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
        ReaderWatchdog.Register(_reader); // before the reader, whose failure unregisters it
        try
        {
            _output.WritePreface(
            [
                (Http2Frame.SettingsEnablePush, 0),
                (Http2Frame.SettingsInitialWindowSize, Http2ClientFlowControl.StreamReceiveWindow),
                (Http2Frame.SettingsMaxHeaderListSize, Http2ClientFrameHandler.MaxHeaderListSize),
            ],
            Http2ClientFlowControl.ConnectionReceiveWindow - Http2Frame.DefaultWindowSize);
            _reader.Start();
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
            else if (now - _reader.LastFrameTicks >= (long)_options.KeepAlivePingDelay.TotalMilliseconds)
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
            _output.QueueControl(output => Http2Frame.WritePing(output, now, ack: false));
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
    internal void Abort(Exception reason, Http2ErrorCode? goAway = null)
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
            streams = Streams.Snapshot();
            signal = Capacity.TakeLocked();
        }

        _keepAlive?.Dispose();
        ReaderWatchdog.Unregister(_reader);
        signal?.TrySetResult();
        _settingsReceived.TrySetException(_failure);
        foreach (var stream in streams)
        {
            stream.Fail(_failure);
        }

        _output.FlushAndClose(goAway);
    }
}
