using System.Collections.Concurrent;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Sluice.Client.Grpc;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Internal;
using Sluice.Server.Cluster.Replication;
using Sluice.Server.Configuration;
using Sluice.Server.Streams;
using Sluice.Storage.Metadata;
using ApiBroker = Sluice.Protocol.Api.Broker;
using Broker = Sluice.Server.Streams.Broker;

namespace Sluice.Server.Cluster;

/// <summary>What a broker needs to join a cluster.</summary>
/// <param name="Store">The shared metadata store (etcd; in tests, one embedded store shared by in-process brokers).</param>
/// <param name="LeaseTtl">`clustering.broker.lease.ttl`: how long a silent broker stays registered.</param>
internal sealed record ClusterSettings(IMetadataStore Store, TimeSpan LeaseTtl);

/// <summary>
/// This broker as a cluster member: its registration (<see cref="Membership"/>), its view of the metadata
/// (<see cref="ClusterView"/>), the controller it may become (<see cref="Controller"/>), the roles it plays
/// for each partition (<see cref="ReplicaManager"/>), channels to the other brokers, and the admin and
/// publish calls it passes to the controller or a partition's leader.
/// </summary>
internal sealed partial class ClusterNode : IStreamAdmin, IPublishForwarder, IAsyncDisposable
{
    private const string ApiPrefix = "/" + Api.ApiService.ServiceName + "/";

    private readonly Broker _broker;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, GrpcChannel> _channels = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, System.Net.IPAddress[]> _resolved = new(StringComparer.OrdinalIgnoreCase);
    private readonly Lazy<X509Certificate2> _ownCertificate;
    private ReplicaManager? _replicas;

    /// <summary>A member that has not joined yet: register its API (admin, forwarding, replication) first, then <see cref="StartAsync"/>.</summary>
    public ClusterNode(ClusterSettings settings, Broker broker, ILoggerFactory loggers)
    {
        Settings = settings;
        _broker = broker;
        Storage = new StorageHealth(broker.Options.DataDir);
        _loggers = loggers;
        _logger = loggers.CreateLogger<ClusterNode>();
        View = new ClusterView(settings.Store, loggers.CreateLogger<ClusterView>());
        _ownCertificate = new Lazy<X509Certificate2>(() => X509Certificate2.CreateFromPemFile(broker.Options.Tls.Cert, broker.Options.Tls.Key));
    }

    public ClusterSettings Settings { get; }

    public Membership Membership { get; private set; } = null!;

    public ClusterView View { get; }

    public Controller Controller { get; private set; } = null!;

    public string BrokerId => Membership.BrokerId;

    public long Lease => Membership.Lease;

    public bool IsLive => Membership.IsLive;

    private ClusteringOptions Clustering => _broker.Options.Clustering;

    /// <summary>Whether this broker's disk is full (its leaderships move, and its followers stay out of the ISR).</summary>
    public StorageHealth Storage { get; }

    /// <summary>`clustering.replica.fetch.timeout`.</summary>
    public TimeSpan FetchTimeout => Clustering.ReplicaFetchTimeout;

    /// <summary>How long a leader holds a fetch with nothing new: short, so followers see the high watermark move and a dead leader soon.</summary>
    public TimeSpan IdleWait => TimeSpan.FromTicks(Math.Min(Clustering.ReplicaMaxIdleWait.Ticks, TimeSpan.FromMilliseconds(500).Ticks));

    /// <summary>`clustering.replication.max.bytes`, per fetch.</summary>
    public int MaxFetchBytes => (int)Math.Min(Clustering.ReplicationMaxBytes, 64L * 1024 * 1024);

    /// <summary>Registers as <paramref name="host"/>:<paramref name="port"/>, reads the metadata, starts converging and campaigning. The gRPC port must already listen.</summary>
    public async Task StartAsync(string host, int port, CancellationToken cancellationToken)
    {
        // The version gate first: a broker behind the others stops here, one ahead waits here (ClusterVersion).
        var release = typeof(ClusterNode).Assembly.GetName().Version?.ToString(3) ?? "unknown";
        await ClusterVersion.EnsureAsync(Settings.Store, _broker.ServerId, ClusterVersion.Current, release, _loggers.CreateLogger("Sluice.Server.Cluster.ClusterVersion"), TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        var self = new BrokerRecord { Id = _broker.ServerId, Host = host, Port = port, StartedAt = Partition.NowNanoseconds() };
        Membership = new Membership(Settings.Store, self, Settings.LeaseTtl, _loggers.CreateLogger<Membership>());
        Controller = new Controller(Settings.Store, View, Membership, MissingInternalStreams, _loggers.CreateLogger<Controller>());
        await Membership.StartAsync(cancellationToken).ConfigureAwait(false);
        await View.StartAsync(cancellationToken).ConfigureAwait(false);
        _broker.Forwarder = this;
        _replicas = new ReplicaManager(this, _broker, _loggers.CreateLogger<ReplicaManager>());
        await _replicas.StartAsync(cancellationToken).ConfigureAwait(false);
        Controller.Start();
    }

    /// <summary>True once consumer groups exist: they keep their positions in cursors, so the controller creates <c>__cursors</c>.</summary>
    public Func<bool> GroupsInUse { get; set; } = () => false;

    private IEnumerable<CreateStreamRequest> MissingInternalStreams(ClusterSnapshot snapshot) =>
        _broker.InternalStreamRequests(snapshot.Brokers.Count, GroupsInUse())
            .Where(r => !snapshot.Streams.ContainsKey(r.Name))
            .Select(r => _broker.NormalizeCreate(r, internalStream: true, snapshot.Brokers.Count));

    // ---------------------------------------------------------------- peers

    /// <summary>A channel to another registered broker, or null when it is not registered.</summary>
    public GrpcChannel? PeerChannel(string brokerId)
    {
        if (!View.Current.Brokers.TryGetValue(brokerId, out var record))
        {
            return null;
        }

        // A mapped address replaces only where this broker dials; TLS still names the advertised host.
        var address = _broker.Options.Clustering.PeerAddresses.TryGetValue(brokerId, out var mapped) ? mapped : $"{record.Host}:{record.Port}";
        return _channels.GetOrAdd(address, a => OpenPeerChannel(a, record.Host));
    }

    /// <summary>
    /// Without TLS, h2c. With TLS, https presenting this broker's own certificate (the peer checks it names this
    /// broker's host) and trusting <c>tls.client.auth.ca</c> when set, else the system store.
    /// </summary>
    private GrpcChannel OpenPeerChannel(string address, string host)
    {
        var tls = _broker.Options.Tls;
        if (!tls.Enabled)
        {
            return new GrpcChannel(new Uri("http://" + address));
        }

        X509Certificate2Collection? authorities = null;
        if (tls.ClientAuthCa.Length > 0)
        {
            authorities = [];
            authorities.ImportFromPemFile(tls.ClientAuthCa);
        }

        return new GrpcChannel(new Uri("https://" + address), GrpcChannelOptions.Default with
        {
            Tls = new GrpcClientTlsOptions
            {
                ClientCertificate = _ownCertificate.Value,
                TrustedCertificateAuthorities = authorities,
                TargetHost = host,
            },
        });
    }

    /// <summary>
    /// Whether <paramref name="address"/> is where a registered broker runs (its advertised host, resolved in the
    /// background when it is a name): the connection limits keep room for such addresses. Never blocks.
    /// </summary>
    public bool IsBrokerAddress(System.Net.IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        foreach (var record in View.Current.Brokers.Values)
        {
            if (System.Net.IPAddress.TryParse(record.Host, out var ip))
            {
                if (ip.Equals(address))
                {
                    return true;
                }
            }
            else if (_resolved.TryGetValue(record.Host, out var ips))
            {
                if (ips.Contains(address))
                {
                    return true;
                }
            }
            else
            {
                Resolve(record.Host);
            }
        }

        return false;
    }

    private void Resolve(string host)
    {
        if (!_resolved.TryAdd(host, []))
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            try
            {
                var ips = await System.Net.Dns.GetHostAddressesAsync(host).ConfigureAwait(false);
                _resolved[host] = [.. ips.Select(ip => ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip)];
            }
            catch (System.Net.Sockets.SocketException)
            {
                _resolved.TryRemove(host, out _); // tried again on the next connection from anywhere past the limits
            }
        });
    }

    /// <summary>The brokers as FetchMetadata lists them, with the partitions each holds and leads.</summary>
    public IEnumerable<ApiBroker> Brokers()
    {
        var snapshot = View.Current;
        var replicas = new Dictionary<string, int>(StringComparer.Ordinal);
        var leaders = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var stream in snapshot.Streams.Values)
        {
            for (var id = 0; id < stream.Record.Replicas.Count; id++)
            {
                var leadership = snapshot.Leadership(stream, id);
                foreach (var replica in leadership.Replicas)
                {
                    replicas[replica] = replicas.GetValueOrDefault(replica) + 1;
                }

                if (leadership.Leader.Length > 0)
                {
                    leaders[leadership.Leader] = leaders.GetValueOrDefault(leadership.Leader) + 1;
                }
            }
        }

        return snapshot.Brokers.Values.OrderBy(b => b.Id, StringComparer.Ordinal).Select(b => new ApiBroker
        {
            Id = b.Id,
            Host = b.Host,
            Port = b.Port,
            PartitionCount = replicas.GetValueOrDefault(b.Id),
            LeaderCount = leaders.GetValueOrDefault(b.Id),
        });
    }

    // ---------------------------------------------------------------- admin (IStreamAdmin)

    public async Task CreateStreamAsync(CreateStreamRequest request, CancellationToken cancellationToken)
    {
        request = _broker.NormalizeCreate(request, internalStream: false, clusterSize: View.Current.Brokers.Count);
        var revision = await OnControllerAsync(
            c => c.CreateStreamAsync(request, cancellationToken),
            "CreateStream", request, CreateStreamResponse.Parser, cancellationToken).ConfigureAwait(false);
        await WaitAppliedAsync(revision, () => _broker.TryGetStream(request.Name, out _), cancellationToken).ConfigureAwait(false);
        await EmitActivityAsync(revision, new ActivityStreamEvent
        {
            Op = ActivityStreamOp.CreateStream,
            CreateStreamOp = new CreateStreamOp { Stream = request.Name, Partitions = { Enumerable.Range(0, request.Partitions) } },
        }).ConfigureAwait(false);
    }

    public async Task DeleteStreamAsync(string name, CancellationToken cancellationToken)
    {
        if (name is Broker.ActivityStreamName or Broker.CursorsStreamName)
        {
            throw new InvalidRequestException("Stream is reserved");
        }

        var revision = await OnControllerAsync(
            c => c.DeleteStreamAsync(name, cancellationToken),
            "DeleteStream", new DeleteStreamRequest { Name = name }, DeleteStreamResponse.Parser, cancellationToken).ConfigureAwait(false);
        await WaitAppliedAsync(revision, () => !_broker.TryGetStream(name, out _), cancellationToken).ConfigureAwait(false);
        await EmitActivityAsync(revision, new ActivityStreamEvent { Op = ActivityStreamOp.DeleteStream, DeleteStreamOp = new DeleteStreamOp { Stream = name } }).ConfigureAwait(false);
    }

    /// <summary>
    /// After a decision made here (revision above 0; a decision passed to the controller is published there):
    /// the event goes to the activity stream, wherever its leader is, with the decision's revision as its id.
    /// </summary>
    private async Task EmitActivityAsync(long revision, ActivityStreamEvent activity)
    {
        if (revision <= 0 || !_broker.Options.Activity.Enabled || !_broker.TryGetStream(Broker.ActivityStreamName, out var stream))
        {
            return;
        }

        activity.Id = (ulong)revision;
        try
        {
            await _broker.PublishInternalAsync(stream.Partitions[0], null, activity.ToByteArray(), _broker.Stopping).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or BrokerException or OperationCanceledException)
        {
            LogActivityFailed(_logger, ex, activity.Op.ToString());
        }
    }

    public async Task PauseAsync(string name, IReadOnlyList<int> partitions, bool resumeAll, CancellationToken cancellationToken)
    {
        var now = Partition.NowNanoseconds();
        var revision = await OnControllerAsync(
            c => c.ChangePartitionsAsync(name, partitions, s => Pause(s, now), r => SetResumeAll(r, resumeAll), cancellationToken),
            "PauseStream", new PauseStreamRequest { Name = name, Partitions = { partitions }, ResumeAll = resumeAll }, PauseStreamResponse.Parser, cancellationToken).ConfigureAwait(false);
        await WaitAppliedAsync(revision, () => Targets(name, partitions).All(p => p.IsPaused && p.Runtime is null), cancellationToken).ConfigureAwait(false);
        await EmitActivityAsync(revision, new ActivityStreamEvent
        {
            Op = ActivityStreamOp.PauseStream,
            PauseStreamOp = new PauseStreamOp { Stream = name, Partitions = { Ids(name, partitions) }, ResumeAll = resumeAll },
        }).ConfigureAwait(false);
    }

    public Task AutoPauseAsync(Partition partition, CancellationToken cancellationToken) =>
        PauseAsync(partition.Stream.Name, [partition.Id], resumeAll: false, cancellationToken);

    public async Task SetReadonlyAsync(string name, IReadOnlyList<int> partitions, bool value, CancellationToken cancellationToken)
    {
        var now = Partition.NowNanoseconds();
        var revision = await OnControllerAsync(
            c => c.ChangePartitionsAsync(name, partitions, s => SetReadonly(s, value, now), null, cancellationToken),
            "SetStreamReadonly", new SetStreamReadonlyRequest { Name = name, Partitions = { partitions }, Readonly = value }, SetStreamReadonlyResponse.Parser, cancellationToken).ConfigureAwait(false);
        await WaitAppliedAsync(revision, () => Targets(name, partitions).All(p => p.IsReadonly == value), cancellationToken).ConfigureAwait(false);
        await EmitActivityAsync(revision, new ActivityStreamEvent
        {
            Op = ActivityStreamOp.SetStreamReadonly,
            SetStreamReadonlyOp = new SetStreamReadonlyOp { Stream = name, Partitions = { Ids(name, partitions) }, Readonly = value },
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// Resumes a paused partition (and, after a pause with resumeAll, every paused partition of its stream) on
    /// the controller, then waits until this broker has applied it.
    /// </summary>
    public async Task ResumeAsync(Partition partition, CancellationToken cancellationToken)
    {
        var name = partition.Stream.Name;
        var request = new ResumePartitionRequest { Stream = name, Partition = partition.Id };
        long revision;
        var snapshot = View.Current;
        if (Controller.IsController(snapshot))
        {
            revision = await ResumeOnControllerAsync(request, cancellationToken).ConfigureAwait(false);
        }
        else if (snapshot.Controller is { } controller && PeerChannel(controller.BrokerId) is { } channel)
        {
            try
            {
                await channel.UnaryAsync("/" + ReplicationService.ServiceName + "/Resume", request, ResumePartitionResponse.Parser, TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
            }
            catch (GrpcException ex)
            {
                throw FromPeer(ex);
            }

            revision = 0;
        }
        else
        {
            throw new PartitionUnavailableException("the cluster has no controller right now; try again");
        }

        // Applied here: not paused, and open when this broker leads it (a subscriber reads it right after).
        await WaitAppliedAsync(revision, () => !partition.IsPaused && (partition.Leadership?.Leader != BrokerId || partition.Runtime is not null), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The controller's side of a resume (<see cref="ResumeAsync"/>, or the internal Resume call).</summary>
    public async Task<long> ResumeOnControllerAsync(ResumePartitionRequest request, CancellationToken cancellationToken)
    {
        var snapshot = View.Current;
        var resumeAll = snapshot.Streams.TryGetValue(request.Stream, out var entry) && entry.Record.ResumeAll;
        var revision = await Controller.ChangePartitionsAsync(
            request.Stream,
            resumeAll ? [] : [request.Partition],
            s => Resume(s),
            r => SetResumeAll(r, false),
            cancellationToken).ConfigureAwait(false);
        if (revision > 0)
        {
            await EmitActivityAsync(revision, new ActivityStreamEvent
            {
                Op = ActivityStreamOp.ResumeStream,
                ResumeStreamOp = new ResumeStreamOp { Stream = request.Stream, Partitions = { resumeAll ? Ids(request.Stream, []) : [request.Partition] } },
            }).ConfigureAwait(false);
        }

        return revision;
    }

    private static bool Pause(PartitionStateRecord state, long now)
    {
        state.Paused = true;
        state.PauseFirst = state.PauseFirst == 0 ? now : state.PauseFirst;
        state.PauseLatest = now;
        return true;
    }

    private static bool Resume(PartitionStateRecord state)
    {
        if (!state.Paused)
        {
            return false;
        }

        state.Paused = false;
        return true;
    }

    /// <summary>The readonly timestamps record every change, to false too, as Liftbridge's do.</summary>
    private static bool SetReadonly(PartitionStateRecord state, bool value, long now)
    {
        state.Readonly = value;
        state.ReadonlyFirst = state.ReadonlyFirst == 0 ? now : state.ReadonlyFirst;
        state.ReadonlyLatest = now;
        return true;
    }

    private static bool SetResumeAll(StreamRecord record, bool value)
    {
        var changed = record.ResumeAll != value;
        record.ResumeAll = value;
        return changed;
    }

    private List<Partition> Targets(string name, IReadOnlyList<int> ids) =>
        !_broker.TryGetStream(name, out var stream) ? []
        : ids.Count == 0 ? [.. stream.Partitions]
        : [.. ids.Distinct().Where(id => id >= 0 && id < stream.Partitions.Length).Select(id => stream.Partitions[id])];

    private IEnumerable<int> Ids(string name, IReadOnlyList<int> ids) => Targets(name, ids).Select(p => p.Id);

    /// <summary>
    /// Runs a decision on the controller: here when this broker is it (returns the revision), else by calling
    /// the same API method on the controller's broker (returns 0: the revision is not known here).
    /// </summary>
    private async Task<long> OnControllerAsync<TRequest, TResponse>(Func<Controller, Task<long>> local, string method, TRequest request, MessageParser<TResponse> parser, CancellationToken cancellationToken)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
    {
        while (true)
        {
            var snapshot = View.Current;
            if (Controller.IsController(snapshot))
            {
                return await local(Controller).ConfigureAwait(false);
            }

            if (snapshot.Controller is { } controller && controller.BrokerId != BrokerId && PeerChannel(controller.BrokerId) is { } channel)
            {
                try
                {
                    await channel.UnaryAsync(ApiPrefix + method, request, parser, TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
                    return 0;
                }
                catch (GrpcException ex) when (ex.StatusCode == GrpcStatusCode.Unavailable)
                {
                    // The controller is going or gone: wait for the next one.
                }
                catch (GrpcException ex)
                {
                    throw FromPeer(ex);
                }
            }

            await View.WaitForChangeAsync(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Waits (bounded by the call) until this broker has applied a decision, so the next call here sees it.</summary>
    private async Task WaitAppliedAsync(long revision, Func<bool> applied, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            if (revision > 0)
            {
                await View.WaitForRevisionAsync(revision, timeout.Token).ConfigureAwait(false);
            }

            while (!applied())
            {
                await _replicas!.Applied.WaitAsync(timeout.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // Best effort, as Liftbridge's wait for partition leaders after a create.
        }
    }

    /// <summary>A leader's ISR change, to the controller (here or remote); true when the controller wrote it.</summary>
    public async Task<bool> AlterIsrAsync(AlterIsrRequest request)
    {
        var snapshot = View.Current;
        if (Controller.IsController(snapshot))
        {
            return (await Controller.AlterIsrAsync(request, CancellationToken.None).ConfigureAwait(false)).Applied;
        }

        if (snapshot.Controller is { } controller && PeerChannel(controller.BrokerId) is { } channel)
        {
            return (await channel.UnaryAsync("/" + ReplicationService.ServiceName + "/AlterIsr", request, AlterIsrResponse.Parser, TimeSpan.FromSeconds(5)).ConfigureAwait(false)).Applied;
        }

        return false;
    }

    // ---------------------------------------------------------------- forwarding (IPublishForwarder)

    /// <summary>
    /// A publish to a partition this broker does not lead: sent to the leader as a Publish call, held while the
    /// partition has no leader, until the caller's deadline. False when this broker leads it after all (the
    /// caller appends it here).
    /// </summary>
    public async ValueTask<bool> ForwardAsync(Partition partition, PublishItem item, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (partition.Runtime is not null)
            {
                return false;
            }

            if (partition.IsPaused)
            {
                await ResumeAsync(partition, cancellationToken).ConfigureAwait(false); // a publish resumes a paused partition, as in Liftbridge
                continue;
            }

            var leadership = partition.Leadership;
            if (leadership is { Leader.Length: > 0 } && leadership.Leader != BrokerId && PeerChannel(leadership.Leader) is { } channel)
            {
                try
                {
                    if (item.Trace is { } trace)
                    {
                        // The call's metadata carries the current activity: the leader's publish span becomes a child
                        // of this broker's. Only this async method's flow sees the change.
                        System.Diagnostics.Activity.Current = trace;
                    }

                    var response = await channel.UnaryAsync(ApiPrefix + "Publish", ToRequest(partition, item), PublishResponse.Parser, FetchTimeout * 3, cancellationToken).ConfigureAwait(false);
                    if (response.Ack is { } ack && item.Receiver is { } receiver)
                    {
                        // The leader's ack, re-made here from the same fields so every receiver (a PublishAsync
                        // stream, a waiting Publish, a NATS ack inbox) answers as if this broker had stored it.
                        if (ack.AckError == Ack.Types.Error.Ok)
                        {
                            receiver.OnCommitted(item, new CommitInfo(partition, ack.Offset, ack.ReceptionTimestamp, ack.CommitTimestamp));
                        }
                        else
                        {
                            receiver.OnAck(item, ack);
                        }

                        receiver.FlushAcks();
                    }

                    return true;
                }
                catch (GrpcException ex) when (LeaderGone(ex) || (ex.StatusCode == GrpcStatusCode.Cancelled && !cancellationToken.IsCancellationRequested))
                {
                    // (Cancelled, not by us: a stopping leader aborts the calls it is serving.)
                    // The leader is going or gone: wait for the next one, within the caller's deadline. Unless the
                    // message may be stored already and only a message id would let the next leader drop a repeat:
                    // then the publisher decides, as with Liftbridge (which never resends for it).
                    if (MayBeStored(ex) && !Array.Exists(item.Headers, h => h.Name == DuplicateWindow.HeaderName))
                    {
                        throw new PartitionUnavailableException(Sluice.Protocol.Wire.PublishErrors.LeaderChanged);
                    }
                }
                catch (GrpcException ex)
                {
                    throw FromPeer(ex);
                }
            }

            await View.WaitForChangeAsync(TimeSpan.FromMilliseconds(250), cancellationToken).ConfigureAwait(false);
        }
    }

    // A leader that does not answer in time (a paused process keeps its connections open) is treated as gone: the
    // forward waits for the next leader, and resends only with a message id (the request did go out).
    internal static bool LeaderGone(GrpcException ex) =>
        ex.StatusCode is GrpcStatusCode.Unavailable or GrpcStatusCode.DeadlineExceeded
        || (ex.StatusCode == GrpcStatusCode.FailedPrecondition && ex.Message.Contains("leader", StringComparison.Ordinal))
        || (ex.StatusCode == GrpcStatusCode.Internal && ex.Message.Contains(Sluice.Protocol.Wire.PublishErrors.ShuttingDown, StringComparison.Ordinal));

    /// <summary>
    /// Whether a forwarded publish that failed with <paramref name="ex"/> may have been appended by the leader: yes
    /// when the leader said so, or when the connection broke after the request went out; no for a refusal made
    /// before any append (not the leader, fenced, shutting down) or a connection that was never made.
    /// </summary>
    internal static bool MayBeStored(GrpcException ex)
    {
        if (ex.StatusCode is GrpcStatusCode.DeadlineExceeded or GrpcStatusCode.Cancelled || ex.Message.Contains(Sluice.Protocol.Wire.PublishErrors.LeaderChanged, StringComparison.Ordinal))
        {
            return true; // said so, or sent and never answered (or aborted by a stopping leader)
        }

        if (ex.StatusCode != GrpcStatusCode.Unavailable
            || ex.Message.Contains(Sluice.Protocol.Wire.PublishErrors.LeaderFenced, StringComparison.Ordinal)
            || ex.Message.Contains(Sluice.Protocol.Wire.PublishErrors.ShuttingDown, StringComparison.Ordinal)
            || ex.Message.Contains(Sluice.Protocol.Wire.PublishErrors.LeaderStorageFull, StringComparison.Ordinal))
        {
            return false;
        }

        for (Exception? inner = ex.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (inner is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused or System.Net.Sockets.SocketError.HostUnreachable or System.Net.Sockets.SocketError.NetworkUnreachable })
            {
                return false; // never connected: nothing was sent
            }

            if (inner is HttpProtocolException { ErrorCode: 0x7 })
            {
                return false; // REFUSED_STREAM: the server did not process it
            }
        }

        return true;
    }

    private static PublishRequest ToRequest(Partition partition, PublishItem item)
    {
        var request = new PublishRequest
        {
            Stream = partition.Stream.Name,
            Partition = partition.Id,
            AckInbox = item.AckInbox,
            CorrelationId = item.CorrelationId,
            AckPolicy = item.AckPolicy,
            ExpectedOffset = item.ExpectedOffset,
        };
        if (item.Key is { } key)
        {
            request.Key = ByteString.CopyFrom(key.Span);
        }

        if (item.Value is { } value)
        {
            request.Value = ByteString.CopyFrom(value.Span);
        }

        foreach (var header in item.Headers)
        {
            if (header.Name is not PublishItem.SubjectHeader and not PublishItem.ReplyHeader)
            {
                request.Headers[header.Name] = ByteString.CopyFrom(header.Value.Span); // the leader sets subject and reply again
            }
        }

        if (!string.Equals(item.Subject, partition.Subject, StringComparison.Ordinal))
        {
            request.Headers[PublishItem.ForwardedSubjectHeader] = ByteString.CopyFromUtf8(item.Subject); // a PublishToSubject's own subject
        }

        return request;
    }

    /// <summary>A peer's status, as the broker's own exception so the API maps it back to the same status.</summary>
    private static BrokerException FromPeer(GrpcException ex) => ex.StatusCode switch
    {
        GrpcStatusCode.NotFound => new NotFoundException(ex.Message),
        GrpcStatusCode.AlreadyExists => new StreamExistsException(),
        GrpcStatusCode.InvalidArgument => new InvalidRequestException(ex.Message),
        GrpcStatusCode.FailedPrecondition => new PreconditionFailedException(ex.Message),
        GrpcStatusCode.Unavailable => new PartitionUnavailableException(ex.Message),
        _ => new BrokerInternalException(ex.Message, ex),
    };

    public async ValueTask DisposeAsync()
    {
        if (_replicas is not null && Membership is { IsLive: true })
        {
            await DrainAsync().ConfigureAwait(false);
        }

        _broker.Forwarder = null;
        if (Controller is not null)
        {
            await Controller.DisposeAsync().ConfigureAwait(false);
        }

        if (_replicas is not null)
        {
            await _replicas.DisposeAsync().ConfigureAwait(false);
        }

        if (Membership is not null)
        {
            await Membership.DisposeAsync().ConfigureAwait(false);
        }

        await View.DisposeAsync().ConfigureAwait(false);
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }
    }

    /// <summary>
    /// Before a graceful stop gives up this broker's leaderships (by revoking its lease): each partition it leads
    /// refuses new messages and waits, at most one lease TTL, until its followers have everything it appended. The
    /// messages waiting for ALL are then acked here instead of failing with "may or may not be stored", and no
    /// LEADER-acked tail is left for the next leader to cut.
    /// </summary>
    private async Task DrainAsync()
    {
        var led = _broker.Streams.SelectMany(s => s.Partitions).Select(p => p.Runtime?.Replication).OfType<LeaderReplication>().ToList();
        if (led.Count == 0)
        {
            return;
        }

        foreach (var replication in led)
        {
            replication.Drain();
        }

        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        while (led.Exists(r => !r.Committed) && System.Diagnostics.Stopwatch.GetElapsedTime(started) < Settings.LeaseTtl)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(10)).ConfigureAwait(false);
        }

        var uncommitted = led.Count(r => !r.Committed);
        LogDrained(_logger, led.Count, uncommitted, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopping: {Partitions} partition(s) led here drained ({Uncommitted} not fully replicated) in {Ms:F0} ms; leaving the cluster")]
    private static partial void LogDrained(ILogger logger, int partitions, int uncommitted, double ms);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not publish the {Op} activity event")]
    private static partial void LogActivityFailed(ILogger logger, Exception exception, string op);
}
