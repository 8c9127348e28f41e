using System.Globalization;
using System.Net;
using Sluice.Etcd;
using Sluice.Protocol.Internal;
using Sluice.Storage.Metadata;
using Sluice.TestKit;

namespace Sluice.Nemesis;

/// <summary>
/// Three (or more) `sluice serve` brokers on one etcd cluster, all on 127.0.0.1. Each broker reaches each etcd member
/// and each other broker through a <see cref="TcpProxy"/> of its own (etcd endpoints point at the proxies, and
/// <c>clustering.peer.addresses</c> maps every peer id to its proxy), so one broker can be cut off, or slowed, alone.
/// With <see cref="NemesisOptions.TmpfsBytes"/> each broker's data directory is a tmpfs of that size, which the disk-full fault
/// fills.
/// </summary>
internal sealed class SluiceCluster : IClusterUnderTest
{
    private readonly NemesisOptions _options;
    private readonly EtcdCluster _etcd;
    private readonly Dictionary<string, Broker> _brokers;
    private readonly List<TcpProxy> _allProxies = [];
    private EtcdMetadataStore? _store;

    private SluiceCluster(NemesisOptions options, EtcdCluster etcd, Dictionary<string, Broker> brokers)
    {
        _options = options;
        _etcd = etcd;
        _brokers = brokers;
    }

    public string Name => "Sluice";

    public IReadOnlyList<string> BrokerIds => [.. _brokers.Keys];

    public int MetadataMembers => _etcd.Count;

    public static async Task<SluiceCluster> StartAsync(NemesisOptions options, CancellationToken cancellationToken)
    {
        var etcd = await EtcdCluster.StartAsync(options.WorkDirectory, options.EtcdMembers, cancellationToken).ConfigureAwait(false);
        var brokers = new Dictionary<string, Broker>(StringComparer.Ordinal);
        for (var i = 1; i <= options.Brokers; i++)
        {
            var id = "b" + i.ToString(CultureInfo.InvariantCulture);
            brokers[id] = new Broker(id, Ports.Free(), options.TmpfsBytes is { } bytes ? new SmallTmpfs(bytes, "sluice-nemesis-" + id) : null, options.WorkDirectory);
        }

        var cluster = new SluiceCluster(options, etcd, brokers);
        try
        {
            cluster.Wire();
            foreach (var broker in brokers.Values)
            {
                cluster.Start(broker);
            }

            cluster._store = await EtcdMetadataStore.ConnectAsync(EtcdMetadataStoreOptions.Default with { Endpoints = [.. etcd.ClientUrls] }, cancellationToken).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public bool Supports(FaultKind kind) => kind != FaultKind.DiskFull || _options.TmpfsBytes is not null;

    public string ClientAddress(string broker) => $"127.0.0.1:{_brokers[broker].Port}";

    public string LogPath(string broker) => _brokers[broker].LogFile;

    public bool IsRunning(string broker) => _brokers[broker].IsRunning;

    public Task KillAsync(string broker) => _brokers[broker].KillAsync();

    public Task StopGracefullyAsync(string broker) => _brokers[broker].StopGracefullyAsync();

    public Task RestartAsync(string broker)
    {
        Start(_brokers[broker]);
        return Task.CompletedTask;
    }

    public void Freeze(string broker) => _brokers[broker].Signal("STOP");

    public void Thaw(string broker) => _brokers[broker].Signal("CONT");

    public void Isolate(string broker, bool reset)
    {
        foreach (var proxy in LinksOf(broker))
        {
            proxy.Pause();
            if (reset)
            {
                proxy.DropConnections();
            }
        }
    }

    public void Reconnect(string broker)
    {
        foreach (var proxy in LinksOf(broker))
        {
            proxy.Resume();
        }
    }

    public void SlowLinks(string broker, TimeSpan latency)
    {
        foreach (var proxy in _brokers.Values.SelectMany(b => b.PeerProxies.Where(p => b.Id == broker || p.Key == broker).Select(p => p.Value)))
        {
            proxy.Latency = latency;
        }
    }

    public void FillDisk(string broker) => _brokers[broker].FillDisk();

    public void FreeDisk(string broker) => _brokers[broker].FreeDisk();

    public Task KillMetadataMemberAsync(int member) => _etcd.KillAsync(member);

    public async Task RestartMetadataMemberAsync(int member)
    {
        _etcd.Start(member);
        await _etcd.WaitHealthyAsync(CancellationToken.None).ConfigureAwait(false);
    }

    public async Task<string?> ControllerAsync(CancellationToken cancellationToken)
    {
        var response = await _store!.RangeAsync(new RangeRequest(KeyRanges.Utf8("/sluice/controller")), cancellationToken).ConfigureAwait(false);
        var kv = response.Kvs.SingleOrDefault();
        return kv is null ? null : ControllerRecord.Parser.ParseFrom(kv.Value).BrokerId;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var broker in _brokers.Values)
        {
            await broker.KillAsync().ConfigureAwait(false);
        }

        if (_store is not null)
        {
            await _store.DisposeAsync().ConfigureAwait(false);
        }

        await _etcd.DisposeAsync().ConfigureAwait(false);
        foreach (var proxy in _allProxies)
        {
            await proxy.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var broker in _brokers.Values)
        {
            broker.Tmpfs?.Dispose();
        }
    }

    /// <summary>A proxy per broker per etcd member, and one per ordered pair of brokers.</summary>
    private void Wire()
    {
        foreach (var broker in _brokers.Values)
        {
            foreach (var port in _etcd.ClientPorts)
            {
                broker.EtcdProxies.Add(Proxy(port));
            }

            foreach (var peer in _brokers.Values.Where(p => p.Id != broker.Id))
            {
                broker.PeerProxies[peer.Id] = Proxy(peer.Port);
            }
        }

        TcpProxy Proxy(int port)
        {
            var proxy = TcpProxy.Start(new IPEndPoint(IPAddress.Loopback, port));
            _allProxies.Add(proxy);
            return proxy;
        }
    }

    /// <summary>Every proxy a cut-off broker loses: its own links to etcd and its peers, and its peers' links to it.</summary>
    private IEnumerable<TcpProxy> LinksOf(string broker)
    {
        var b = _brokers[broker];
        return b.EtcdProxies
            .Concat(b.PeerProxies.Values)
            .Concat(_brokers.Values.Where(p => p.Id != broker).Select(p => p.PeerProxies[broker]));
    }

    private void Start(Broker broker)
    {
        if (broker.IsRunning)
        {
            throw new InvalidOperationException($"{broker.Id} is already running");
        }

        var config = Path.Combine(_options.WorkDirectory, broker.Id + ".yaml");
        var peers = string.Join(',', broker.PeerProxies.Select(p => $"{p.Key}={p.Value.Address}"));
        File.WriteAllText(config, $"clustering.peer.addresses: {peers}\nclustering.min.insync.replicas: {_options.MinInsyncReplicas}\n{_options.ExtraConfig}\n");
        string[] arguments =
        [
            _options.SluiceDll, "serve",
            "--server-id", broker.Id,
            "--host", "127.0.0.1",
            "--port", broker.Port.ToString(CultureInfo.InvariantCulture),
            "--data-dir", broker.DataDirectory,
            "--etcd-endpoints", string.Join(',', broker.EtcdProxies.Select(p => "http://" + p.Address)),
            "--config", config,
        ];
        broker.Process = ChildProcess.Start("dotnet", arguments, broker.LogFile);
    }

    private sealed class Broker(string id, int port, SmallTmpfs? tmpfs, string workDirectory) : ManagedNode(id, port, tmpfs, workDirectory)
    {
        public List<TcpProxy> EtcdProxies { get; } = [];

        public Dictionary<string, TcpProxy> PeerProxies { get; } = new(StringComparer.Ordinal);
    }
}
