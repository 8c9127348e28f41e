using Microsoft.Extensions.Logging;

namespace Sluice.Server.Configuration;

/// <summary>
/// Everything `sluice serve` can be configured with. Defaults are Liftbridge's (server/config.go) except where
/// docs/configuration.md says otherwise: data.dir, nats.servers and the server-id file.
/// </summary>
public sealed record ServerOptions
{
    /// <summary>Liftbridge's default port, kept so existing clients find the server.</summary>
    public const int DefaultPort = 9292;

    /// <summary>Sluice keeps data next to where it is started rather than in /tmp (Liftbridge's default).</summary>
    public const string DefaultDataDir = "./data";

    public static ServerOptions Default { get; } = new();

    /// <summary>`listen`: bind address; when null, `host:port` is used, then `0.0.0.0:port`.</summary>
    public HostPort? Listen { get; init; }

    /// <summary>`host`: advertised host (and bind host when `listen` is not given). Empty = not set.</summary>
    public string Host { get; init; } = "";

    /// <summary>`port`: bind and advertised port; 0 lets the OS pick one.</summary>
    public int Port { get; init; } = DefaultPort;

    /// <summary>`data.dir`.</summary>
    public string DataDir { get; init; } = DefaultDataDir;

    public LoggingOptions Logging { get; init; } = LoggingOptions.Default;
    public TlsOptions Tls { get; init; } = TlsOptions.Default;
    public NatsConnectionSettings Nats { get; init; } = NatsConnectionSettings.Default;
    public StreamDefaults Streams { get; init; } = StreamDefaults.Default;
    public ClusteringOptions Clustering { get; init; } = ClusteringOptions.Default;
    public ActivityOptions Activity { get; init; } = ActivityOptions.Default;
    public CursorsOptions Cursors { get; init; } = CursorsOptions.Default;
    public GroupsOptions Groups { get; init; } = GroupsOptions.Default;
    public MetadataOptions Metadata { get; init; } = MetadataOptions.Default;
    public BatchOptions Batch { get; init; } = BatchOptions.Default;
    public StorageOptions Storage { get; init; } = StorageOptions.Default;
    public TelemetryOptions Telemetry { get; init; } = TelemetryOptions.Default;
    public MonitorOptions Monitor { get; init; } = MonitorOptions.Default;

    /// <summary>`grpc.transport`: whose HTTP/2 serves the gRPC API, Kestrel's or the server's own (Sluice only).</summary>
    public Grpc.GrpcServerTransport GrpcTransport { get; init; } = Grpc.GrpcServerTransport.Native;

    /// <summary>`grpc.max.connections`: client connections served at once (Sluice only).</summary>
    public int GrpcMaxConnections { get; init; } = Grpc.GrpcServerOptions.Default.MaxConnections;

    /// <summary>`grpc.reader.linger`: how long a native connection keeps its reader thread while the client is quiet (Sluice only).</summary>
    public TimeSpan GrpcReaderLinger { get; init; } = Grpc.GrpcServerOptions.Default.ReaderLinger;

    /// <summary>`grpc.max.connections.per.address`: connections one client IP address may hold; null = half of the connection limit (Sluice only).</summary>
    public int? GrpcMaxConnectionsPerAddress { get; init; }

    /// <summary>`subscriptions.max.buffered.bytes`: unsent response bytes all slow clients together may hold (Sluice only).</summary>
    public long SubscriptionsMaxBufferedBytes { get; init; } = Grpc.GrpcServerOptions.Default.MaxBufferedOutputBytes;

    /// <summary>
    /// Where the broker reads the encryption master key, once at start. Null = the process environment
    /// (<c>SLUICE_ENCRYPTION_KEY</c>, else <c>LIFTBRIDGE_ENCRYPTION_KEY</c>); tests supply their own. A delegate
    /// so the key never shows up when the options are printed.
    /// </summary>
    public Func<string?>? EncryptionKeySource { get; init; }

    /// <summary>Where to bind: `listen` &gt; `host:port` &gt; `0.0.0.0:port` (Liftbridge's GetListenAddress).</summary>
    public HostPort ListenEndpoint =>
        Listen is { } listen ? listen
        : Host.Length > 0 ? new HostPort(Host, Port)
        : new HostPort("0.0.0.0", Port);

    /// <summary>
    /// What brokers advertise in metadata: `host:port` &gt; `listen` &gt; `localhost:port` (Liftbridge's
    /// GetConnectionAddress). A port of 0 is replaced by the bound port at run time.
    /// </summary>
    public HostPort AdvertisedAddress =>
        Host.Length > 0 ? new HostPort(Host, Port)
        : Listen is { } listen ? listen
        : new HostPort("localhost", Port);
}

/// <summary>A host and a port, printed as `host:port` (`[::1]:port` for IPv6).</summary>
public readonly record struct HostPort(string Host, int Port)
{
    public override string ToString() => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}

/// <summary>`logging.*`.</summary>
public sealed record LoggingOptions
{
    public static LoggingOptions Default { get; } = new();

    /// <summary>`logging.level`: debug, info, warn or error (default info).</summary>
    public LogLevel Level { get; init; } = LogLevel.Information;

    /// <summary>`logging.recovery`: log messages replayed while recovering logs (default false).</summary>
    public bool Recovery { get; init; }

    /// <summary>`logging.raft` (default false). Sluice has no Raft; accepted and ignored.</summary>
    public bool Raft { get; init; }

    /// <summary>`logging.nats` (default false).</summary>
    public bool Nats { get; init; }
}

/// <summary>`tls.*`: TLS for the client API.</summary>
public sealed record TlsOptions
{
    public static TlsOptions Default { get; } = new();

    /// <summary>`tls.key`: PEM private key file.</summary>
    public string Key { get; init; } = "";

    /// <summary>`tls.cert`: PEM certificate file.</summary>
    public string Cert { get; init; } = "";

    /// <summary>`tls.client.auth.enabled`: require and verify client certificates.</summary>
    public bool ClientAuthEnabled { get; init; }

    /// <summary>`tls.client.auth.ca`: PEM CA file that client certificates must chain to.</summary>
    public string ClientAuthCa { get; init; } = "";

    /// <summary>`tls.client.authz.enabled` (Casbin authorization).</summary>
    public bool ClientAuthzEnabled { get; init; }

    /// <summary>`tls.client.authz.model`.</summary>
    public string ClientAuthzModel { get; init; } = "";

    /// <summary>`tls.client.authz.policy`.</summary>
    public string ClientAuthzPolicy { get; init; } = "";

    /// <summary>TLS is on when both a certificate and a key are given.</summary>
    public bool Enabled => Cert.Length > 0 && Key.Length > 0;
}

/// <summary>`nats.*`: how the server reaches NATS (named to stay clear of NATS.Net's NatsOpts).</summary>
public sealed record NatsConnectionSettings
{
    /// <summary>Liftbridge's default NATS URL. Sluice does not use it by default: NATS is optional.</summary>
    public const string LiftbridgeDefaultServer = "nats://127.0.0.1:4222";

    public static NatsConnectionSettings Default { get; } = new();

    /// <summary>`nats.servers`: empty (the default) runs without NATS.</summary>
    public IReadOnlyList<string> Servers { get; init; } = [];

    public string User { get; init; } = "";
    public string Password { get; init; } = "";

    /// <summary>`nats.tls.cert`.</summary>
    public string TlsCert { get; init; } = "";

    /// <summary>`nats.tls.key`.</summary>
    public string TlsKey { get; init; } = "";

    /// <summary>`nats.tls.ca`.</summary>
    public string TlsCa { get; init; } = "";

    /// <summary>`nats.embedded` (also implied by `nats.embedded.config`).</summary>
    public bool Embedded { get; init; }

    /// <summary>`nats.embedded.config`.</summary>
    public string EmbeddedConfig { get; init; } = "";
}

/// <summary>`streams.*`: defaults for every stream that does not override them.</summary>
public sealed record StreamDefaults
{
    /// <summary>Liftbridge raises a non-zero segment age below one second to one second.</summary>
    public static readonly TimeSpan MinSegmentMaxAge = TimeSpan.FromSeconds(1);

    public static StreamDefaults Default { get; } = new();

    /// <summary>`streams.retention.max.bytes`: 0 = unlimited.</summary>
    public long RetentionMaxBytes { get; init; }

    /// <summary>`streams.retention.max.messages`: 0 = unlimited.</summary>
    public long RetentionMaxMessages { get; init; }

    /// <summary>`streams.retention.max.age` (168h); 0 = unlimited.</summary>
    public TimeSpan RetentionMaxAge { get; init; } = TimeSpan.FromHours(168);

    /// <summary>`streams.cleaner.interval` (5m).</summary>
    public TimeSpan CleanerInterval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>`streams.segment.max.bytes` (256 MiB).</summary>
    public long SegmentMaxBytes { get; init; } = 268_435_456;

    /// <summary>`streams.segment.max.age` as configured; zero means "same as the retention age".</summary>
    public TimeSpan SegmentMaxAge { get; init; }

    /// <summary>`streams.compact.enabled`.</summary>
    public bool CompactEnabled { get; init; }

    /// <summary>`streams.compact.max.goroutines` (10): compaction parallelism.</summary>
    public int CompactMaxGoroutines { get; init; } = 10;

    /// <summary>`streams.auto.pause.time`: 0 = never auto-pause.</summary>
    public TimeSpan AutoPauseTime { get; init; }

    /// <summary>`streams.auto.pause.disable.if.subscribers`.</summary>
    public bool AutoPauseDisableIfSubscribers { get; init; }

    /// <summary>`streams.concurrency.control`: optimistic concurrency control on every stream.</summary>
    public bool ConcurrencyControl { get; init; }

    /// <summary>`streams.encryption`: encrypt values at rest (needs SLUICE_ENCRYPTION_KEY or LIFTBRIDGE_ENCRYPTION_KEY).</summary>
    public bool Encryption { get; init; }

    /// <summary>`streams.duplicate.window` (2m): how long a partition remembers `Sluice-Msg-Id` headers to drop repeats; 0 = off.</summary>
    public TimeSpan DuplicateWindow { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The segment roll age the log uses: the retention age when none is given, and at least one second when
    /// non-zero (zero disables age-based rolls).
    /// </summary>
    public TimeSpan EffectiveSegmentMaxAge
    {
        get
        {
            var age = SegmentMaxAge == TimeSpan.Zero ? RetentionMaxAge : SegmentMaxAge;
            return age > TimeSpan.Zero && age < MinSegmentMaxAge ? MinSegmentMaxAge : age;
        }
    }
}

/// <summary>`clustering.*`.</summary>
public sealed record ClusteringOptions
{
    public const string DefaultNamespace = "liftbridge-default";

    public static ClusteringOptions Default { get; } = new();

    /// <summary>`clustering.server.id`: null = use the persisted id, or generate one (see ServerIdentity).</summary>
    public string? ServerId { get; init; }

    /// <summary>`clustering.namespace`: prefix of internal NATS subjects.</summary>
    public string Namespace { get; init; } = DefaultNamespace;

    public int RaftSnapshotRetain { get; init; } = 2;

    /// <summary>0 = Raft's own default.</summary>
    public ulong RaftSnapshotThreshold { get; init; }

    public int RaftCacheSize { get; init; } = 512;
    public bool RaftBootstrapSeed { get; init; }
    public IReadOnlyList<string> RaftBootstrapPeers { get; init; } = [];

    /// <summary>0 = unlimited.</summary>
    public uint RaftMaxQuorumSize { get; init; }

    public TimeSpan ReplicaMaxLagTime { get; init; } = TimeSpan.FromSeconds(15);
    public TimeSpan ReplicaMaxLeaderTimeout { get; init; } = TimeSpan.FromSeconds(15);
    public TimeSpan ReplicaMaxIdleWait { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan ReplicaFetchTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>`clustering.min.insync.replicas`.</summary>
    public int MinInsyncReplicas { get; init; } = 1;

    /// <summary>`clustering.replication.max.bytes` (1 MiB).</summary>
    public long ReplicationMaxBytes { get; init; } = 1_048_576;

    /// <summary>`clustering.etcd.*`: the etcd that holds the metadata when brokers form a cluster.</summary>
    public EtcdOptions Etcd { get; init; } = EtcdOptions.Default;

    /// <summary>`clustering.broker.lease.ttl` (3 s, whole seconds): how long a broker that stops refreshing its etcd lease stays a member.</summary>
    public TimeSpan BrokerLeaseTtl { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// `clustering.peer.addresses`: `id=host:port` entries; this broker dials the named peer at that address instead
    /// of the one the peer advertises (a proxy per link, a NAT, a second network). Other peers are dialled as they
    /// advertise. TLS still checks the peer's certificate against its advertised host.
    /// </summary>
    public IReadOnlyDictionary<string, string> PeerAddresses { get; init; } = new Dictionary<string, string>();
}

/// <summary>`clustering.etcd.*`.</summary>
public sealed record EtcdOptions
{
    public static EtcdOptions Default { get; } = new();

    /// <summary>`clustering.etcd.endpoints`: client URLs; empty = the embedded metadata store (a single server).</summary>
    public IReadOnlyList<string> Endpoints { get; init; } = [];

    /// <summary>`clustering.etcd.tls.ca`: PEM file of the CA of etcd's server certificates (null = system trust store).</summary>
    public string? TlsCa { get; init; }

    /// <summary>`clustering.etcd.tls.cert`: PEM client certificate for etcd (with `clustering.etcd.tls.key`).</summary>
    public string? TlsCert { get; init; }

    /// <summary>`clustering.etcd.tls.key`: PEM private key of `clustering.etcd.tls.cert`.</summary>
    public string? TlsKey { get; init; }

    /// <summary>`clustering.etcd.dial.timeout` (5 s).</summary>
    public TimeSpan DialTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>`clustering.etcd.request.timeout` (5 s): the deadline of every etcd call.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(5);

    public bool Enabled => Endpoints.Count > 0;
}

/// <summary>Ack policy used for the server's own publishes (activity events).</summary>
public enum PublishAckPolicy
{
    None,
    Leader,
    All,
}

/// <summary>`activity.stream.*`.</summary>
public sealed record ActivityOptions
{
    public static ActivityOptions Default { get; } = new();

    public bool Enabled { get; init; }
    public TimeSpan PublishTimeout { get; init; } = TimeSpan.FromSeconds(5);
    public PublishAckPolicy PublishAckPolicy { get; init; } = PublishAckPolicy.All;
}

/// <summary>`cursors.stream.*`.</summary>
public sealed record CursorsOptions
{
    public static CursorsOptions Default { get; } = new();

    /// <summary>0 disables cursors.</summary>
    public int Partitions { get; init; }

    /// <summary>-1 = all servers.</summary>
    public int ReplicationFactor { get; init; } = -1;

    public TimeSpan AutoPauseTime { get; init; } = TimeSpan.FromMinutes(1);
}

/// <summary>`groups.*` (consumer groups).</summary>
public sealed record GroupsOptions
{
    public static GroupsOptions Default { get; } = new();

    public TimeSpan ConsumerTimeout { get; init; } = TimeSpan.FromSeconds(15);
    public TimeSpan CoordinatorTimeout { get; init; } = TimeSpan.FromSeconds(15);
}

/// <summary>`metadata.*`.</summary>
public sealed record MetadataOptions
{
    public static MetadataOptions Default { get; } = new();

    /// <summary>`metadata.cache.max.age` (2m): how long the broker list is cached.</summary>
    public TimeSpan CacheMaxAge { get; init; } = TimeSpan.FromMinutes(2);
}

/// <summary>`batch.*`: leader write batching.</summary>
public sealed record BatchOptions
{
    public static BatchOptions Default { get; } = new();

    public int MaxMessages { get; init; } = 1024;

    /// <summary>0 = do not wait to fill a batch.</summary>
    public TimeSpan MaxTime { get; init; }
}

/// <summary>When appended data is forced to disk.</summary>
public enum DurabilityMode
{
    /// <summary>Never fsync; rely on the OS (Liftbridge's behaviour).</summary>
    Never,

    /// <summary>fsync every `storage.fsync.interval`.</summary>
    Interval,

    /// <summary>fsync before a write is acknowledged.</summary>
    Always,
}

/// <summary>`storage.*`: Sluice's own keys (Liftbridge has none).</summary>
public sealed record StorageOptions
{
    public static StorageOptions Default { get; } = new();

    public DurabilityMode Durability { get; init; } = DurabilityMode.Never;

    /// <summary>Used when Durability is Interval.</summary>
    public TimeSpan FsyncInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Upper bound on segment files held open at once, so thousands of partitions fit one node.</summary>
    public int MaxOpenFiles { get; init; } = 1024;
}

/// <summary>`telemetry.*`: accepted for compatibility. Sluice never sends telemetry, whatever the value.</summary>
public sealed record TelemetryOptions
{
    public static TelemetryOptions Default { get; } = new();

    /// <summary>Liftbridge's default is true; Sluice records the value and sends nothing.</summary>
    public bool Enabled { get; init; } = true;

    public int IntervalSeconds { get; init; } = 86400;
}
