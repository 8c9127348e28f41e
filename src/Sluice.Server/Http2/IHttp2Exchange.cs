using System.IO.Pipelines;
using System.Security.Cryptography.X509Certificates;

namespace Sluice.Server.Http2;

/// <summary>
/// One HTTP/2 request and its response, as a request handler sees them: what <see cref="Http2Listener"/> hands the
/// layer above it (the gRPC server, which also adapts Kestrel's requests to it), so this
/// folder depends on nothing above it. Two hosts provide it: Kestrel and the server's own <see cref="Http2ServerStream"/>.
/// </summary>
internal interface IHttp2Exchange
{
    /// <summary>The HTTP method (gRPC uses POST).</summary>
    string Method { get; }

    /// <summary>The request path, e.g. "/proto.API/Publish".</summary>
    string Path { get; }

    /// <summary>The request's content-type, or null.</summary>
    string? ContentType { get; }

    /// <summary>The request body: the length-prefixed gRPC messages.</summary>
    PipeReader RequestBody { get; }

    /// <summary>The response body. Bytes leave on a flush, or when the exchange ends.</summary>
    PipeWriter ResponseBody { get; }

    /// <summary>True once the response headers are on their way: from then on a status goes in the trailers.</summary>
    bool ResponseStarted { get; }

    /// <summary>Cancelled when the client resets the stream or the connection ends.</summary>
    CancellationToken Aborted { get; }

    /// <summary>The verified client certificate under mutual TLS.</summary>
    X509Certificate2? ClientCertificate { get; }

    /// <summary>"ip:port" of the client.</summary>
    string Peer { get; }

    /// <summary>A request header's value (several joined by ", "), or null.</summary>
    string? RequestHeader(string name);

    /// <summary>
    /// The call proved to come from a registered broker: its connection no longer counts against the client
    /// connection limits or the slow-subscriber budget. Kestrel does nothing (its limits apply to brokers too).
    /// </summary>
    void MarkPeerBroker();

    /// <summary>The HTTP status of the response; only before <see cref="ResponseStarted"/>. Default 200.</summary>
    void SetStatusCode(int statusCode);

    /// <summary>Adds or replaces a response header; only before <see cref="ResponseStarted"/>.</summary>
    void SetResponseHeader(string name, string value);

    /// <summary>Adds a trailer, sent after the body.</summary>
    void AppendTrailer(string name, string value);
}
