using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Sluice.Protocol.Grpc;
using Sluice.Server.Http2;

namespace Sluice.Server.Grpc;

/// <summary>Where and how the gRPC endpoint listens. Customise with <c>with { ... }</c>.</summary>
public sealed record GrpcServerOptions
{
    public static GrpcServerOptions Default { get; } = new();

    /// <summary>An IP address, "localhost", or a host name to resolve. Default 127.0.0.1.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (read it back from <see cref="GrpcServer.Port"/>). Default 9292 (Liftbridge's).</summary>
    public int Port { get; init; } = 9292;

    /// <summary>Largest request message accepted (after decompression). Default 4 MiB, gRPC's customary limit.</summary>
    public int MaxReceiveMessageSize { get; init; } = GrpcFrame.DefaultMaxMessageSize;

    /// <summary>Largest response message sent. Default: no limit beyond int.MaxValue.</summary>
    public int MaxSendMessageSize { get; init; } = int.MaxValue;

    /// <summary>
    /// Client connections served at once; one more is answered with GOAWAY (ENHANCE_YOUR_CALM, with the
    /// reason as debug data) and closed. Each native connection has a reader thread, so this bounds the
    /// threads and buffers a flood of connections can take. Default 10,000.
    /// </summary>
    public int MaxConnections { get; init; } = 10_000;

    /// <summary>What set <see cref="MaxConnections"/>, named in the refusal's GOAWAY. Default "grpc.max.connections".</summary>
    public string MaxConnectionsSource { get; init; } = "grpc.max.connections";

    /// <summary>
    /// Client connections served at once from one IP address; one more is refused like one over
    /// <see cref="MaxConnections"/>, so a few clients holding idle connections cannot lock out the rest.
    /// Default: no limit beyond <see cref="MaxConnections"/> (the server's `grpc.max.connections.per.address` sets one).
    /// </summary>
    public int MaxConnectionsPerAddress { get; init; } = int.MaxValue;

    /// <summary>
    /// Whether an address is a registered cluster broker's (null on a single node). A connection from one is
    /// accepted past <see cref="MaxConnections"/> and <see cref="MaxConnectionsPerAddress"/>, up to
    /// <see cref="ReservedPeerConnections"/>, and must then carry an authenticated internal call within
    /// <see cref="PeerIdentifyTimeout"/>. Native transport only.
    /// </summary>
    public Func<System.Net.IPAddress, bool>? IsPeerBrokerAddress { get; init; }

    /// <summary>Connections kept for other brokers beyond the client limits. Default 64.</summary>
    public int ReservedPeerConnections { get; init; } = 64;

    /// <summary>How long a connection admitted from the broker reserve has to show a broker's identity. Default 10 s.</summary>
    public TimeSpan PeerIdentifyTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Response bytes all native connections together may hold unsent because their clients read slower than
    /// the server writes (subscriptions, mostly). Past it, the connection holding the most is cut: its
    /// streams are reset with ENHANCE_YOUR_CALM (gRPC: RESOURCE_EXHAUSTED) and a GOAWAY says why. Default 256 MiB.
    /// </summary>
    public long MaxBufferedOutputBytes { get; init; } = 256L << 20;

    /// <summary>Concurrent HTTP/2 streams per connection. Kestrel's default of 100 is too low for a broker with many subscriptions per client.</summary>
    public int MaxStreamsPerConnection { get; init; } = 1000;

    /// <summary>
    /// A connection with no open stream for this long is closed with GOAWAY (NO_ERROR); clients open a
    /// new one when they need it. Default 130 s, Kestrel's keep-alive timeout. Native transport only.
    /// </summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(130);

    /// <summary>How long <see cref="GrpcServer.StopAsync"/> lets calls finish after cancelling them. Default 5 s.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Run Kestrel's socket and HTTP/2 continuations on the I/O thread instead of queueing each to
    /// the thread pool (Kestrel's UnsafePreferInlineScheduling). Safe here because no handler
    /// blocks: appends without fsync are short, and everything that waits awaits. Measured on 2
    /// cores: +4-13 % publish throughput, fewer context switches. Turn off if a handler ever blocks.
    /// With <see cref="GrpcServerTransport.Native"/>, a handler waiting for request messages resumes on
    /// the connection's reader thread when this is on, and on the thread pool when it is off.
    /// </summary>
    public bool InlineIo { get; init; } = true;

    /// <summary>
    /// How long a native connection's reader thread waits for a quiet client's next bytes before it gives the thread back.
    /// A busy connection keeps its thread, which the kernel wakes straight from poll(2) (the shortest round trip); a quiet
    /// one holds no thread and no read buffer, and gets a new thread when the client sends. Zero: a connection never holds
    /// a thread, and each read that must wait resumes on the thread pool. Default 50 ms. Native transport only.
    /// </summary>
    public TimeSpan ReaderLinger { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Native connections read on a thread of their own at once; a connection that would need one past this is read on
    /// the thread pool instead. Set below the process's thread limit (see ServerLimits). Native transport only.
    /// </summary>
    public int MaxReaderThreads { get; init; } = int.MaxValue;

    /// <summary>Whose HTTP/2 serves the calls. Default <see cref="GrpcServerTransport.Native"/>.</summary>
    public GrpcServerTransport Transport { get; init; } = GrpcServerTransport.Native;

    /// <summary>TLS; null (the default) serves h2c (HTTP/2 without TLS, prior knowledge).</summary>
    public GrpcServerTlsOptions? Tls { get; init; }

    /// <summary>The native transport's settings (<see cref="GrpcServerTransport.Native"/>); reads the TLS files.</summary>
    internal Http2ListenerOptions ToHttp2ListenerOptions() => new()
    {
        Host = Host,
        Port = Port,
        MaxStreamsPerConnection = MaxStreamsPerConnection,
        MaxConnections = MaxConnections,
        MaxConnectionsSource = MaxConnectionsSource,
        MaxConnectionsPerAddress = MaxConnectionsPerAddress,
        IsPeerBrokerAddress = IsPeerBrokerAddress,
        ReservedPeerConnections = ReservedPeerConnections,
        PeerIdentifyTimeout = PeerIdentifyTimeout,
        InlineIo = InlineIo,
        ReaderLinger = ReaderLinger,
        MaxReaderThreads = MaxReaderThreads,
        IdleTimeout = IdleTimeout,
        MaxBufferedOutputBytes = MaxBufferedOutputBytes,
        Tls = Tls?.CreateSslServerOptions(),
    };
}

/// <summary>The HTTP/2 implementation under the gRPC server.</summary>
public enum GrpcServerTransport
{
    /// <summary>ASP.NET Core's Kestrel.</summary>
    Kestrel,

    /// <summary>
    /// The server's own HTTP/2 connection (<c>Sluice.Server.Http2</c>): a reader thread per busy
    /// connection (none for a quiet one, see <see cref="GrpcServerOptions.ReaderLinger"/>), and responses
    /// written on the thread that produces them, without the thread-pool hops Kestrel makes between the
    /// socket, the HTTP/2 layer and the handler.
    /// </summary>
    Native,
}

/// <summary>TLS for the gRPC endpoint, from PEM files.</summary>
public sealed record GrpcServerTlsOptions
{
    /// <summary>PEM file with the server certificate (and optionally its chain).</summary>
    public required string CertificatePemPath { get; init; }

    /// <summary>PEM file with the server certificate's private key.</summary>
    public required string KeyPemPath { get; init; }

    /// <summary>Ask clients for a certificate and fail the handshake without one (mutual TLS).</summary>
    public bool RequireClientCertificate { get; init; }

    /// <summary>
    /// Ask clients for a certificate but accept them without one: a cluster's brokers prove who they are with
    /// theirs, clients need none. A certificate sent is checked as under <see cref="RequireClientCertificate"/>.
    /// </summary>
    public bool RequestClientCertificate { get; init; }

    /// <summary>
    /// PEM file with the CA certificate(s) that client certificates must chain to. Null uses the
    /// system trust store.
    /// </summary>
    public string? ClientCaPemPath { get; init; }

    /// <summary>The native transport's TLS: the certificate chain from the PEM files, ALPN h2, client certificates as set here.</summary>
    internal SslServerAuthenticationOptions CreateSslServerOptions()
    {
        var tls = this;
        var certificate = X509Certificate2.CreateFromPemFile(tls.CertificatePemPath, tls.KeyPemPath);
        var chain = new X509Certificate2Collection();
        chain.ImportFromPemFile(tls.CertificatePemPath);
        var intermediates = new X509Certificate2Collection();
        foreach (var cert in chain.Skip(1))
        {
            intermediates.Add(cert);
        }

        var validate = tls.CreateClientCaValidator();

        return new SslServerAuthenticationOptions
        {
            ServerCertificateContext = SslStreamCertificateContext.Create(certificate, intermediates, offline: true),
            ApplicationProtocols = [SslApplicationProtocol.Http2],
            ClientCertificateRequired = tls.RequireClientCertificate || tls.RequestClientCertificate, // "required" only makes SslStream ask; the callback decides
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                if (certificate is null)
                {
                    return !tls.RequireClientCertificate;
                }

                return validate is null
                    ? errors == SslPolicyErrors.None
                    : validate(certificate as X509Certificate2 ?? new X509Certificate2(certificate));
            },
        };
    }

    /// <summary>
    /// Checks a client certificate against <see cref="ClientCaPemPath"/>'s CAs (no revocation check);
    /// null when no CA file is set (the system trust store decides). Shared by both transports.
    /// </summary>
    internal Func<X509Certificate2, bool>? CreateClientCaValidator()
    {
        if (ClientCaPemPath is not { } caPath)
        {
            return null;
        }

        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(caPath);
        return certificate =>
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(roots);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return chain.Build(certificate);
        };
    }
}
