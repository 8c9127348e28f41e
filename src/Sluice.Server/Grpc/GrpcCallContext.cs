using System.Security.Cryptography.X509Certificates;
using Sluice.Server.Http2;

namespace Sluice.Server.Grpc;

/// <summary>What a handler knows about the call it serves.</summary>
public sealed class GrpcCallContext
{
    private readonly IHttp2Exchange _exchange;

    internal GrpcCallContext(IHttp2Exchange exchange, string method, DateTime? deadline, CancellationToken cancellationToken)
    {
        _exchange = exchange;
        Method = method;
        Deadline = deadline;
        CancellationToken = cancellationToken;
    }

    /// <summary>The full method path, e.g. "/proto.API/Subscribe".</summary>
    public string Method { get; }

    /// <summary>The client's deadline (UTC), if it sent grpc-timeout.</summary>
    public DateTime? Deadline { get; }

    /// <summary>Cancelled when the client cancels or disconnects, the deadline passes, or the server stops.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>A request header's value (several joined by ", "), or null.</summary>
    public string? RequestHeader(string name) => _exchange.RequestHeader(name);

    /// <summary>The verified client certificate under mutual TLS (the authorization identity).</summary>
    public X509Certificate2? ClientCertificate => _exchange.ClientCertificate;

    /// <summary>"ip:port" of the client.</summary>
    public string Peer => _exchange.Peer;

    /// <summary>The caller proved to be a registered broker: see <see cref="IHttp2Exchange.MarkPeerBroker"/>.</summary>
    internal void MarkPeerBroker() => _exchange.MarkPeerBroker();
}
