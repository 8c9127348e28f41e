using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace Sluice.Client.Grpc;

/// <summary>
/// How the client's gRPC connections behave. Immutable; customise with <c>with { ... }</c>
/// starting from <see cref="Default"/>.
/// </summary>
public sealed record GrpcChannelOptions
{
    /// <summary>The defaults described on each property.</summary>
    public static GrpcChannelOptions Default { get; } = new();

    /// <summary>
    /// Independent HTTP/2 connections to the server, used round-robin. One connection carries many
    /// calls; more spread heavy streams over more sockets. Default 1.
    /// </summary>
    public int ConnectionCount { get; init; } = 1;

    /// <summary>
    /// Open another connection when a connection reaches the server's concurrent-stream limit
    /// instead of queueing calls. Default true.
    /// </summary>
    public bool EnableMultipleHttp2Connections { get; init; } = true;

    /// <summary>Idle time after which an HTTP/2 PING checks the connection. Default 60 s.</summary>
    public TimeSpan KeepAlivePingDelay { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long to wait for the PING's answer before dropping the connection. Default 20 s.</summary>
    public TimeSpan KeepAlivePingTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>TCP (and TLS) connect timeout. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest response message accepted (after decompression). Default 4 MiB, gRPC's customary limit.</summary>
    public int MaxReceiveMessageSize { get; init; } = 4 * 1024 * 1024;

    /// <summary>Largest request message sent. Default: int.MaxValue.</summary>
    public int MaxSendMessageSize { get; init; } = int.MaxValue;

    /// <summary>gzip every request message (<c>grpc-encoding: gzip</c>). Default false.</summary>
    public bool CompressRequests { get; init; }

    /// <summary>Which HTTP/2 implementation carries the calls. Default <see cref="GrpcTransport.Native"/>.</summary>
    public GrpcTransport Transport { get; init; } = GrpcTransport.Native;

    /// <summary>TLS settings for https:// addresses; ignored for http:// (h2c). Default null (system trust, no client certificate).</summary>
    public GrpcClientTlsOptions? Tls { get; init; }
}

/// <summary>The HTTP/2 implementation under the client's gRPC calls.</summary>
public enum GrpcTransport
{
    /// <summary>
    /// The client's own HTTP/2 connection: a caller's message goes to the socket on the caller's thread and
    /// one reader thread per connection hands responses on, about one thread hop per message instead of
    /// several. h2c and TLS (ALPN h2), flow control, HPACK, keepalive PINGs and GOAWAY are supported.
    /// </summary>
    Native = 0,

    /// <summary>.NET's HttpClient with SocketsHttpHandler.</summary>
    HttpClient = 1,
}

/// <summary>TLS settings of the client (for https:// addresses).</summary>
public sealed record GrpcClientTlsOptions
{
    /// <summary>A client certificate with its private key, for servers that require mutual TLS.</summary>
    public X509Certificate2? ClientCertificate { get; init; }

    /// <summary>CA certificates the server certificate must chain to, instead of the system store.</summary>
    public X509Certificate2Collection? TrustedCertificateAuthorities { get; init; }

    /// <summary>Full control over server-certificate validation; takes precedence over <see cref="TrustedCertificateAuthorities"/>.</summary>
    public RemoteCertificateValidationCallback? ServerCertificateValidation { get; init; }

    /// <summary>Name expected in the server certificate when it differs from the address's host.</summary>
    public string? TargetHost { get; init; }
}
