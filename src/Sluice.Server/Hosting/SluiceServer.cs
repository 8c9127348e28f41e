using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Etcd;
using Sluice.Server.Api;
using Sluice.Server.Authorization;
using Sluice.Server.Cluster;
using Sluice.Server.Cluster.Replication;
using Sluice.Server.Configuration;
using Sluice.Server.Groups;
using Sluice.Server.Grpc;
using Sluice.Server.Monitoring;
using Sluice.Server.Nats;
using Sluice.Server.Streams;
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using ServingStatus = Sluice.Protocol.Health.HealthCheckResponse.Types.ServingStatus;

namespace Sluice.Server.Hosting;

/// <summary>
/// A running Sluice server: the broker, its metadata store and the gRPC endpoint serving
/// <c>proto.API</c> and health. Library first: tests, benchmarks and the CLI all start it with
/// <see cref="StartAsync(ServerOptions, ILoggerFactory?, CancellationToken)"/> and stop it with <see cref="DisposeAsync"/>.
/// </summary>
public sealed class SluiceServer : IAsyncDisposable
{
    private readonly IMetadataStore? _ownedStore;
    private readonly GrpcServer _grpc;
    private readonly ILogger _logger;
    private readonly IDisposable? _dataLock;
    private int _disposed;

    private SluiceServer(ServerOptions options, string serverId, IMetadataStore? ownedStore, Broker broker, GrpcServer grpc, ILogger logger, ClusterNode? cluster, IDisposable? dataLock)
    {
        Options = options;
        ServerId = serverId;
        _ownedStore = ownedStore;
        Broker = broker;
        _grpc = grpc;
        _logger = logger;
        Cluster = cluster;
        _dataLock = dataLock;
    }

    /// <summary>The options the server runs with.</summary>
    public ServerOptions Options { get; }

    /// <summary>This server's id (configured, or persisted in the data directory).</summary>
    public string ServerId { get; }

    /// <summary>The bound port: the OS-assigned one when the options asked for port 0.</summary>
    public int Port => _grpc.Port;

    /// <summary>The advertised host (what FetchMetadata reports).</summary>
    public string AdvertisedHost => Options.AdvertisedAddress.Host;

    /// <summary>The monitoring port's bound port; null when `monitor.listen` is not set.</summary>
    public int? MonitorPort => Monitor?.Port;

    /// <summary>When the server finished starting (UTC).</summary>
    public DateTime StartedAt { get; } = DateTime.UtcNow;

    internal MonitorServer? Monitor { get; private init; }

    internal ServerMetrics Metrics { get; private init; } = null!;

    /// <summary>The brokers as FetchMetadata lists them (this one alone on a single node).</summary>
    internal Func<IEnumerable<Sluice.Protocol.Api.Broker>> BrokerList { get; private init; } = () => [];

    /// <summary>Health of the gRPC endpoint ("" and "proto.API").</summary>
    public GrpcHealth Health => _grpc.Health;

    internal Broker Broker { get; }

    internal GrpcServer Grpc => _grpc;

    /// <summary>This server as a cluster member; null on a single node.</summary>
    internal ClusterNode? Cluster { get; }

    internal ConsumerGroups Groups { get; private init; } = null!;

    /// <summary>Create, delete, pause, readonly as the API runs them: on the broker alone, or through the controller in a cluster.</summary>
    internal IStreamAdmin StreamAdmin { get; private init; } = null!;

    /// <summary>The admin service (group descriptions with lag), which the monitoring port's views reuse.</summary>
    internal AdminService AdminApi { get; private init; } = null!;

    /// <summary>The authorization policy in force (<c>tls.client.authz.*</c>), or null when authorization is off.</summary>
    public Authorizer? Authorization { get; private init; }

    /// <summary>Reads the authorization model and policy files again (what SIGHUP does).</summary>
    /// <returns>Whether the new policy is in force: false when authorization is off or a file does not load (the old policy stays).</returns>
    public bool ReloadAuthorization() => Authorization?.Reload() ?? false;

    /// <summary>
    /// Opens the metadata store and every stream under <see cref="ServerOptions.DataDir"/> (recovering
    /// logs after a crash), then listens. Throws if the data cannot be opened or the port bound.
    /// </summary>
    public static Task<SluiceServer> StartAsync(ServerOptions options, ILoggerFactory? loggers = null, CancellationToken ct = default) =>
        StartAsync(options, loggers, cluster: null, ct);

    /// <summary>
    /// Starts a single node (<paramref name="cluster"/> null), or a cluster member whose metadata lives in the
    /// shared store the settings name (the store is not disposed with the server).
    /// </summary>
    internal static async Task<SluiceServer> StartAsync(ServerOptions options, ILoggerFactory? loggers, ClusterSettings? cluster, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        loggers ??= NullLoggerFactory.Instance;
        var logger = loggers.CreateLogger<SluiceServer>();
        var dataDir = Path.GetFullPath(options.DataDir);
        Directory.CreateDirectory(dataDir);
        var limits = ServerLimits.Compute(options, MachineLimits.Probe());
        foreach (var warning in limits.Warnings)
        {
            logger.LogWarning("{Limit}", warning);
        }

        options = options with { Storage = options.Storage with { MaxOpenFiles = limits.MaxOpenFiles } };
        var authorizer = Authorizer.Create(options.Tls, loggers); // before anything opens: bad policy files stop the start here

        // The monitoring port opens first, so /healthz answers and /readyz says "recovering" while the data is opened.
        var metrics = new ServerMetrics(options.Monitor.PartitionSeriesMax);
        MonitorServer? monitor = null;
        try
        {
            metrics.Provider = MetricsPipeline.Build(options, metrics);
            if (options.Monitor.Listen is not null)
            {
                monitor = await MonitorServer.StartAsync(options, metrics.Provider!, loggers, ct).ConfigureAwait(false);
            }
        }
        catch
        {
            metrics.Dispose();
            throw;
        }

        // The store (or, in a cluster, the data lock) takes the data directory's lock: nothing in the directory (the
        // server id included) is written before it, so a second server on the same directory is refused without touching it.
        FileStream? dataLock = null;
        IMetadataStore? ownedStore = null;
        IMetadataStore store;
        if (cluster is null && !options.Clustering.Etcd.Enabled)
        {
            try
            {
                store = ownedStore = await EmbeddedMetadataStore.OpenAsync(Path.Combine(dataDir, "metadata"), MetadataStoreOptions.Default with { LoggerFactory = loggers }, ct).ConfigureAwait(false);
            }
            catch
            {
                await StopMonitoringAsync(monitor, metrics).ConfigureAwait(false);
                throw;
            }
        }
        else
        {
            try
            {
                dataLock = Sluice.Storage.Metadata.Persistence.DirectoryLock.Acquire(dataDir);
            }
            catch
            {
                await StopMonitoringAsync(monitor, metrics).ConfigureAwait(false);
                throw;
            }

            if (cluster is null)
            {
                try
                {
                    store = ownedStore = await ConnectEtcdAsync(options, loggers, ct).ConfigureAwait(false);
                }
                catch
                {
                    await dataLock.DisposeAsync().ConfigureAwait(false);
                    await StopMonitoringAsync(monitor, metrics).ConfigureAwait(false);
                    throw;
                }

                cluster = new ClusterSettings(store, options.Clustering.BrokerLeaseTtl);
            }
            else
            {
                store = cluster.Store;
            }
        }

        Broker? broker = null;
        GrpcServer? grpc = null;
        NatsAttachment? nats = null;
        ClusterNode? node = null;
        ConsumerGroups? groups = null;
        try
        {
            var serverId = ServerIdentity.Resolve(dataDir, options.Clustering.ServerId, logger);
            metrics.Traces = TracingPipeline.Build(options, serverId); // spans name the broker, so after its id is known
            // NATS hook: attach before the streams load, so every partition that opens subscribes.
            nats = NatsAttachment.IsConfigured(options) ? await NatsAttachment.StartAsync(options, serverId, loggers, ct).ConfigureAwait(false) : null;
            var context = new BrokerContext(options, serverId) { Nats = nats, Metrics = metrics };
            broker = cluster is null
                ? await Broker.OpenAsync(context, store, loggers, ct).ConfigureAwait(false)
                : Broker.OpenClustered(context, store, loggers);
            metrics.Broker = broker;
            var registry = new GrpcMethodRegistry();
            SluiceServer? server = null;
            AdminService adminApi;
            (string Host, int Port) Advertised() => (options.AdvertisedAddress.Host, options.AdvertisedAddress.Port == 0 ? server?.Port ?? grpc!.Port : options.AdvertisedAddress.Port);
            if (cluster is null)
            {
                groups = new ConsumerGroups(broker, store, new SingleNodeGroupPlacement(broker), loggers);
                new ApiService(broker, broker, () => [SelfBroker(broker, Advertised())], groups, authorizer).Register(registry);
                adminApi = new AdminService(broker, groups, node: null, authorizer);
                adminApi.Register(registry);
            }
            else
            {
                node = new ClusterNode(cluster, broker, loggers);
                metrics.Cluster = node;
                groups = new ConsumerGroups(broker, store, new ClusterGroupPlacement(node, broker), loggers);
                var clusterGroups = groups;
                node.GroupsInUse = () => clusterGroups.Snapshot().Count > 0;
                if (authorizer is not null)
                {
                    // Forwarded publishes come from brokers, which checked the client that sent them.
                    var members = node;
                    authorizer.IsBrokerCertificate = certificate => members.View.Current.Brokers.Values.Any(b => certificate.MatchesHostname(b.Host));
                }

                new ApiService(broker, node, node.Brokers, groups, authorizer).Register(registry);
                adminApi = new AdminService(broker, groups, node, authorizer);
                adminApi.Register(registry);
                new ReplicationService(node, broker, loggers.CreateLogger<ReplicationService>()).Register(registry);
            }

            var listen = options.ListenEndpoint;
            var grpcOptions = GrpcOptions(options, limits);
            if (node is not null)
            {
                // Other brokers connect here too: room for them past the client limits, and with TLS their certificates.
                grpcOptions = grpcOptions with
                {
                    IsPeerBrokerAddress = node.IsBrokerAddress,
                    Tls = grpcOptions.Tls is { } serverTls ? serverTls with { RequestClientCertificate = true } : null,
                };
            }

            grpc = new GrpcServer(grpcOptions, registry, loggers) { Metrics = metrics };
            metrics.Grpc = grpc;
            await grpc.StartAsync(ct).ConfigureAwait(false);
            if (node is not null)
            {
                var (host, port) = Advertised();
                await node.StartAsync(host, port, ct).ConfigureAwait(false);
            }

            await groups.StartAsync(ct).ConfigureAwait(false);
            var clusterNode = node;
            var singleBroker = broker;
            server = new SluiceServer(options, serverId, ownedStore, broker, grpc, logger, node, dataLock)
            {
                Groups = groups,
                StreamAdmin = (IStreamAdmin?)node ?? broker,
                AdminApi = adminApi,
                Authorization = authorizer,
                Monitor = monitor,
                Metrics = metrics,
                BrokerList = clusterNode is not null ? clusterNode.Brokers : () => [SelfBroker(singleBroker, Advertised())],
            };
            monitor?.Started(server);
            logger.LogInformation("Sluice server {ServerId} listening on {Host}:{Port}, data in {DataDir}", serverId, listen.Host, grpc.Port, dataDir);
            return server;
        }
        catch
        {
            if (groups is not null)
            {
                await groups.DisposeAsync().ConfigureAwait(false);
            }

            if (node is not null)
            {
                await node.DisposeAsync().ConfigureAwait(false);
            }

            if (grpc is not null)
            {
                await grpc.DisposeAsync().ConfigureAwait(false);
            }

            if (broker is not null)
            {
                await broker.DisposeAsync().ConfigureAwait(false);
            }

            if (nats is not null)
            {
                await nats.DisposeAsync().ConfigureAwait(false);
            }

            if (ownedStore is not null)
            {
                await ownedStore.DisposeAsync().ConfigureAwait(false);
            }

            dataLock?.Dispose();
            await StopMonitoringAsync(monitor, metrics).ConfigureAwait(false);
            throw;
        }
    }

    private static async Task StopMonitoringAsync(MonitorServer? monitor, ServerMetrics metrics)
    {
        if (monitor is not null)
        {
            await monitor.DisposeAsync().ConfigureAwait(false);
        }

        metrics.Dispose();
    }

    private static Sluice.Protocol.Api.Broker SelfBroker(Broker broker, (string Host, int Port) advertised)
    {
        var counts = broker.CountPartitions();
        return new Sluice.Protocol.Api.Broker
        {
            Id = broker.ServerId,
            Host = advertised.Host,
            Port = advertised.Port,
            PartitionCount = counts.PartitionCount,
            LeaderCount = counts.LeaderCount,
        };
    }

    /// <summary>The cluster's etcd, when <c>clustering.etcd.endpoints</c> is set.</summary>
    private static async Task<IMetadataStore> ConnectEtcdAsync(ServerOptions options, ILoggerFactory loggers, CancellationToken ct)
    {
        var etcd = options.Clustering.Etcd;
        return await EtcdMetadataStore.ConnectAsync(
            new EtcdMetadataStoreOptions
            {
                Endpoints = etcd.Endpoints,
                TlsCaFile = etcd.TlsCa,
                TlsCertFile = etcd.TlsCert,
                TlsKeyFile = etcd.TlsKey,
                DialTimeout = etcd.DialTimeout,
                RequestTimeout = etcd.RequestTimeout,
                LoggerFactory = loggers,
            },
            ct).ConfigureAwait(false);
    }

    private static GrpcServerOptions GrpcOptions(ServerOptions options, ServerLimits limits)
    {
        var listen = options.ListenEndpoint;
        var tls = options.Tls;
        // Kestrel cannot bind "localhost" to a dynamic port; loopback IPv4 is what such a test or bench means.
        var host = listen.Port == 0 && string.Equals(listen.Host, "localhost", StringComparison.OrdinalIgnoreCase) ? "127.0.0.1" : listen.Host;
        return GrpcServerOptions.Default with
        {
            Host = host,
            Port = listen.Port,
            Transport = options.GrpcTransport,
            MaxConnections = limits.MaxConnections,
            MaxConnectionsSource = limits.MaxConnectionsSource,
            MaxConnectionsPerAddress = limits.MaxConnectionsPerAddress,
            MaxReaderThreads = limits.MaxReaderThreads,
            ReaderLinger = options.GrpcReaderLinger,
            MaxBufferedOutputBytes = options.SubscriptionsMaxBufferedBytes,
            Tls = tls.Enabled
                ? new GrpcServerTlsOptions
                {
                    CertificatePemPath = tls.Cert,
                    KeyPemPath = tls.Key,
                    RequireClientCertificate = tls.ClientAuthEnabled,
                    ClientCaPemPath = tls.ClientAuthCa.Length > 0 ? tls.ClientAuthCa : null,
                }
                : null,
        };
    }

    /// <summary>
    /// Graceful stop: health NOT_SERVING, subscriptions end with Internal, queued messages are
    /// written and acked, logs and the metadata store are flushed and closed.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _grpc.Health.SetStatus(string.Empty, ServingStatus.NotServing);
        _grpc.Health.SetStatus(ApiService.ServiceName, ServingStatus.NotServing);
        Monitor?.NotReady("stopping");
        await Groups.DisposeAsync().ConfigureAwait(false);
        if (Cluster is not null)
        {
            await Cluster.DisposeAsync().ConfigureAwait(false); // leaves the cluster first: the others take over its leaderships
        }

        await Broker.DisposeAsync().ConfigureAwait(false);
        if (Broker.Context.Nats is { } nats)
        {
            await nats.DisposeAsync().ConfigureAwait(false); // after the partitions unsubscribed; stops an embedded nats-server
        }

        await _grpc.DisposeAsync().ConfigureAwait(false);
        if (_ownedStore is not null)
        {
            await _ownedStore.DisposeAsync().ConfigureAwait(false);
        }

        _dataLock?.Dispose();
        await StopMonitoringAsync(Monitor, Metrics).ConfigureAwait(false);
        _logger.LogInformation("Sluice server {ServerId} stopped", ServerId);
    }
}
