using System.Globalization;
using System.Net;
using Sluice.TestKit;

namespace Sluice.Nemesis;

/// <summary>
/// Three Liftbridge nodes (the reference v1.9.0 binary) and one nats-server, all on 127.0.0.1. Liftbridge carries all
/// its traffic between nodes (Raft and replication) over NATS, so each node reaches NATS through a
/// <see cref="TcpProxy"/> of its own: cutting or slowing that proxy cuts or slows the node alone. Clients dial the nodes
/// directly. Liftbridge has no etcd: its metadata is its own Raft group, and the "controller" is its metadata leader,
/// found in the nodes' logs.
/// </summary>
internal sealed class LiftbridgeCluster : IClusterUnderTest
{
    private readonly NemesisOptions _options;
    private readonly ChildProcess _nats;
    private readonly Dictionary<string, Node> _nodes;

    private LiftbridgeCluster(NemesisOptions options, ChildProcess nats, Dictionary<string, Node> nodes)
    {
        _options = options;
        _nats = nats;
        _nodes = nodes;
    }

    public string Name => "Liftbridge";

    public IReadOnlyList<string> BrokerIds => [.. _nodes.Keys];

    public int MetadataMembers => 0;

    public static async Task<LiftbridgeCluster> StartAsync(NemesisOptions options, CancellationToken cancellationToken)
    {
        var binary = options.LiftbridgeBinary ?? throw new InvalidOperationException("the Liftbridge system needs its binary (--liftbridge PATH)");
        var natsPort = Ports.Free();
        var nats = ChildProcess.Start(NatsServerProcess.FindBinary(), ["-a", "127.0.0.1", "-p", natsPort.ToString(CultureInfo.InvariantCulture)], Path.Combine(options.WorkDirectory, "nats.log"));
        var nodes = new Dictionary<string, Node>(StringComparer.Ordinal);
        for (var i = 1; i <= options.Brokers; i++)
        {
            var id = "n" + i.ToString(CultureInfo.InvariantCulture);
            var proxy = TcpProxy.Start(new IPEndPoint(IPAddress.Loopback, natsPort));
            nodes[id] = new Node(id, Ports.Free(), proxy, options.TmpfsBytes is { } bytes ? new SmallTmpfs(bytes, "lb-nemesis-" + id) : null, options.WorkDirectory);
        }

        var cluster = new LiftbridgeCluster(options, nats, nodes);
        try
        {
            await WaitPortAsync(natsPort, cancellationToken).ConfigureAwait(false);
            foreach (var node in nodes.Values)
            {
                cluster.Start(node, binary);
                await WaitPortAsync(node.Port, cancellationToken).ConfigureAwait(false);
                if (node.Id == "n1")
                {
                    await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken).ConfigureAwait(false); // n1 wins its bootstrap election before peers join
                }
            }

            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public bool Supports(FaultKind kind) => kind switch
    {
        FaultKind.EtcdKill => false, // no etcd: Liftbridge's metadata quorum is its nodes
        FaultKind.DiskFull => _options.TmpfsBytes is not null,
        _ => true,
    };

    public string ClientAddress(string broker) => $"127.0.0.1:{_nodes[broker].Port}";

    public string LogPath(string broker) => _nodes[broker].LogFile;

    public bool IsRunning(string broker) => _nodes[broker].IsRunning;

    public Task KillAsync(string broker) => _nodes[broker].KillAsync();

    public Task StopGracefullyAsync(string broker) => _nodes[broker].StopGracefullyAsync();

    public async Task RestartAsync(string broker)
    {
        var node = _nodes[broker];
        Start(node, _options.LiftbridgeBinary!);
        await WaitPortAsync(node.Port, CancellationToken.None).ConfigureAwait(false);
    }

    public void Freeze(string broker) => _nodes[broker].Signal("STOP");

    public void Thaw(string broker) => _nodes[broker].Signal("CONT");

    public void Isolate(string broker, bool reset)
    {
        var proxy = _nodes[broker].NatsProxy;
        proxy.Pause();
        if (reset)
        {
            proxy.DropConnections();
        }
    }

    public void Reconnect(string broker) => _nodes[broker].NatsProxy.Resume();

    public void SlowLinks(string broker, TimeSpan latency) => _nodes[broker].NatsProxy.Latency = latency;

    public void FillDisk(string broker) => _nodes[broker].FillDisk();

    public void FreeDisk(string broker) => _nodes[broker].FreeDisk();

    public Task KillMetadataMemberAsync(int member) => throw new NotSupportedException("Liftbridge has no etcd");

    public Task RestartMetadataMemberAsync(int member) => throw new NotSupportedException("Liftbridge has no etcd");

    /// <summary>The running node that last said it became the metadata leader and has not said it lost it since.</summary>
    public Task<string?> ControllerAsync(CancellationToken cancellationToken) =>
        Task.FromResult(_nodes.Values.Where(n => n.IsRunning && n.LeaderSince is not null).OrderByDescending(n => n.LeaderSince).FirstOrDefault()?.Id);

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes.Values)
        {
            await node.KillAsync().ConfigureAwait(false);
            await node.NatsProxy.DisposeAsync().ConfigureAwait(false);
        }

        await _nats.DisposeAsync().ConfigureAwait(false);
        foreach (var node in _nodes.Values)
        {
            node.Tmpfs?.Dispose();
        }
    }

    private void Start(Node node, string binary)
    {
        Directory.CreateDirectory(node.DataDirectory);
        var config = Path.Combine(_options.WorkDirectory, node.Id + ".yaml");
        File.WriteAllText(config, string.Join('\n',
            $"listen: 127.0.0.1:{node.Port}",
            "host: 127.0.0.1",
            $"port: {node.Port}",
            $"data.dir: {node.DataDirectory}",
            "logging.level: info",
            "nats.servers:",
            $"  - nats://{node.NatsProxy.Address}",
            "clustering:",
            $"  server.id: {node.Id}",
            $"  min.insync.replicas: {_options.MinInsyncReplicas}",
            node.Id == "n1" ? "  raft.bootstrap.seed: true" : "",
            ""));
        node.LeaderSince = null;
        node.Process = ChildProcess.Start(binary, ["--config", config], node.LogFile, line =>
        {
            if (line.Contains("became metadata leader", StringComparison.Ordinal))
            {
                node.LeaderSince = DateTime.UtcNow.Ticks;
            }
            else if (line.Contains("lost metadata leadership", StringComparison.OrdinalIgnoreCase))
            {
                node.LeaderSince = null;
            }
        });
    }

    private static async Task WaitPortAsync(int port, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(TimeSpan.FromSeconds(30));
        while (true)
        {
            try
            {
                using var socket = new System.Net.Sockets.TcpClient();
                await socket.ConnectAsync(IPAddress.Loopback, port, deadline.Token).ConfigureAwait(false);
                return;
            }
            catch (System.Net.Sockets.SocketException)
            {
                await Task.Delay(100, deadline.Token).ConfigureAwait(false);
            }
        }
    }

    private sealed class Node(string id, int port, TcpProxy natsProxy, SmallTmpfs? tmpfs, string workDirectory) : ManagedNode(id, port, tmpfs, workDirectory)
    {
        public TcpProxy NatsProxy { get; } = natsProxy;

        /// <summary>When its log last said it became the metadata leader (ticks), or null since it said it lost it.</summary>
        public long? LeaderSince { get; set; }
    }
}
