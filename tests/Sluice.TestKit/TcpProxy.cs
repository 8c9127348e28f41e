using System.Net;
using System.Net.Sockets;

namespace Sluice.TestKit;

/// <summary>Which way bytes flow through a <see cref="TcpProxy"/>.</summary>
[Flags]
public enum ProxyDirection
{
    /// <summary>From the connecting client to the target.</summary>
    ClientToServer = 1,

    /// <summary>From the target back to the client.</summary>
    ServerToClient = 2,

    /// <summary>Both ways.</summary>
    Both = ClientToServer | ServerToClient,
}

/// <summary>
/// A loopback TCP proxy for fault tests: listens on 127.0.0.1 (a free port) and forwards every
/// connection to <see cref="Target"/>. <see cref="Pause"/> stops forwarding (bytes are held, never
/// dropped: the proxy keeps what it has read and the rest waits in the socket buffers) until
/// <see cref="Resume"/>; <see cref="DropConnections"/> resets every open connection, as a broken
/// network does. New connections are accepted all along.
/// </summary>
public sealed class TcpProxy : IAsyncDisposable
{
    // One read per pump; 64 KiB moves an HTTP/2 window's worth of frames per hop without a large footprint.
    private const int ChunkBytes = 64 * 1024;

    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Gate _clientToServer = new();
    private readonly Gate _serverToClient = new();
    private readonly Lock _sync = new();
    private readonly HashSet<Connection> _connections = [];
    private readonly List<Task> _tasks = [];
    private readonly Task _acceptLoop;
    private EndPoint? _target;
    private long _accepted;
    private long _latencyTicks;

    private TcpProxy(EndPoint? target)
    {
        _target = target;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(128);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>The port the proxy listens on (127.0.0.1).</summary>
    public int Port { get; }

    /// <summary><c>127.0.0.1:port</c>: the address clients connect to.</summary>
    public string Address => $"127.0.0.1:{Port}";

    /// <summary>
    /// Where new connections are forwarded. May be set after <see cref="Start"/> (e.g. when the target
    /// must advertise the proxy's port); a connection accepted while it is null is reset.
    /// </summary>
    public EndPoint? Target
    {
        get => Volatile.Read(ref _target);
        set => Volatile.Write(ref _target, value);
    }

    /// <summary>
    /// A delay before each forwarded chunk, both ways (zero, the default, forwards at once): a slow or distant link.
    /// Chunks of one direction stay in order, so a long delay also caps the link's throughput.
    /// </summary>
    public TimeSpan Latency
    {
        get => TimeSpan.FromTicks(Interlocked.Read(ref _latencyTicks));
        set => Interlocked.Exchange(ref _latencyTicks, value.Ticks);
    }

    /// <summary>Connections currently forwarded.</summary>
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

    /// <summary>Connections accepted since the start.</summary>
    public long AcceptedCount => Interlocked.Read(ref _accepted);

    /// <summary>Starts a proxy on a free loopback port.</summary>
    /// <param name="target">Where to forward; null to set <see cref="Target"/> later.</param>
    public static TcpProxy Start(EndPoint? target = null) => new(target);

    /// <summary>Bytes read and held back by a pause in <paramref name="direction"/> (summed over both for <see cref="ProxyDirection.Both"/>).</summary>
    public long HeldBytes(ProxyDirection direction = ProxyDirection.Both) =>
        (direction.HasFlag(ProxyDirection.ClientToServer) ? _clientToServer.Held : 0)
        + (direction.HasFlag(ProxyDirection.ServerToClient) ? _serverToClient.Held : 0);

    /// <summary>
    /// Stops forwarding in <paramref name="direction"/> on every connection, present and future, until
    /// <see cref="Resume"/>. A chunk already being written when this is called still arrives.
    /// </summary>
    public void Pause(ProxyDirection direction = ProxyDirection.Both)
    {
        if (direction.HasFlag(ProxyDirection.ClientToServer))
        {
            _clientToServer.Close();
        }

        if (direction.HasFlag(ProxyDirection.ServerToClient))
        {
            _serverToClient.Close();
        }
    }

    /// <summary>Forwards again in <paramref name="direction"/>, held bytes first, in order.</summary>
    public void Resume(ProxyDirection direction = ProxyDirection.Both)
    {
        if (direction.HasFlag(ProxyDirection.ClientToServer))
        {
            _clientToServer.Open();
        }

        if (direction.HasFlag(ProxyDirection.ServerToClient))
        {
            _serverToClient.Open();
        }
    }

    /// <summary>Resets (TCP RST) both sides of every open connection; held bytes are discarded with them.</summary>
    public void DropConnections()
    {
        Connection[] connections;
        lock (_sync)
        {
            connections = [.. _connections];
            _connections.Clear();
        }

        foreach (var connection in connections)
        {
            connection.Reset();
        }
    }

    /// <summary>Stops listening, resets every connection and waits for the forwarding tasks to end.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        DropConnections();
        Task[] tasks;
        lock (_sync)
        {
            tasks = [.. _tasks];
        }

        await Task.WhenAll(tasks).ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return; // disposed
            }

            Interlocked.Increment(ref _accepted);
            var task = Task.Run(() => ServeAsync(client));
            lock (_sync)
            {
                _tasks.RemoveAll(t => t.IsCompleted);
                _tasks.Add(task);
            }
        }
    }

    private async Task ServeAsync(Socket client)
    {
        client.NoDelay = true;
        var target = Target;
        var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var connection = new Connection(client, server);
        try
        {
            if (target is null)
            {
                throw new SocketException((int)SocketError.ConnectionRefused);
            }

            await server.ConnectAsync(target, _stop.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            connection.Reset(); // the client sees what it would see without a listener behind the proxy
            connection.Dispose();
            return;
        }

        lock (_sync)
        {
            if (_stop.IsCancellationRequested)
            {
                connection.Reset();
                connection.Dispose();
                return;
            }

            _connections.Add(connection);
        }

        await Task.WhenAll(
            PumpAsync(client, server, _clientToServer, connection.Token),
            PumpAsync(server, client, _serverToClient, connection.Token)).ConfigureAwait(false);
        lock (_sync)
        {
            _connections.Remove(connection);
        }

        connection.Dispose();
    }

    /// <summary>Copies <paramref name="from"/> to <paramref name="to"/>, waiting at <paramref name="gate"/> before each write.</summary>
    private async Task PumpAsync(Socket from, Socket to, Gate gate, CancellationToken cancellationToken)
    {
        var buffer = new byte[ChunkBytes];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    // The sender half-closed: pass the FIN on once everything before it has been forwarded.
                    await gate.WaitOpenAsync(0, cancellationToken).ConfigureAwait(false);
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                await gate.WaitOpenAsync(read, cancellationToken).ConfigureAwait(false);
                if (Latency is { Ticks: > 0 } latency)
                {
                    await Task.Delay(latency, cancellationToken).ConfigureAwait(false);
                }

                var sent = 0;
                while (sent < read)
                {
                    sent += await to.SendAsync(buffer.AsMemory(sent, read - sent), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // One side reset or the connection was dropped: the other side must see it too.
            try
            {
                from.LingerState = new LingerOption(true, 0);
                to.LingerState = new LingerOption(true, 0);
                from.Close();
                to.Close();
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>One direction's pause switch, shared by every connection.</summary>
    private sealed class Gate
    {
        private readonly Lock _sync = new();
        private TaskCompletionSource? _reopened;
        private long _held;

        public long Held => Interlocked.Read(ref _held);

        public void Close()
        {
            lock (_sync)
            {
                _reopened ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }

        public void Open()
        {
            TaskCompletionSource? reopened;
            lock (_sync)
            {
                reopened = _reopened;
                _reopened = null;
            }

            reopened?.TrySetResult();
        }

        /// <summary>Returns at once when open; otherwise counts <paramref name="bytes"/> as held until it opens.</summary>
        public async ValueTask WaitOpenAsync(int bytes, CancellationToken cancellationToken)
        {
            var counted = false;
            try
            {
                while (true)
                {
                    Task reopened;
                    lock (_sync)
                    {
                        if (_reopened is null)
                        {
                            return;
                        }

                        reopened = _reopened.Task;
                    }

                    if (!counted)
                    {
                        Interlocked.Add(ref _held, bytes);
                        counted = true;
                    }

                    await reopened.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
            }
            finally
            {
                if (counted)
                {
                    Interlocked.Add(ref _held, -bytes);
                }
            }
        }
    }

    /// <summary>A forwarded connection: the accepted client socket and the socket to the target.</summary>
    private sealed class Connection(Socket client, Socket server) : IDisposable
    {
        private readonly CancellationTokenSource _cts = new();

        public CancellationToken Token => _cts.Token;

        /// <summary>RST both sides: linger 0 makes Close send a reset instead of a FIN.</summary>
        public void Reset()
        {
            foreach (var socket in new[] { client, server })
            {
                try
                {
                    socket.LingerState = new LingerOption(true, 0);
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    // Already closed or never connected.
                }

                socket.Close();
            }

            try
            {
                _cts.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        /// <summary>Closes both sockets (quietly when both directions already ended with a FIN).</summary>
        public void Dispose()
        {
            client.Close();
            server.Close();
            _cts.Dispose();
        }
    }
}
