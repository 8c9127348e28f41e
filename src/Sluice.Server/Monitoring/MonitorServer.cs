using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using Sluice.Server.Configuration;
using Sluice.Server.Grpc;
using Sluice.Server.Hosting;

namespace Sluice.Server.Monitoring;

/// <summary>
/// The monitoring port (`monitor.listen`): Prometheus text on /metrics, /healthz, /readyz and JSON views under /v1/,
/// over HTTP/1.1 and HTTP/2 on one endpoint (cleartext HTTP/2 with prior knowledge, or ALPN with TLS). It starts before
/// the data is opened, so /readyz can say the server is still recovering.
/// </summary>
internal sealed partial class MonitorServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly MeterProvider _meters;
    private readonly ILogger _logger;
    private volatile SluiceServer? _server;
    private volatile string _notReady = "recovering: opening the data directory and the streams";

    private MonitorServer(WebApplication app, MeterProvider meters, ILogger logger)
    {
        _app = app;
        _meters = meters;
        _logger = logger;
    }

    /// <summary>The bound port (the OS-assigned one for port 0).</summary>
    public int Port { get; private set; }

    /// <summary>
    /// Binds and serves /metrics from <paramref name="meters"/> (built by <see cref="MetricsPipeline"/> with the Prometheus
    /// exporter; the caller keeps and disposes it). Throws if the address cannot be bound or the TLS files read.
    /// </summary>
    public static async Task<MonitorServer> StartAsync(ServerOptions options, MeterProvider meters, ILoggerFactory loggers, CancellationToken ct)
    {
        var listen = options.Monitor.Listen ?? throw new ArgumentException("monitor.listen is not set", nameof(options));
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = "Sluice.Server.Monitor",
            ContentRootPath = AppContext.BaseDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        builder.Services.AddSingleton(loggers);
        builder.WebHost.ConfigureKestrel(kestrel => Listen(kestrel, listen, options.Tls));
        var app = builder.Build();
        var monitor = new MonitorServer(app, meters, loggers.CreateLogger<MonitorServer>());
        monitor.Map(app);
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw new MonitorListenException(listen, e); // names the monitoring port, not the gRPC one
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        monitor.Port = new Uri(address).Port;
        LogListening(monitor._logger, address);
        return monitor;
    }

    /// <summary>The server is open: /readyz follows its state from now on.</summary>
    public void Started(SluiceServer server) => _server = server;

    /// <summary>The server is stopping (or could not start): /readyz answers 503 with this reason.</summary>
    public void NotReady(string reason)
    {
        _notReady = reason;
        _server = null;
    }

    private static void Listen(KestrelServerOptions kestrel, HostPort listen, TlsOptions tls)
    {
        kestrel.AddServerHeader = false;
        // An h2c request says ":scheme http" while Http2PriorKnowledge marks the connection as negotiated like TLS.
        kestrel.AllowAlternateSchemes = true;
        void Configure(ListenOptions endpoint)
        {
            endpoint.Protocols = HttpProtocols.Http1AndHttp2;
            if (tls.Enabled)
            {
                // The gRPC port's certificate and client-certificate rules; ALPN picks HTTP/1.1 or HTTP/2.
                endpoint.UseHttps(GrpcServer.CreateHttpsOptions(new GrpcServerTlsOptions
                {
                    CertificatePemPath = tls.Cert,
                    KeyPemPath = tls.Key,
                    RequireClientCertificate = tls.ClientAuthEnabled,
                    ClientCaPemPath = tls.ClientAuthCa.Length > 0 ? tls.ClientAuthCa : null,
                }));
            }
            else
            {
                endpoint.Use(Http2PriorKnowledge.Detect);
            }
        }

        var host = listen.Host;
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            if (listen.Port == 0)
            {
                kestrel.Listen(IPAddress.Loopback, 0, Configure); // Kestrel cannot bind "localhost" to a dynamic port
            }
            else
            {
                kestrel.ListenLocalhost(listen.Port, Configure);
            }
        }
        else if (IPAddress.TryParse(host, out var ip))
        {
            kestrel.Listen(ip, listen.Port, Configure);
        }
        else
        {
            kestrel.Listen(Dns.GetHostAddresses(host)[0], listen.Port, Configure);
        }
    }

    private void Map(WebApplication app)
    {
        app.MapPrometheusScrapingEndpoint("/metrics", _meters, configureBranchedPipeline: null, optionsName: null);
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        app.MapGet("/readyz", () =>
        {
            var reason = NotReadyReason();
            return reason is null ? Results.Text("ready\n") : Results.Text($"not ready: {reason}\n", statusCode: StatusCodes.Status503ServiceUnavailable);
        });
        app.MapGet("/v1/server", (HttpContext http) => View(http, MonitorViews.Server));
        app.MapGet("/v1/streams", (HttpContext http) => View(http, MonitorViews.Streams));
        app.MapGet("/v1/partitions", (HttpContext http) => View(http, MonitorViews.Partitions));
        app.MapGet("/v1/cluster", (HttpContext http) => View(http, MonitorViews.Cluster));
        app.MapGet("/v1/groups", (HttpContext http) => ViewAsync(http, MonitorViews.GroupsAsync));
        app.MapGet("/v1/cursors", (HttpContext http) => ViewAsync(http, MonitorViews.CursorsAsync));
        app.MapGet("/v1/activity", (HttpContext http) => View(http, MonitorViews.Activity));
        WebConsole.ConsoleEndpoints.Map(app, () => _server, () => _notReady);
    }

    /// <summary>Null when ready; else why not, in words an operator can act on.</summary>
    internal string? NotReadyReason()
    {
        if (_server is not { } server)
        {
            return _notReady;
        }

        if (server.Cluster is not { } node)
        {
            return null;
        }

        var snapshot = node.View.Current;
        if (snapshot.Revision == 0)
        {
            return "the cluster metadata view is not loaded yet";
        }

        if (!node.IsLive)
        {
            return "this broker's lease in the cluster metadata is not held (or not renewed within its TTL)";
        }

        return snapshot.Brokers.ContainsKey(node.BrokerId) ? null : "this broker is not registered in the cluster metadata yet";
    }

    private IResult View(HttpContext http, Action<System.Text.Json.Utf8JsonWriter, SluiceServer, IQueryCollection> write)
    {
        if (_server is not { } server)
        {
            return Results.Text($"{{\"error\":\"not ready: {_notReady}\"}}\n", "application/json", statusCode: StatusCodes.Status503ServiceUnavailable);
        }

        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var json = new System.Text.Json.Utf8JsonWriter(buffer, new System.Text.Json.JsonWriterOptions { Indented = http.Request.Query.ContainsKey("pretty") }))
        {
            write(json, server, http.Request.Query);
        }

        return Results.Bytes(buffer.WrittenMemory.ToArray(), "application/json");
    }

    /// <summary>A view that asks other parts of the server (or other brokers) before it can answer; writes the response itself.</summary>
    private async Task ViewAsync(HttpContext http, Func<System.Text.Json.Utf8JsonWriter, SluiceServer, IQueryCollection, CancellationToken, Task> write)
    {
        http.Response.ContentType = "application/json";
        if (_server is not { } server)
        {
            http.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            await http.Response.WriteAsync($"{{\"error\":\"not ready: {_notReady}\"}}\n", http.RequestAborted).ConfigureAwait(false);
            return;
        }

        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        await using (var json = new System.Text.Json.Utf8JsonWriter(buffer, new System.Text.Json.JsonWriterOptions { Indented = http.Request.Query.ContainsKey("pretty") }))
        {
            await write(json, server, http.Request.Query, http.RequestAborted).ConfigureAwait(false);
        }

        await http.Response.Body.WriteAsync(buffer.WrittenMemory, http.RequestAborted).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Monitoring port listening on {Address} (web console at /console/, /metrics, /healthz, /readyz, /v1/*)")]
    private static partial void LogListening(ILogger logger, string address);
}

/// <summary>The monitoring port could not be bound (in use, not an address of this machine).</summary>
public sealed class MonitorListenException(HostPort address, Exception inner)
    : IOException($"cannot listen on the monitoring port {address}: {inner.Message}", inner)
{
    public HostPort Address { get; } = address;
}
