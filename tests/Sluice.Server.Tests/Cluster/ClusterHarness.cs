using Sluice.Protocol.Api;
using Sluice.Server.Cluster;
using Sluice.Server.Configuration;
using Sluice.Storage.Log;
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Cluster;

/// <summary>
/// Brokers in this process (b1..bN, port 0, own data directories) sharing one metadata store: the embedded
/// store stands in for etcd, behind the same contract. Stopping a broker is graceful (its lease is revoked).
/// </summary>
internal sealed class ClusterHarness : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private readonly TempDirectory _storeDir;

    private ClusterHarness(TempDirectory storeDir, IMetadataStore store, ClusterSettings settings)
    {
        _storeDir = storeDir;
        Store = store;
        Settings = settings;
    }

    public IMetadataStore Store { get; }

    public ClusterSettings Settings { get; }

    public List<BrokerHarness> Brokers { get; } = [];

    public BrokerHarness this[string id] => Brokers.Single(b => b.Options.Clustering.ServerId == id);

    public IEnumerable<BrokerHarness> Running => Brokers.Where(b => b.IsRunning);

    public static async Task<ClusterHarness> StartAsync(int brokers, Func<ServerOptions, ServerOptions>? configure = null, TimeSpan? leaseTtl = null)
    {
        var dir = new TempDirectory("sluice-cluster-metadata");
        var store = await EmbeddedMetadataStore.OpenAsync(dir.Path, MetadataStoreOptions.Default);
        var harness = new ClusterHarness(dir, store, new ClusterSettings(store, leaseTtl ?? TimeSpan.FromSeconds(2)));
        try
        {
            for (var i = 1; i <= brokers; i++)
            {
                var id = $"b{i}";
                harness.Brokers.Add(await BrokerHarness.StartAsync(
                    o =>
                    {
                        o = o with { Clustering = o.Clustering with { ServerId = id, ReplicaMaxLagTime = TimeSpan.FromSeconds(2) } };
                        return configure?.Invoke(o) ?? o;
                    },
                    harness.Settings));
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

    public async ValueTask DisposeAsync()
    {
        foreach (var broker in Brokers)
        {
            await broker.DisposeAsync();
        }

        await Store.DisposeAsync();
        _storeDir.Dispose();
    }
}
