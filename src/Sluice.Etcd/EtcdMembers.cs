using System.Net.Security;
using Etcdserverpb;
using Grpc.Net.Client;
using Grpc.Net.Client.Configuration;
using Microsoft.Extensions.Logging;

namespace Sluice.Etcd;

/// <summary>
/// One gRPC channel per configured etcd endpoint, and the one calls go to now. A call that finds its member down or
/// past its deadline moves later calls on to the next member; etcd forwards writes to its leader itself.
/// </summary>
/// <remarks>
/// The channels run without gRPC's client-side load balancing. Its subchannel, after a connect timeout during a long
/// outage, could request a new connection while the timed-out attempt was still ending and then stay "connecting" for
/// good, so every later call waited for its deadline (Grpc.Net.Client 2.85, seen here with etcd restarted after 5 s
/// down). Without it, every call that finds no live connection opens one, each attempt bounded by the dial timeout.
/// </remarks>
internal sealed class EtcdMembers : IDisposable
{
    private readonly Member[] _members;
    private readonly ILogger _logger;
    private int _current;

    public EtcdMembers(EtcdMetadataStoreOptions options, Action<SslClientAuthenticationOptions>? configureTls, ILogger logger)
    {
        _logger = logger;
        _members = [.. options.Endpoints.Select(endpoint => new Member(new Uri(endpoint), Open(endpoint, options, configureTls)))];
    }

    /// <summary>The member calls go to now.</summary>
    public Member Current => _members[Volatile.Read(ref _current)];

    /// <summary>A call to <paramref name="member"/> found it unreachable: later calls go to the next one.</summary>
    public void Failed(Member member)
    {
        if (_members.Length == 1)
        {
            return;
        }

        var index = Array.IndexOf(_members, member);
        var next = (index + 1) % _members.Length;
        if (index >= 0 && Interlocked.CompareExchange(ref _current, next, index) == index)
        {
            _logger.LogWarning("etcd member {Failed} is unreachable; using {Next}", member.Endpoint, _members[next].Endpoint);
        }
    }

    public void Dispose()
    {
        foreach (var member in _members)
        {
            member.Channel.Dispose();
        }
    }

    private static GrpcChannel Open(string endpoint, EtcdMetadataStoreOptions options, Action<SslClientAuthenticationOptions>? configureTls)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = options.DialTimeout,

            // A half-open connection (a partition, a frozen member) is found by HTTP/2 pings within ~15 s; a watch's
            // liveness check only restarts its call, which would reuse the dead connection. Not below 10 s: etcd
            // answers pings more often than every 5 s with GOAWAY (its --grpc-keepalive-min-time).
            KeepAlivePingDelay = TimeSpan.FromSeconds(10),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(5),
            EnableMultipleHttp2Connections = true,
        };
        handler.Properties["__GrpcLoadBalancingDisabled"] = true;
        configureTls?.Invoke(handler.SslOptions);
        return GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            LoggerFactory = new WarningsOnlyLoggerFactory(options.LoggerFactory),

            // A call past its deadline is an RpcException (DeadlineExceeded), which maps to MetadataUnavailableException;
            // only the caller's own token ends a call with OperationCanceledException.
            ThrowOperationCanceledOnCancellation = false,
            ServiceConfig = new ServiceConfig { MethodConfigs = { UnaryRetry, NoRetry } },
        });
    }

    /// <summary>
    /// Unary calls are tried again on UNAVAILABLE (a member restarting, a connection reset) within their deadline.
    /// </summary>
    private static readonly MethodConfig UnaryRetry = new()
    {
        Names = { MethodName.Default },
        RetryPolicy = new RetryPolicy
        {
            MaxAttempts = 3,
            InitialBackoff = TimeSpan.FromMilliseconds(100),
            MaxBackoff = TimeSpan.FromSeconds(1),
            BackoffMultiplier = 2,
            RetryableStatusCodes = { Grpc.Core.StatusCode.Unavailable },
        },
    };

    /// <summary>Streams are retried by their owners (the watch loop, the lease keepalive loop), not by the channel.</summary>
    private static readonly MethodConfig NoRetry = new()
    {
        Names =
        {
            new MethodName { Service = "etcdserverpb.Watch" },
            new MethodName { Service = "etcdserverpb.Lease", Method = "LeaseKeepAlive" },
            new MethodName { Service = "etcdserverpb.Maintenance", Method = "Snapshot" },
        },
    };

    /// <summary>One etcd member's channel and its generated clients.</summary>
    internal sealed class Member(Uri endpoint, GrpcChannel channel)
    {
        public Uri Endpoint { get; } = endpoint;

        public GrpcChannel Channel { get; } = channel;

        public KV.KVClient Kv { get; } = new(channel);

        public Lease.LeaseClient Lease { get; } = new(channel);

        public Watch.WatchClient Watch { get; } = new(channel);

        public Maintenance.MaintenanceClient Maintenance { get; } = new(channel);
    }
}
