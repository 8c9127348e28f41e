using Sluice.Etcd;
using Sluice.Protocol.Api;
using Sluice.Server.Cluster;
using Sluice.Server.Configuration;
using Sluice.Storage.Log;
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Cluster;

/// <summary>The metadata store a test cluster shares.</summary>
public enum Metadata
{
    /// <summary>One embedded store in this process, behind the same contract as etcd (fast).</summary>
    Embedded,

    /// <summary>A real etcd child process on loopback; each broker has its own client.</summary>
    Etcd,
}

/// <summary>
/// Brokers in this process (b1..bN, port 0, own data directories) sharing one metadata store (see
/// <see cref="Metadata"/>). Stopping a broker is graceful (its lease is revoked).
/// </summary>
internal sealed class ClusterHarness : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private readonly TempDirectory _storeDir;
    private readonly List<IMetadataStore> _stores = [];

    private ClusterHarness(TempDirectory storeDir, LocalEtcd? etcd)
    {
        _storeDir = storeDir;
        Etcd = etcd;
    }

    /// <summary>The etcd child process, with <see cref="Metadata.Etcd"/>.</summary>
    public LocalEtcd? Etcd { get; }

    public List<BrokerHarness> Brokers { get; } = [];

    public BrokerHarness this[string id] => Brokers.Single(b => b.Options.Clustering.ServerId == id);

    public IEnumerable<BrokerHarness> Running => Brokers.Where(b => b.IsRunning);

    /// <remarks>
    /// The lease TTL defaults to 5 s: brokers here stop gracefully (revoking their leases), so the TTL does not slow
    /// the tests, and a test process running many brokers on 2 cores must not fence a leader by a late renewal.
    /// </remarks>
    public static async Task<ClusterHarness> StartAsync(int brokers, Func<ServerOptions, ServerOptions>? configure = null, TimeSpan? leaseTtl = null, Metadata metadata = Metadata.Embedded)
    {
        var dir = new TempDirectory("sluice-cluster-metadata");
        var etcd = metadata == Metadata.Etcd ? await LocalEtcd.StartAsync(dir.Path) : null;
        var harness = new ClusterHarness(dir, etcd);
        try
        {
            var shared = etcd is null ? await EmbeddedMetadataStore.OpenAsync(dir.Path, MetadataStoreOptions.Default) : null;
            if (shared is not null)
            {
                harness._stores.Add(shared);
            }

            for (var i = 1; i <= brokers; i++)
            {
                var id = $"b{i}";
                var store = shared is not null ? (IMetadataStore)shared : await EtcdMetadataStore.ConnectAsync(new EtcdMetadataStoreOptions { Endpoints = [etcd!.ClientUrl] });
                if (shared is null)
                {
                    harness._stores.Add(store);
                }

                harness.Brokers.Add(await BrokerHarness.StartAsync(
                    o =>
                    {
                        o = o with { Clustering = o.Clustering with { ServerId = id, ReplicaMaxLagTime = TimeSpan.FromSeconds(2) } };
                        return configure?.Invoke(o) ?? o;
                    },
                    new ClusterSettings(store, leaseTtl ?? TimeSpan.FromSeconds(5))));
            }

            await WaitForAsync(() => harness.Brokers.All(b => b.Server.Cluster!.View.Current.Brokers.Count == brokers), "every broker sees every broker");
            return harness;
        }
        catch
        {
            await harness.DisposeAsync();
            throw;
        }
    }

    /// <summary>Waits (polling every 20 ms) until <paramref name="condition"/> holds; fails naming <paramref name="what"/>.</summary>
    public static async Task WaitForAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? Timeout);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"timed out waiting until {what}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>The partition's leadership as the first running broker sees it.</summary>
    public PartitionLeadership Leadership(string stream, int partition = 0)
    {
        var view = Running.First().Server.Cluster!.View.Current;
        return view.Streams.TryGetValue(stream, out var entry) ? view.Leadership(entry, partition) : throw new InvalidOperationException($"no stream {stream}");
    }

    /// <summary>The broker that leads the partition and has its leader open.</summary>
    public BrokerHarness? Leader(string stream, int partition = 0) =>
        Running.FirstOrDefault(b => b.Server.Broker.TryGetStream(stream, out var s) && s.Partitions[partition].Runtime is not null);

    /// <summary>A replica's log (leading or following), or null.</summary>
    public static CommitLog? LogOf(BrokerHarness broker, string stream, int partition = 0) =>
        broker.Server.Broker.TryGetStream(stream, out var s) ? s.Partitions[partition].Log : null;

    /// <summary>All records of a log in the replication format: equal bytes mean equal offsets, timestamps, epochs, keys, values and headers.</summary>
    public static byte[] Encoded(CommitLog log)
    {
        using var output = new MemoryStream();
        var next = 0L;
        while (next <= log.NewestOffset)
        {
            using var batch = log.Read(next, 1 << 20);
            if (batch.IsEmpty)
            {
                break;
            }

            output.Write(ReplicationFormat.Encode(batch.Records));
            next = batch.NextOffset;
        }

        return output.ToArray();
    }

    public static CreateStreamRequest Stream(string name, int replicationFactor, int partitions = 1) =>
        new() { Name = name, Subject = name + ".subject", ReplicationFactor = replicationFactor, Partitions = partitions };

    /// <summary>Stops every broker, then the stores and etcd, whatever failed before (a failing stop is rethrown last).</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            foreach (var broker in Brokers)
            {
                await broker.DisposeAsync();
            }
        }
        finally
        {
            foreach (var store in _stores)
            {
                await store.DisposeAsync();
            }

            if (Etcd is not null)
            {
                await Etcd.DisposeAsync();
            }

            _storeDir.Dispose();
        }
    }
}
