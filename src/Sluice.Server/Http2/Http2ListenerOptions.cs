using System.Net;
using System.Net.Security;

namespace Sluice.Server.Http2;

/// <summary>
/// How an <see cref="Http2Listener"/> listens and what it allows. The gRPC server builds it from its own options
/// (<c>GrpcServerOptions.ToHttp2ListenerOptions</c>), where each setting is documented for users.
/// </summary>
internal sealed record Http2ListenerOptions
{
    /// <summary>An IP address, "localhost", or a host name to resolve.</summary>
    public required string Host { get; init; }

    /// <summary>TCP port; 0 picks a free one.</summary>
    public required int Port { get; init; }

    /// <summary>Our SETTINGS_MAX_CONCURRENT_STREAMS.</summary>
    public required int MaxStreamsPerConnection { get; init; }

    /// <summary>Client connections served at once.</summary>
    public required int MaxConnections { get; init; }

    /// <summary>What set <see cref="MaxConnections"/>, named in the refusal.</summary>
    public required string MaxConnectionsSource { get; init; }

    /// <summary>Client connections served at once from one IP address.</summary>
    public required int MaxConnectionsPerAddress { get; init; }

    /// <summary>Whether an address is a registered broker's, admitted from a reserve past the limits (null: none).</summary>
    public Func<IPAddress, bool>? IsPeerBrokerAddress { get; init; }

    /// <summary>Connections kept for other brokers beyond the client limits.</summary>
    public required int ReservedPeerConnections { get; init; }

    /// <summary>How long a connection admitted from the broker reserve has to show a broker's identity.</summary>
    public required TimeSpan PeerIdentifyTimeout { get; init; }

    /// <summary>Request body reads resume on the reader thread.</summary>
    public required bool InlineIo { get; init; }

    /// <summary>How long a reader thread waits for a quiet client before giving the thread back (0: never holds one).</summary>
    public required TimeSpan ReaderLinger { get; init; }

    /// <summary>Connections read on a thread of their own at once; more are read on the thread pool.</summary>
    public required int MaxReaderThreads { get; init; }

    /// <summary>A connection with no open stream for this long is closed with GOAWAY.</summary>
    public required TimeSpan IdleTimeout { get; init; }

    /// <summary>Unsent output of all connections together before the one holding the most is cut.</summary>
    public required long MaxBufferedOutputBytes { get; init; }

    /// <summary>TLS for every connection, or null for h2c.</summary>
    public SslServerAuthenticationOptions? Tls { get; init; }
}
