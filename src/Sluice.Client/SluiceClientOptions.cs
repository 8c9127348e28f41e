using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Client.Grpc;

namespace Sluice.Client;

/// <summary>
/// How a <see cref="SluiceClient"/> connects and behaves. Immutable: start from
/// <see cref="Default"/> and customise with <c>with { ... }</c>.
/// </summary>
public sealed record SluiceClientOptions
{
    /// <summary>The defaults described on each property.</summary>
    public static SluiceClientOptions Default { get; } = new();

    /// <summary>
    /// HTTP/2 connections opened to each broker; calls are spread over them round-robin. More than
    /// one spreads busy subscriptions and the publish stream over several sockets. Default 2
    /// (go-liftbridge's documented default).
    /// </summary>
    public int MaxConnectionsPerBroker { get; init; } = 2;

    /// <summary>Idle time after which an HTTP/2 PING checks that a broker connection is alive. Default 30 s.</summary>
    public TimeSpan KeepAliveTime { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>TCP (and TLS) connect timeout per attempt. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The largest gRPC message the client accepts. Default 64 MiB. The cluster metadata the client caches (every
    /// stream, as go-liftbridge fetches it) takes about 110 bytes per partition, so gRPC's usual 4 MiB stops a client
    /// at about 38,000 partitions; messages themselves are bounded by what the server accepts.
    /// </summary>
    public int MaxReceiveMessageSize { get; init; } = 64 * 1024 * 1024;

    /// <summary>
    /// Path of a PEM file with the CA certificate(s) the brokers' certificates must chain to
    /// (go-liftbridge <c>TLSCert</c>). Setting it turns TLS on. Default null.
    /// </summary>
    public string? TlsCertificateFile { get; init; }

    /// <summary>
    /// Full TLS configuration (go-liftbridge <c>TLSConfig</c>): client certificate for mutual TLS,
    /// trusted CAs, a server-certificate validation callback, the expected host name. Setting it
    /// (even to an empty instance, which means "system trust store") turns TLS on. Default null (h2c).
    /// </summary>
    public GrpcClientTlsOptions? Tls { get; init; }

    /// <summary>
    /// Which HTTP/2 implementation carries the calls: <see cref="GrpcTransport.Native"/> (the client's own,
    /// fewer thread hops per message; the default) or <see cref="GrpcTransport.HttpClient"/>
    /// (.NET's SocketsHttpHandler).
    /// </summary>
    public GrpcTransport Transport { get; init; } = GrpcTransport.Native;

    /// <summary>
    /// How long a subscription whose broker went away keeps trying to re-establish itself before
    /// it fails with the last error. Default 30 s.
    /// </summary>
    public TimeSpan ResubscribeWaitTime { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a publish waits for its ack before failing with <see cref="AckTimeoutException"/>;
    /// also the deadline of PublishToSubject. Default 5 s.
    /// </summary>
    public TimeSpan AckWaitTime { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Idempotent publishing: each published message gets a unique id in the header <c>Sluice-Msg-Id</c>
    /// (a header the caller sets wins), and when the broker goes away before a message's ack arrives, the
    /// message is sent again, with the same id, to the partition's leader (after a metadata refresh) until
    /// it is acked or <see cref="AckWaitTime"/> has passed. A Sluice broker acks a repeat within its
    /// <c>streams.duplicate.window</c> with the first copy's offset instead of storing it again.
    /// Liftbridge stores the header like any other and does not deduplicate: against Liftbridge a resend
    /// may store a message twice. Default true.
    /// </summary>
    public bool IdempotentPublishing { get; init; } = true;

    /// <summary>Where the client logs (connections, metadata refreshes, resubscriptions). Default: no logging.</summary>
    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;

    /// <summary>True when the client connects with TLS (https).</summary>
    internal bool UsesTls => Tls is not null || TlsCertificateFile is not null;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConnectionsPerBroker, 1, nameof(MaxConnectionsPerBroker));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(KeepAliveTime, TimeSpan.Zero, nameof(KeepAliveTime));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ConnectTimeout, TimeSpan.Zero, nameof(ConnectTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxReceiveMessageSize, 1024, nameof(MaxReceiveMessageSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(ResubscribeWaitTime, TimeSpan.Zero, nameof(ResubscribeWaitTime));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(AckWaitTime, TimeSpan.Zero, nameof(AckWaitTime));
        ArgumentNullException.ThrowIfNull(LoggerFactory, nameof(LoggerFactory));
    }
}
