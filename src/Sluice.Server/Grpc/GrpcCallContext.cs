using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Http;

namespace Sluice.Server.Grpc;

/// <summary>What a handler knows about the call it serves.</summary>
public sealed class GrpcCallContext
{
    private readonly HttpContext _http;

    internal GrpcCallContext(HttpContext http, string method, DateTime? deadline, CancellationToken cancellationToken)
    {
        _http = http;
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

    public IHeaderDictionary RequestHeaders => _http.Request.Headers;

    /// <summary>The verified client certificate under mutual TLS (the authorization identity).</summary>
    public X509Certificate2? ClientCertificate => _http.Connection.ClientCertificate;

    /// <summary>"ip:port" of the client.</summary>
    public string Peer => $"{_http.Connection.RemoteIpAddress}:{_http.Connection.RemotePort}";
}
