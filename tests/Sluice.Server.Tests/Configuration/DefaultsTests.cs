using Microsoft.Extensions.Logging;
using Sluice.Server.Configuration;

namespace Sluice.Server.Tests.Configuration;

public class DefaultsTests
{
    // Liftbridge's defaults (server/config.go NewDefaultConfig and main.go), key by key.
    public static TheoryData<string, Func<ServerOptions, object?>, object?> LiftbridgeDefaults => new()
    {
        { "port", o => o.Port, 9292 },
        { "host", o => o.Host, "" },
        { "listen", o => o.Listen, null },
        { "metadata.cache.max.age", o => o.Metadata.CacheMaxAge, TimeSpan.FromMinutes(2) },
        { "logging.level", o => o.Logging.Level, LogLevel.Information },
        { "logging.recovery", o => o.Logging.Recovery, false },
        { "logging.raft", o => o.Logging.Raft, false },
        { "logging.nats", o => o.Logging.Nats, false },
        { "batch.max.messages", o => o.Batch.MaxMessages, 1024 },
        { "batch.max.time", o => o.Batch.MaxTime, TimeSpan.Zero },
        { "tls.key", o => o.Tls.Key, "" },
        { "tls.cert", o => o.Tls.Cert, "" },
        { "tls.client.auth.enabled", o => o.Tls.ClientAuthEnabled, false },
        { "tls.client.auth.ca", o => o.Tls.ClientAuthCa, "" },
        { "tls.client.authz.enabled", o => o.Tls.ClientAuthzEnabled, false },
        { "nats.user", o => o.Nats.User, "" },
        { "nats.embedded", o => o.Nats.Embedded, false },
        { "nats.embedded.config", o => o.Nats.EmbeddedConfig, "" },
        { "streams.retention.max.bytes", o => o.Streams.RetentionMaxBytes, 0L },
        { "streams.retention.max.messages", o => o.Streams.RetentionMaxMessages, 0L },
        { "streams.retention.max.age", o => o.Streams.RetentionMaxAge, TimeSpan.FromHours(168) },
        { "streams.cleaner.interval", o => o.Streams.CleanerInterval, TimeSpan.FromMinutes(5) },
        { "streams.segment.max.bytes", o => o.Streams.SegmentMaxBytes, 268435456L },
        { "streams.segment.max.age", o => o.Streams.EffectiveSegmentMaxAge, TimeSpan.FromHours(168) },
        { "streams.compact.enabled", o => o.Streams.CompactEnabled, false },
        { "streams.compact.max.goroutines", o => o.Streams.CompactMaxGoroutines, 10 },
        { "streams.auto.pause.time", o => o.Streams.AutoPauseTime, TimeSpan.Zero },
        { "streams.auto.pause.disable.if.subscribers", o => o.Streams.AutoPauseDisableIfSubscribers, false },
        { "streams.concurrency.control", o => o.Streams.ConcurrencyControl, false },
        { "streams.encryption", o => o.Streams.Encryption, false },
        { "clustering.server.id", o => o.Clustering.ServerId, null },
        { "clustering.namespace", o => o.Clustering.Namespace, "liftbridge-default" },
        { "clustering.raft.snapshot.retain", o => o.Clustering.RaftSnapshotRetain, 2 },
        { "clustering.raft.snapshot.threshold", o => o.Clustering.RaftSnapshotThreshold, 0UL },
        { "clustering.raft.cache.size", o => o.Clustering.RaftCacheSize, 512 },
        { "clustering.raft.bootstrap.seed", o => o.Clustering.RaftBootstrapSeed, false },
        { "clustering.raft.bootstrap.peers", o => o.Clustering.RaftBootstrapPeers.Count, 0 },
        { "clustering.raft.max.quorum.size", o => o.Clustering.RaftMaxQuorumSize, 0U },
        { "clustering.replica.max.lag.time", o => o.Clustering.ReplicaMaxLagTime, TimeSpan.FromSeconds(15) },
        { "clustering.replica.max.leader.timeout", o => o.Clustering.ReplicaMaxLeaderTimeout, TimeSpan.FromSeconds(15) },
        { "clustering.replica.max.idle.wait", o => o.Clustering.ReplicaMaxIdleWait, TimeSpan.FromSeconds(10) },
        { "clustering.replica.fetch.timeout", o => o.Clustering.ReplicaFetchTimeout, TimeSpan.FromSeconds(3) },
        { "clustering.min.insync.replicas", o => o.Clustering.MinInsyncReplicas, 1 },
        { "clustering.replication.max.bytes", o => o.Clustering.ReplicationMaxBytes, 1048576L },
        { "activity.stream.enabled", o => o.Activity.Enabled, false },
        { "activity.stream.publish.timeout", o => o.Activity.PublishTimeout, TimeSpan.FromSeconds(5) },
        { "activity.stream.publish.ack.policy", o => o.Activity.PublishAckPolicy, PublishAckPolicy.All },
        { "cursors.stream.partitions", o => o.Cursors.Partitions, 0 },
        { "cursors.stream.replication.factor", o => o.Cursors.ReplicationFactor, -1 },
        { "cursors.stream.auto.pause.time", o => o.Cursors.AutoPauseTime, TimeSpan.FromMinutes(1) },
        { "groups.consumer.timeout", o => o.Groups.ConsumerTimeout, TimeSpan.FromSeconds(15) },
        { "groups.coordinator.timeout", o => o.Groups.CoordinatorTimeout, TimeSpan.FromSeconds(15) },
        { "telemetry.interval.seconds", o => o.Telemetry.IntervalSeconds, 86400 },
    };

    [Theory]
    [MemberData(nameof(LiftbridgeDefaults))]
    public void Default_equals_Liftbridges(string key, Func<ServerOptions, object?> read, object? expected)
    {
        Assert.Contains(key, ConfigLoader.KnownKeys);
        Assert.Equal(expected, read(ServerOptions.Default));
        Assert.Equal(expected, read(Load.Options("")));
    }

    [Fact]
    public void Documented_deviations_from_Liftbridge_hold()
    {
        var options = ServerOptions.Default;
        Assert.Equal("./data", options.DataDir);                   // Liftbridge: /tmp/liftbridge/<namespace>
        Assert.Empty(options.Nats.Servers);                        // Liftbridge: nats://127.0.0.1:4222; NATS is optional here
        Assert.Equal(DurabilityMode.Never, options.Storage.Durability);
        Assert.Equal(TimeSpan.FromSeconds(1), options.Storage.FsyncInterval);
        Assert.Equal(1024, options.Storage.MaxOpenFiles);
        Assert.Equal(TimeSpan.FromMinutes(2), options.Streams.DuplicateWindow); // Sluice only: idempotent publishing
    }

    [Fact]
    public void Default_binds_all_interfaces_and_advertises_localhost_on_9292()
    {
        Assert.Equal(new HostPort("0.0.0.0", 9292), ServerOptions.Default.ListenEndpoint);
        Assert.Equal(new HostPort("localhost", 9292), ServerOptions.Default.AdvertisedAddress);
    }

    [Fact]
    public void Every_key_is_documented_in_the_configuration_reference()
    {
        var doc = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "configuration.md"));
        var missing = ConfigLoader.KnownKeys.Where(k => !doc.Contains($"`{k}`", StringComparison.Ordinal)).ToList();
        Assert.Empty(missing);
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Sluice.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Sluice.slnx not found above " + AppContext.BaseDirectory);
    }
}
