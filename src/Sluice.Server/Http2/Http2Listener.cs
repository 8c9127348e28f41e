using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Http2;

namespace Sluice.Server.Http2;

/// <summary>
/// Accepts HTTP/2 connections and hands each request to a handler (the gRPC server's, with its native transport): one
/// <see cref="Http2ServerConnection"/> per client, read on a thread of its own while busy. Calls start on the
/// thread pool. Also sends keepalive PINGs on quiet connections and shuts connections down with GOAWAY.
/// </summary>
internal sealed partial class Http2Listener : IDisposable
{
    /// <summary>A connection is pinged after this long without a frame from its client.</summary>
    internal static readonly TimeSpan KeepAliveDelay = TimeSpan.FromSeconds(60);

    /// <summary>...and closed when the PING is not answered within this long.</summary>
    internal static readonly TimeSpan KeepAliveTimeout = TimeSpan.FromSeconds(20);

    private readonly Func<IHttp2Exchange, Task> _handler;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly List<Socket> _sockets = [];
    private readonly Dictionary<Http2ServerConnection, IPAddress> _connections = [];
    private readonly Dictionary<IPAddress, int> _perAddress = [];
    private readonly Dictionary<Http2ServerConnection, (long Deadline, string Refusal)> _provisional = []; // admitted from the broker reserve, not yet identified
    private int _peerBrokers; // connections that carried an authenticated internal call, under _sync
    private readonly Func<IPAddress, bool>? _isPeerBrokerAddress;
    private readonly int _reservedPeerConnections;
    private readonly TimeSpan _peerIdentifyTimeout;
    private readonly Lock _sync = new();
    private readonly Timer _keepAlive;
    private bool _stopped;
    private long _lastRefusalLog = long.MinValue / 2;
    private readonly Http2SlowClientCutter _cutter;

    private Http2Listener(Http2ListenerOptions options, Func<IHttp2Exchange, Task> handler, ILoggerFactory loggers)
    {
        _handler = handler;
        _loggers = loggers;
        _logger = loggers.CreateLogger<Http2Listener>();
        MaxConcurrentStreams = options.MaxStreamsPerConnection;
        MaxConnections = options.MaxConnections;
        MaxConnectionsPerAddress = options.MaxConnectionsPerAddress;
        MaxConnectionsSource = options.MaxConnectionsSource;
        _isPeerBrokerAddress = options.IsPeerBrokerAddress;
        _reservedPeerConnections = options.ReservedPeerConnections;
        _peerIdentifyTimeout = options.PeerIdentifyTimeout;
        InlineRequestReads = options.InlineIo;
        ReaderLingerMilliseconds = (int)Math.Clamp(options.ReaderLinger.TotalMilliseconds, 0, int.MaxValue);
        _maxReaderThreads = options.MaxReaderThreads;
        Tls = options.Tls;
        IdleTimeout = options.IdleTimeout;
        OutputBudget = new Http2OutputBudget(options.MaxBufferedOutputBytes);
        _cutter = new Http2SlowClientCutter(OutputBudget, _sync, _connections.Keys, _logger);
        var tick = TimeSpan.FromMilliseconds(Math.Clamp(options.IdleTimeout.TotalMilliseconds / 4, 20, 5000));
        _keepAlive = new Timer(static state => ((Http2Listener)state!).OnKeepAliveTick(), this, tick, tick);
    }

    /// <summary>The bound port.</summary>
    public int Port { get; private set; }

    /// <summary>Connections open now (clients and brokers).</summary>
    public int ConnectionCount
    {
        get
        {
            lock (_sync)
            {
                return _connections.Count;
            }
        }
    }

    /// <summary>"http://ip:port" (or https), as logged.</summary>
    public string Address { get; private set; } = string.Empty;

    /// <summary>How long a connection may go without an open stream before it is closed.</summary>
    public TimeSpan IdleTimeout { get; }

    /// <summary>Connections served at once (<see cref="Http2ListenerOptions.MaxConnections"/>).</summary>
    public int MaxConnections { get; }

    /// <summary>Connections served at once from one client IP address (<see cref="Http2ListenerOptions.MaxConnectionsPerAddress"/>).</summary>
    public int MaxConnectionsPerAddress { get; }

    /// <summary>What set <see cref="MaxConnections"/>, named in the refusal.</summary>
    public string MaxConnectionsSource { get; }

    /// <summary>The period over which a connection's client resets are counted.</summary>
    internal static readonly TimeSpan ResetWindow = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Client resets of open streams a connection may make per <see cref="ResetWindow"/>: ten times the
    /// stream limit (at least 100), far above what cancelled calls and expired deadlines produce.
    /// </summary>
    public int MaxResetsPerWindow => (int)Math.Min(int.MaxValue, Math.Max(100L, 10L * MaxConcurrentStreams));

    /// <summary>Our SETTINGS_MAX_CONCURRENT_STREAMS; more open streams are refused.</summary>
    public int MaxConcurrentStreams { get; }

    private readonly int _maxReaderThreads;
    private int _readerThreads;

    /// <summary>Connections being read on a thread of their own now.</summary>
    public int ReaderThreads => Volatile.Read(ref _readerThreads);

    /// <summary>Takes a reader thread from the budget; false when all are in use (read on the thread pool then).</summary>
    internal bool TryTakeReaderThread()
    {
        if (Interlocked.Increment(ref _readerThreads) <= _maxReaderThreads)
        {
            return true;
        }

        Interlocked.Decrement(ref _readerThreads);
        return false;
    }

    internal void ReturnReaderThread() => Interlocked.Decrement(ref _readerThreads);

    /// <summary>How long a connection's reader thread waits for a quiet client before giving the thread back (0: never holds one).</summary>
    public int ReaderLingerMilliseconds { get; }

    /// <summary>Request body reads resume on the reader thread (see <see cref="Http2ListenerOptions.InlineIo"/>).</summary>
    public bool InlineRequestReads { get; }

    /// <summary>TLS for every connection, or null for h2c.</summary>
    public SslServerAuthenticationOptions? Tls { get; }

    /// <summary>
    /// Unsent output one connection may queue before it is closed: a client that stopped reading its
    /// socket. Response DATA is bounded by the client's flow-control windows well below this.
    /// </summary>
    public long MaxPendingOutputBytes { get; } = 64L << 20;

    /// <summary>Unsent output of all connections together (<see cref="Http2ListenerOptions.MaxBufferedOutputBytes"/>).</summary>
    public Http2OutputBudget OutputBudget { get; }

    /// <summary>Connections cut so far because the output budget ran out.</summary>
    public long SlowClientsCut => _cutter.Cut;

    /// <summary>A connection's queued output took the budget over its limit: cut the slowest, off this (writing) thread.</summary>
    public void OnOverBudget() => _cutter.OnOverBudget();

    /// <summary>Binds and starts accepting.</summary>
    /// <exception cref="SocketException">The address cannot be bound (in use, not local, ...).</exception>
    public static Http2Listener Start(Http2ListenerOptions options, Func<IHttp2Exchange, Task> handler, ILoggerFactory loggers)
    {
        var listener = new Http2Listener(options, handler, loggers);
        try
        {
            listener.Bind(options.Host, options.Port);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        foreach (var socket in listener._sockets)
        {
            _ = listener.AcceptLoopAsync(socket);
        }

        return listener;
    }

    /// <summary>Starts a call on the thread pool (never on the reader thread, which must go on reading).</summary>
    public void StartCall(Http2ServerStream stream) =>
        ThreadPool.UnsafeQueueUserWorkItem(static state => _ = state.Stream.RunAsync(state.Handler), (Stream: stream, Handler: _handler), preferLocal: false);

    /// <summary>
    /// A call on <paramref name="connection"/> proved it comes from a registered broker: the connection leaves the
    /// client connection counts and the slow-subscriber budget (a follower's fetch stream must not be cut as a slow
    /// subscriber, nor replication wait for clients to free a slot).
    /// </summary>
    public void MarkPeerBroker(Http2ServerConnection connection)
    {
        lock (_sync)
        {
            if (connection.IsPeerBroker || !_connections.TryGetValue(connection, out var address))
            {
                return;
            }

            connection.IsPeerBroker = true;
            _peerBrokers++;
            if (!_provisional.Remove(connection))
            {
                ReleaseAddressLocked(address);
            }
        }

        connection.ExemptFromOutputBudget();
    }

    public void OnConnectionClosed(Http2ServerConnection connection)
    {
        lock (_sync)
        {
            if (!_connections.Remove(connection, out var address))
            {
                return;
            }

            if (connection.IsPeerBroker)
            {
                _peerBrokers--;
            }
            else if (!_provisional.Remove(connection))
            {
                ReleaseAddressLocked(address);
            }
        }
    }

    private void ReleaseAddressLocked(IPAddress address)
    {
        if (_perAddress.TryGetValue(address, out var count))
        {
            if (count <= 1)
            {
                _perAddress.Remove(address);
            }
            else
            {
                _perAddress[address] = count - 1;
            }
        }
    }

    /// <summary>
    /// Stops accepting, sends GOAWAY on every connection and waits until their streams end (the
    /// server cancels its calls first) or <paramref name="cancellationToken"/> fires; then closes the rest.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Http2ServerConnection[] connections;
        lock (_sync)
        {
            _stopped = true;
            connections = [.. _connections.Keys];
        }

        CloseSockets();
        foreach (var connection in connections)
        {
            connection.BeginShutdown();
        }

        try
        {
            while (true)
            {
                lock (_sync)
                {
                    if (_connections.Count == 0)
                    {
                        return;
                    }
                }

                // Polling while calls finish: the wait is bounded by the caller's token.
                await Task.Delay(20, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            AbortAll(new IOException("The server stopped before the connection's calls ended."));
        }
    }

    public void Dispose()
    {
        lock (_sync)
        {
            _stopped = true;
        }

        _keepAlive.Dispose();
        CloseSockets();
        AbortAll(new IOException("The server stopped."));
    }

    private void AbortAll(Exception reason)
    {
        Http2ServerConnection[] connections;
        lock (_sync)
        {
            connections = [.. _connections.Keys];
        }

        foreach (var connection in connections)
        {
            connection.Abort(reason);
        }
    }

    private void CloseSockets()
    {
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }
    }

    private void Bind(string host, int port)
    {
        IPAddress[] addresses;
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            addresses = [IPAddress.Loopback, IPAddress.IPv6Loopback];
        }
        else if (IPAddress.TryParse(host, out var ip))
        {
            addresses = [ip];
        }
        else
        {
            addresses = [Dns.GetHostAddresses(host)[0]];
        }

        foreach (var address in addresses)
        {
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                if (address.Equals(IPAddress.IPv6Any))
                {
                    socket.DualMode = true; // "::" serves IPv4 clients too, as Kestrel's does
                }

                // No SocketOptionName.ReuseAddress: on Linux .NET maps it to SO_REUSEPORT as well, which let a second
                // server bind the same port and share its clients. The runtime sets SO_REUSEADDR on every TCP bind,
                // so a restart still binds over connections in TIME_WAIT.
                socket.Bind(new IPEndPoint(address, port == 0 && _sockets.Count > 0 ? Port : port));
                socket.Listen(512);
            }
            catch (SocketException) when (_sockets.Count > 0 && address.Equals(IPAddress.IPv6Loopback))
            {
                socket.Dispose(); // no IPv6 loopback here: "localhost" is served on 127.0.0.1 alone
                continue;
            }
            catch
            {
                socket.Dispose();
                throw;
            }

            _sockets.Add(socket);
            if (_sockets.Count == 1)
            {
                var bound = (IPEndPoint)socket.LocalEndPoint!;
                Port = bound.Port;
                var shown = bound.Address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{bound.Address}]" : bound.Address.ToString();
                Address = $"{(Tls is null ? "http" : "https")}://{shown}:{bound.Port}";
            }
        }
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync().ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return; // stopped
            }
            catch (SocketException ex)
            {
                lock (_sync)
                {
                    if (_stopped)
                    {
                        return;
                    }
                }

                // Out of file descriptors or buffers, or a connection reset before it was accepted: the
                // listener goes on (after a pause, so a lasting shortage does not spin).
                LogAcceptFailed(_logger, ex.SocketErrorCode, ex.Message);
                await Task.Delay(50).ConfigureAwait(false);
                continue;
            }

            try
            {
                socket.NoDelay = true;
                var logger = _loggers.CreateLogger<Http2ServerConnection>();
                var address = ClientAddress(socket.RemoteEndPoint);
                Http2ServerConnection? connection = null;
                string? refusal = null;
                lock (_sync)
                {
                    if (_stopped)
                    {
                        socket.Dispose();
                        continue;
                    }

                    // Built only when there is room: a refused socket must not cost a connection's buffers. Brokers'
                    // connections (identified, or admitted from their reserve) are not clients and do not count.
                    var fromAddress = _perAddress.GetValueOrDefault(address);
                    if (_connections.Count - _peerBrokers - _provisional.Count >= MaxConnections)
                    {
                        refusal = $"the server serves at most {MaxConnections} connections ({MaxConnectionsSource})";
                    }
                    else if (fromAddress >= MaxConnectionsPerAddress)
                    {
                        refusal = PerAddressRefusal(MaxConnectionsPerAddress);
                    }

                    if (refusal is null)
                    {
                        connection = new Http2ServerConnection(this, socket, logger);
                        _connections.Add(connection, address);
                        _perAddress[address] = fromAddress + 1;
                    }
                    else if (_peerBrokers + _provisional.Count < _reservedPeerConnections && _isPeerBrokerAddress?.Invoke(address) == true)
                    {
                        // Replication must not stop because clients took every slot: a registered broker's address
                        // gets in from a reserve, and has a while to prove it is that broker (OnKeepAliveTick).
                        connection = new Http2ServerConnection(this, socket, logger);
                        _connections.Add(connection, address);
                        _provisional[connection] = (Environment.TickCount64 + (long)_peerIdentifyTimeout.TotalMilliseconds, refusal);
                        refusal = null;
                    }
                }

                if (connection is null)
                {
                    Refuse(socket, refusal!);
                    continue;
                }

                LogAccepted(_logger, connection.Peer);
                connection.Start();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OutOfMemoryException or ThreadStartException)
            {
                LogAcceptFailed(_logger, SocketError.SocketError, ex.Message);
                socket.Dispose();
            }
        }
    }

    /// <summary>
    /// Answers a connection over <see cref="MaxConnections"/> or <see cref="MaxConnectionsPerAddress"/> with SETTINGS
    /// and GOAWAY(ENHANCE_YOUR_CALM) carrying the reason, so the client can report it, and closes it. A TLS
    /// connection just closes: the handshake would cost the very resources the limit protects.
    /// </summary>
    private void Refuse(Socket socket, string reason)
    {
        var now = Environment.TickCount64;
        if (now - Volatile.Read(ref _lastRefusalLog) >= 10_000)
        {
            Volatile.Write(ref _lastRefusalLog, now);
            LogConnectionRefused(_logger, reason);
        }

        try
        {
            if (Tls is null)
            {
                var output = new System.Buffers.ArrayBufferWriter<byte>(128);
                Http2Frame.WriteSettings(output, []);
                Http2Frame.WriteGoAway(output, 0, Http2ErrorCode.EnhanceYourCalm, reason);
                socket.Blocking = false; // never wait on a client that does not read
                socket.Send(output.WrittenSpan, SocketFlags.None, out _);
                socket.Shutdown(SocketShutdown.Send);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // It went away first.
        }
        finally
        {
            socket.Dispose();
        }
    }

    private void OnKeepAliveTick()
    {
        Http2ServerConnection[] connections;
        List<(Http2ServerConnection Connection, string Refusal)>? unproven = null;
        lock (_sync)
        {
            connections = [.. _connections.Keys];
            foreach (var (connection, (deadline, refusal)) in _provisional)
            {
                if (Environment.TickCount64 > deadline)
                {
                    (unproven ??= []).Add((connection, refusal));
                }
            }

            foreach (var (connection, refusal) in unproven ?? [])
            {
                _provisional[connection] = (long.MaxValue, refusal); // cut once; it stays counted here until it closes
            }
        }

        // Admitted from the broker reserve but showed no broker identity: refused after all, as at accept.
        foreach (var (connection, refusal) in unproven ?? [])
        {
            LogUnprovenPeer(_logger, connection.Peer, _peerIdentifyTimeout.TotalSeconds);
            connection.CutSlowClient(refusal, Http2SlowClientCutter.DrainMilliseconds);
        }

        var now = Environment.TickCount64;
        foreach (var connection in connections)
        {
            connection.OnKeepAliveTick(now, KeepAliveDelay, KeepAliveTimeout, IdleTimeout);
        }
    }

    /// <summary>The client's IP address, IPv4-mapped IPv6 shown as IPv4, so one client counts once on a dual-mode socket (both transports).</summary>
    internal static IPAddress ClientAddress(EndPoint? remote) =>
        remote is IPEndPoint { Address: var ip } ? (ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip) : IPAddress.None;

    /// <summary>The reason a connection over the per-address limit is given (both transports).</summary>
    internal static string PerAddressRefusal(int max) =>
        $"the server serves at most {max} connections from one client address (grpc.max.connections.per.address)";

    [LoggerMessage(Level = LogLevel.Warning, Message = "Accepting a gRPC connection failed ({Error}): {Reason}; still listening")]
    private static partial void LogAcceptFailed(ILogger logger, SocketError error, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Refusing gRPC connections: {Reason} (logged at most every 10 s)")]
    private static partial void LogConnectionRefused(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Closed the connection from {Peer}: admitted past the connection limits from a broker's address, it made no authenticated internal call within {Seconds} s")]
    private static partial void LogUnprovenPeer(ILogger logger, string peer, double seconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "HTTP/2 connection accepted from {Peer}")]
    private static partial void LogAccepted(ILogger logger, string peer);
}
