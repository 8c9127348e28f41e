using System.Globalization;

namespace Sluice.Server.Configuration;

/// <summary>
/// One configuration key: its name, how its value is applied to the options, and, when Sluice cannot honour
/// it yet, why it is accepted and ignored.
/// </summary>
internal sealed record ConfigKey(string Name, Func<ServerOptions, ConfigValue, ServerOptions> Apply, string? IgnoredReason)
{
    public bool Ignored => IgnoredReason is not null;

    /// <summary>The environment variable suffix: dots become underscores (`logging.level` → `LOGGING_LEVEL`).</summary>
    public string EnvironmentSuffix => Name.Replace('.', '_').ToUpperInvariant();
}

/// <summary>Every key Sluice accepts: all of Liftbridge's (server/config.go) plus Sluice's `storage.*`.</summary>
internal static class ConfigKeys
{
    private const string NoRaft = "etcd replaces Raft in Sluice: a cluster keeps its metadata in etcd (clustering.etcd.endpoints)";
    private const string NoLeaderReports = "followers do not vote a leader out: the leader's etcd lease decides (clustering.broker.lease.ttl)";
    private const string NoBrokerList = "brokers follow the cluster metadata through an etcd watch, so there is no list to cache";
    private const string NoRaftLog = "etcd replaces Raft in Sluice, so there is no Raft log to replay at startup";
    private const string OneCompactionThread = "Sluice compacts each partition on one thread, which any limit allows";
    private const string NoTelemetry = "Sluice never sends telemetry";

    public static IReadOnlyList<ConfigKey> All { get; } =
    [
        Key("listen", (o, v) => o with { Listen = v.HostPort() }),
        Key("host", (o, v) => o with { Host = v.String().Trim() }),
        Key("port", (o, v) => o with { Port = v.Int(0, 65535, "a port number from 0 to 65535") }),
        Key("data.dir", (o, v) => o with { DataDir = NonEmpty(v, "a directory path") }),
        Key("metadata.cache.max.age", (o, v) => o with { Metadata = o.Metadata with { CacheMaxAge = v.Duration() } }, NoBrokerList),

        Key("logging.level", (o, v) => o with { Logging = o.Logging with { Level = v.LogLevel() } }),
        Key("logging.recovery", (o, v) => o with { Logging = o.Logging with { Recovery = v.Bool() } }, NoRaftLog),
        Key("logging.raft", (o, v) => o with { Logging = o.Logging with { Raft = v.Bool() } }, NoRaft),
        Key("logging.nats", (o, v) => o with { Logging = o.Logging with { Nats = v.Bool() } }),

        Key("batch.max.messages", (o, v) => o with { Batch = o.Batch with { MaxMessages = v.Int(1) } }),
        Key("batch.max.time", (o, v) => o with { Batch = o.Batch with { MaxTime = v.Duration() } }),

        Key("tls.key", (o, v) => o with { Tls = o.Tls with { Key = v.String().Trim() } }),
        Key("tls.cert", (o, v) => o with { Tls = o.Tls with { Cert = v.String().Trim() } }),
        Key("tls.client.auth.enabled", (o, v) => o with { Tls = o.Tls with { ClientAuthEnabled = v.Bool() } }),
        Key("tls.client.auth.ca", (o, v) => o with { Tls = o.Tls with { ClientAuthCa = v.String().Trim() } }),
        Key("tls.client.authz.enabled", (o, v) => o with { Tls = o.Tls with { ClientAuthzEnabled = v.Bool() } }),
        Key("tls.client.authz.model", (o, v) => o with { Tls = o.Tls with { ClientAuthzModel = v.String() } }),
        Key("tls.client.authz.policy", (o, v) => o with { Tls = o.Tls with { ClientAuthzPolicy = v.String() } }),

        Key("nats.servers", (o, v) => o with { Nats = o.Nats with { Servers = v.List() } }),
        Key("nats.user", (o, v) => o with { Nats = o.Nats with { User = v.String() } }),
        Key("nats.password", (o, v) => o with { Nats = o.Nats with { Password = v.String() } }),
        Key("nats.tls.cert", (o, v) => o with { Nats = o.Nats with { TlsCert = v.String() } }),
        Key("nats.tls.key", (o, v) => o with { Nats = o.Nats with { TlsKey = v.String() } }),
        Key("nats.tls.ca", (o, v) => o with { Nats = o.Nats with { TlsCa = v.String() } }),
        Key("nats.embedded", (o, v) => o with { Nats = o.Nats with { Embedded = o.Nats.Embedded || v.Bool() } }),
        Key("nats.embedded.config", (o, v) => o with { Nats = o.Nats with { Embedded = true, EmbeddedConfig = v.String() } }),

        Key("streams.retention.max.bytes", (o, v) => o with { Streams = o.Streams with { RetentionMaxBytes = v.Long(0, long.MaxValue) } }),
        Key("streams.retention.max.messages", (o, v) => o with { Streams = o.Streams with { RetentionMaxMessages = v.Long(0, long.MaxValue) } }),
        Key("streams.retention.max.age", (o, v) => o with { Streams = o.Streams with { RetentionMaxAge = v.Duration() } }),
        Key("streams.cleaner.interval", (o, v) => o with { Streams = o.Streams with { CleanerInterval = Positive(v) } }),
        Key("streams.segment.max.bytes", (o, v) => o with { Streams = o.Streams with { SegmentMaxBytes = v.Long(1, long.MaxValue) } }),
        Key("streams.segment.max.age", (o, v) => o with { Streams = o.Streams with { SegmentMaxAge = v.Duration() } }),
        Key("streams.compact.enabled", (o, v) => o with { Streams = o.Streams with { CompactEnabled = v.Bool() } }),
        Key("streams.compact.max.goroutines", (o, v) => o with { Streams = o.Streams with { CompactMaxGoroutines = v.Int(1) } }, OneCompactionThread),
        Key("streams.auto.pause.time", (o, v) => o with { Streams = o.Streams with { AutoPauseTime = v.Duration() } }),
        Key("streams.auto.pause.disable.if.subscribers", (o, v) => o with { Streams = o.Streams with { AutoPauseDisableIfSubscribers = v.Bool() } }),
        Key("streams.concurrency.control", (o, v) => o with { Streams = o.Streams with { ConcurrencyControl = v.Bool() } }),
        Key("streams.encryption", (o, v) => o with { Streams = o.Streams with { Encryption = v.Bool() } }),
        Key("streams.duplicate.window", (o, v) => o with { Streams = o.Streams with { DuplicateWindow = v.Duration() } }),

        Key("clustering.server.id", (o, v) => o with { Clustering = o.Clustering with { ServerId = ServerId(v) } }),
        Key("clustering.namespace", (o, v) => o with { Clustering = o.Clustering with { Namespace = SubjectToken(v) } }),
        Key("clustering.raft.snapshot.retain", (o, v) => o with { Clustering = o.Clustering with { RaftSnapshotRetain = v.Int(0) } }, NoRaft),
        Key("clustering.raft.snapshot.threshold", (o, v) => o with { Clustering = o.Clustering with { RaftSnapshotThreshold = (ulong)v.Long(0, long.MaxValue) } }, NoRaft),
        Key("clustering.raft.cache.size", (o, v) => o with { Clustering = o.Clustering with { RaftCacheSize = v.Int(0) } }, NoRaft),
        Key("clustering.raft.bootstrap.seed", (o, v) => o with { Clustering = o.Clustering with { RaftBootstrapSeed = v.Bool() } }, NoRaft),
        Key("clustering.raft.bootstrap.peers", (o, v) => o with { Clustering = o.Clustering with { RaftBootstrapPeers = v.List() } }, NoRaft),
        Key("clustering.raft.max.quorum.size", (o, v) => o with { Clustering = o.Clustering with { RaftMaxQuorumSize = (uint)v.Long(0, uint.MaxValue) } }, NoRaft),
        Key("clustering.replica.max.lag.time", (o, v) => o with { Clustering = o.Clustering with { ReplicaMaxLagTime = v.Duration() } }),
        Key("clustering.replica.max.leader.timeout", (o, v) => o with { Clustering = o.Clustering with { ReplicaMaxLeaderTimeout = v.Duration() } }, NoLeaderReports),
        Key("clustering.replica.max.idle.wait", (o, v) => o with { Clustering = o.Clustering with { ReplicaMaxIdleWait = v.Duration() } }),
        Key("clustering.replica.fetch.timeout", (o, v) => o with { Clustering = o.Clustering with { ReplicaFetchTimeout = v.Duration() } }),
        Key("clustering.min.insync.replicas", (o, v) => o with { Clustering = o.Clustering with { MinInsyncReplicas = v.Int(1) } }),
        Key("clustering.replication.max.bytes", (o, v) => o with { Clustering = o.Clustering with { ReplicationMaxBytes = v.Long(1, long.MaxValue) } }),
        Key("clustering.etcd.endpoints", (o, v) => o with { Clustering = o.Clustering with { Etcd = o.Clustering.Etcd with { Endpoints = EtcdEndpoints(v) } } }),
        Key("clustering.etcd.tls.ca", (o, v) => o with { Clustering = o.Clustering with { Etcd = o.Clustering.Etcd with { TlsCa = NonEmpty(v, "a PEM file path") } } }),
        Key("clustering.etcd.tls.cert", (o, v) => o with { Clustering = o.Clustering with { Etcd = o.Clustering.Etcd with { TlsCert = NonEmpty(v, "a PEM file path") } } }),
        Key("clustering.etcd.tls.key", (o, v) => o with { Clustering = o.Clustering with { Etcd = o.Clustering.Etcd with { TlsKey = NonEmpty(v, "a PEM file path") } } }),
        Key("clustering.etcd.dial.timeout", (o, v) => o with { Clustering = o.Clustering with { Etcd = o.Clustering.Etcd with { DialTimeout = Positive(v) } } }),
        Key("clustering.etcd.request.timeout", (o, v) => o with { Clustering = o.Clustering with { Etcd = o.Clustering.Etcd with { RequestTimeout = Positive(v) } } }),
        Key("clustering.peer.addresses", (o, v) => o with { Clustering = o.Clustering with { PeerAddresses = PeerAddresses(v) } }),
        Key("clustering.broker.lease.ttl", (o, v) => o with { Clustering = o.Clustering with { BrokerLeaseTtl = WholeSeconds(v) } }),

        Key("activity.stream.enabled", (o, v) => o with { Activity = o.Activity with { Enabled = v.Bool() } }),
        Key("activity.stream.publish.timeout", (o, v) => o with { Activity = o.Activity with { PublishTimeout = Positive(v) } }),
        Key("activity.stream.publish.ack.policy", (o, v) => o with { Activity = o.Activity with { PublishAckPolicy = v.Enum<PublishAckPolicy>() } }),

        Key("cursors.stream.partitions", (o, v) => o with { Cursors = o.Cursors with { Partitions = v.Int(0) } }),
        Key("cursors.stream.replication.factor", (o, v) => o with { Cursors = o.Cursors with { ReplicationFactor = ReplicationFactor(v) } }),
        Key("cursors.stream.auto.pause.time", (o, v) => o with { Cursors = o.Cursors with { AutoPauseTime = v.Duration() } }),

        Key("groups.consumer.timeout", (o, v) => o with { Groups = o.Groups with { ConsumerTimeout = v.Duration() } }),
        Key("groups.coordinator.timeout", (o, v) => o with { Groups = o.Groups with { CoordinatorTimeout = v.Duration() } }),

        Key("telemetry.enabled", (o, v) => o with { Telemetry = o.Telemetry with { Enabled = v.Bool() } }, NoTelemetry),
        Key("telemetry.interval.seconds", (o, v) => o with { Telemetry = o.Telemetry with { IntervalSeconds = v.Int(1) } }, NoTelemetry),

        Key("storage.durability", (o, v) => o with { Storage = o.Storage with { Durability = v.Enum<DurabilityMode>() } }),
        Key("storage.fsync.interval", (o, v) => o with { Storage = o.Storage with { FsyncInterval = Positive(v) } }),
        Key("grpc.transport", (o, v) => o with { GrpcTransport = v.Enum<Grpc.GrpcServerTransport>() }),
        Key("grpc.max.connections", (o, v) => o with { GrpcMaxConnections = v.Int(1, 1_000_000) }),
        Key("grpc.reader.linger", (o, v) => o with { GrpcReaderLinger = v.Duration() }),
        Key("storage.max.open.files", (o, v) => o with { Storage = o.Storage with { MaxOpenFiles = v.Int(16) } }),
        Key("grpc.max.connections.per.address", (o, v) => o with { GrpcMaxConnectionsPerAddress = v.Int(1, 1_000_000) }),
        Key("monitor.listen", (o, v) => o with { Monitor = o.Monitor with { Listen = v.HostPort() } }),
        Key("monitor.partition.series.max", (o, v) => o with { Monitor = o.Monitor with { PartitionSeriesMax = v.Int(0, 100_000) } }),
        Key("monitor.otlp.endpoint", (o, v) => o with { Monitor = o.Monitor with { OtlpEndpoint = OtlpEndpoint(v) } }),
        Key("monitor.otlp.protocol", (o, v) => o with { Monitor = o.Monitor with { OtlpProtocol = OtlpProtocolOf(v) } }),
        Key("monitor.otlp.interval", (o, v) => o with { Monitor = o.Monitor with { OtlpInterval = Positive(v) } }),
        Key("monitor.otlp.traces.enabled", (o, v) => o with { Monitor = o.Monitor with { OtlpTraces = v.Bool() } }),
        Key("monitor.otlp.traces.sample.ratio", (o, v) => o with { Monitor = o.Monitor with { TraceSampleRatio = Ratio(v) } }),
        Key("subscriptions.max.buffered.bytes", (o, v) => o with { SubscriptionsMaxBufferedBytes = v.Long(1L << 20, long.MaxValue) }),
    ];

    private static readonly Dictionary<string, ConfigKey> ByName = All.ToDictionary(k => k.Name, StringComparer.OrdinalIgnoreCase);

    public static ConfigKey? Find(string name) => ByName.GetValueOrDefault(name);

    /// <summary>True when some key lives under this prefix (`logging`, `clustering.raft`).</summary>
    public static bool IsSection(string prefix) =>
        All.Any(k => k.Name.StartsWith(prefix + ".", StringComparison.OrdinalIgnoreCase));

    private static ConfigKey Key(string name, Func<ServerOptions, ConfigValue, ServerOptions> apply, string? ignoredReason = null) =>
        new(name, apply, ignoredReason);

    private static string NonEmpty(ConfigValue v, string expected)
    {
        var text = v.String().Trim();
        return text.Length > 0 ? text : throw new InvalidSettingValueException(expected);
    }

    private static TimeSpan Positive(ConfigValue v)
    {
        var value = v.Duration();
        return value > TimeSpan.Zero ? value : throw new InvalidSettingValueException("a duration greater than zero, such as 1s or 5m");
    }

    // etcd leases count whole seconds.
    private static TimeSpan WholeSeconds(ConfigValue v)
    {
        var value = v.Duration();
        return value >= TimeSpan.FromSeconds(1) && value.Ticks % TimeSpan.TicksPerSecond == 0
            ? value
            : throw new InvalidSettingValueException("a whole number of seconds, at least 1s, such as 3s");
    }

    // etcd client URLs; a bare host:port means plain http, as etcdctl reads it.
    private static Dictionary<string, string> PeerAddresses(ConfigValue v)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in v.List())
        {
            var equals = entry.IndexOf('=', StringComparison.Ordinal);
            var id = equals > 0 ? entry[..equals].Trim() : "";
            var address = equals > 0 ? entry[(equals + 1)..].Trim() : "";
            var colon = address.LastIndexOf(':');
            if (id.Length == 0 || colon <= 0 || !int.TryParse(address[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535
                || !result.TryAdd(id, address))
            {
                throw new InvalidSettingValueException("a list of distinct broker-id=host:port entries, such as b2=127.0.0.1:9300,b3=10.0.0.3:9292");
            }
        }

        return result;
    }

    private static string[] EtcdEndpoints(ConfigValue v)
    {
        var endpoints = v.List().Select(e => e.Contains("://", StringComparison.Ordinal) ? e : "http://" + e).ToArray();
        foreach (var endpoint in endpoints)
        {
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Host.Length == 0)
            {
                throw new InvalidSettingValueException("etcd client URLs, such as http://127.0.0.1:2379,http://10.0.0.2:2379");
            }
        }

        if (endpoints.Select(e => new Uri(e).Scheme).Distinct().Count() > 1)
        {
            throw new InvalidSettingValueException("etcd client URLs that are all http:// or all https://");
        }

        return endpoints;
    }

    private static Uri OtlpEndpoint(ConfigValue v) =>
        Uri.TryCreate(v.String().Trim(), UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Host.Length > 0
            ? uri
            : throw new InvalidSettingValueException("an http:// or https:// URL, such as http://127.0.0.1:4317");

    private static double Ratio(ConfigValue v) =>
        double.TryParse(v.String().Trim(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var ratio) && ratio is >= 0 and <= 1
            ? ratio
            : throw new InvalidSettingValueException("a number from 0 to 1, such as 0.01");

    private static OtlpProtocol OtlpProtocolOf(ConfigValue v) => v.String().Trim().ToLowerInvariant() switch
    {
        "grpc" => OtlpProtocol.Grpc,
        "http/protobuf" => OtlpProtocol.HttpProtobuf,
        _ => throw new InvalidSettingValueException("grpc or http/protobuf"),
    };

    private static int ReplicationFactor(ConfigValue v)
    {
        var value = v.Int(-1, int.MaxValue, "-1 (all servers) or a positive integer");
        return value != 0 ? value : throw new InvalidSettingValueException("-1 (all servers) or a positive integer");
    }

    // Server ids and namespaces end up in NATS subjects, so they cannot hold spaces or wildcards.
    private static string SubjectToken(ConfigValue v)
    {
        var text = v.String().Trim();
        return text.Length > 0 && !text.Any(c => char.IsWhiteSpace(c) || c is '*' or '>')
            ? text
            : throw new InvalidSettingValueException("a non-empty name without spaces, '*' or '>'");
    }

    private static string ServerId(ConfigValue v) => SubjectToken(v);
}
