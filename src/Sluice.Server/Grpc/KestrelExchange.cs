using System.IO.Pipelines;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Http;
using Sluice.Server.Http2;

namespace Sluice.Server.Grpc;

/// <summary>An exchange served by Kestrel: a thin view of its <see cref="HttpContext"/>.</summary>
internal sealed class KestrelExchange(HttpContext http) : IHttp2Exchange
{
    public string Method => http.Request.Method;

    public string Path => http.Request.Path.Value ?? string.Empty;

    public string? ContentType => http.Request.ContentType;

    public PipeReader RequestBody => http.Request.BodyReader;

    public PipeWriter ResponseBody => http.Response.BodyWriter;

    public bool ResponseStarted => http.Response.HasStarted;

    public CancellationToken Aborted => http.RequestAborted;

    public X509Certificate2? ClientCertificate => http.Connection.ClientCertificate;

    public void MarkPeerBroker()
    {
        // Kestrel's connection limits are its own: brokers count against them like clients (docs/cluster.md).
    }

    public string Peer => $"{http.Connection.RemoteIpAddress}:{http.Connection.RemotePort}";

    public string? RequestHeader(string name) => http.Request.Headers.TryGetValue(name, out var values) && values.Count > 0 ? values.ToString() : null;

    public void SetStatusCode(int statusCode) => http.Response.StatusCode = statusCode;

    public void SetResponseHeader(string name, string value) => http.Response.Headers[name] = value;

    public void AppendTrailer(string name, string value) => http.Response.AppendTrailer(name, value);
}
