using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Protocol.Grpc;
using Sluice.Server.Http2;
using ServingStatus = Sluice.Protocol.Health.HealthCheckResponse.Types.ServingStatus;

namespace Sluice.Server.Grpc;

/// <summary>
/// A small gRPC server (HTTP/2; h2c, or TLS) on the server's own HTTP/2 connection
/// (<see cref="GrpcServerTransport.Native"/>) or on Kestrel. The gRPC .NET packages cannot be restored
/// here, so framing, status trailers, deadlines and compression are done by hand in this folder.
/// </summary>
public sealed partial class GrpcServer : IAsyncDisposable
{
    /// <summary>The longest delay <see cref="CancellationTokenSource.CancelAfter(TimeSpan)"/> takes (uint.MaxValue - 1 ms).</summary>
    internal static readonly TimeSpan MaxTimerDelay = TimeSpan.FromMilliseconds(uint.MaxValue - 1.0);

    private readonly GrpcServerOptions _options;
    private readonly GrpcMethodRegistry _methods;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private WebApplication? _app;
    private Http2Listener? _native;
    private int _kestrelConnections;

    public GrpcServer(GrpcServerOptions options, GrpcMethodRegistry methods, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(methods);
        _options = options;
        _methods = methods;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<GrpcServer>();
        Health.Register(methods);
    }

    public GrpcHealth Health { get; } = new();

    /// <summary>Where calls are counted and timed; null counts nothing. Set before <see cref="StartAsync"/>.</summary>
    internal Monitoring.ServerMetrics? Metrics { get; set; }

    /// <summary>Connections open now, on either transport.</summary>
    public int ActiveConnections => _native?.ConnectionCount ?? Volatile.Read(ref _kestrelConnections);

    /// <summary>The native transport's listener once started (null with Kestrel), for tests.</summary>
    internal Http2Listener? NativeListener => _native;

    /// <summary>The bound port (the real one when <see cref="GrpcServerOptions.Port"/> is 0). Valid after start.</summary>
    public int Port { get; private set; }

    /// <summary>Binds and starts serving. Marks "" and every registered service SERVING.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (_app is not null || _native is not null)
        {
            throw new InvalidOperationException("The server is already started.");
        }

        string address;
        if (_options.Transport == GrpcServerTransport.Native)
        {
            _native = Http2Listener.Start(_options.ToHttp2ListenerOptions(), HandleCallAsync, _loggerFactory);
            Port = _native.Port;
            address = _native.Address;
        }
        else
        {
            address = await StartKestrelAsync(cancellationToken).ConfigureAwait(false);
        }

        Health.SetStatus(string.Empty, ServingStatus.Serving);
        foreach (var service in _methods.ServiceNames)
        {
            Health.SetStatus(service, ServingStatus.Serving);
        }

        LogStarted(_logger, address, _options.Tls is not null, _options.Transport);
    }

    private async Task<string> StartKestrelAsync(CancellationToken cancellationToken)
    {

        // Sluice reads no appsettings.json: pin the content root to the binaries and turn off config reload,
        // or ASP.NET's file watcher walks the working directory (often the data dir's parent) on every checkpoint rename.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = "Sluice.Server",
            ContentRootPath = AppContext.BaseDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        builder.Services.AddSingleton(_loggerFactory);
        builder.WebHost.ConfigureKestrel(ConfigureKestrel);
        builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = _options.InlineIo);
        var app = builder.Build();
        app.Run(http => HandleCallAsync(new KestrelExchange(http)));
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        _app = app;

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Port = new Uri(address).Port;
        return address;
    }

    /// <summary>
    /// Marks everything NOT_SERVING, cancels running calls (they end with UNAVAILABLE), then stops
    /// listening, giving calls <see cref="GrpcServerOptions.ShutdownTimeout"/> to finish.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        Health.SetAllNotServing();
        if (_app is null && _native is null)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.ShutdownTimeout);
        if (_native is not null)
        {
            await _native.StopAsync(timeout.Token).ConfigureAwait(false);
        }
        else
        {
            await _app!.StopAsync(timeout.Token).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        if (_app is not null)
        {
            await _app.DisposeAsync().ConfigureAwait(false);
            _app = null;
        }

        _native?.Dispose();
        _native = null;

        _stopping.Dispose();
    }

    private void ConfigureKestrel(KestrelServerOptions kestrel)
    {
        var limits = kestrel.Limits;
        limits.MaxRequestBodySize = null;       // a long bidi publish stream is one request body; the 30 MB default kills it
        limits.MinRequestBodyDataRate = null;   // streams idle for minutes are normal (subscriptions, quiet publishers)
        limits.MinResponseDataRate = null;
        limits.Http2.MaxStreamsPerConnection = _options.MaxStreamsPerConnection;
        limits.MaxConcurrentConnections = _options.MaxConnections;
        limits.Http2.InitialConnectionWindowSize = 4 << 20; // 4 MiB: keeps a fast publisher from stalling on window updates
        limits.Http2.InitialStreamWindowSize = 2 << 20;     // 2 MiB per stream, same reason
        limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(60);  // finds dead peers on idle subscriptions
        limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(20);

        var perAddress = _options.MaxConnectionsPerAddress < _options.MaxConnections
            ? new ConnectionLimitPerAddress(_options.MaxConnectionsPerAddress, _options.Tls is not null)
            : null;

        void Listen(ListenOptions listen)
        {
            // Http2 only: h2c with prior knowledge needs it (Http1AndHttp2 without TLS cannot do h2c).
            listen.Protocols = HttpProtocols.Http2;
            if (perAddress is not null)
            {
                listen.Use(perAddress.Wrap); // first, so a refused connection costs no TLS handshake
            }

            listen.Use(next => async connection =>
            {
                Interlocked.Increment(ref _kestrelConnections);
                try
                {
                    await next(connection).ConfigureAwait(false);
                }
                finally
                {
                    Interlocked.Decrement(ref _kestrelConnections);
                }
            });

            if (_options.Tls is { } tls)
            {
                listen.UseHttps(CreateHttpsOptions(tls));
            }
        }

        var host = _options.Host;
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            kestrel.ListenLocalhost(_options.Port, Listen);
        }
        else if (IPAddress.TryParse(host, out var ip))
        {
            kestrel.Listen(ip, _options.Port, Listen);
        }
        else
        {
            kestrel.Listen(Dns.GetHostAddresses(host)[0], _options.Port, Listen);
        }
    }

    internal static HttpsConnectionAdapterOptions CreateHttpsOptions(GrpcServerTlsOptions tls)
    {
        var https = new HttpsConnectionAdapterOptions
        {
            ServerCertificate = X509Certificate2.CreateFromPemFile(tls.CertificatePemPath, tls.KeyPemPath),
            ClientCertificateMode = tls.RequireClientCertificate ? ClientCertificateMode.RequireCertificate : ClientCertificateMode.AllowCertificate,
        };
        if (tls.CreateClientCaValidator() is { } validate)
        {
            https.ClientCertificateValidation = (certificate, _, _) => validate(certificate);
        }

        return https;
    }

    /// <summary>One gRPC call, from request headers to the status.</summary>
    private Task HandleCallAsync(IHttp2Exchange exchange)
    {
        var path = exchange.Path;
        if (!HttpMethods.IsPost(exchange.Method))
        {
            exchange.SetStatusCode(StatusCodes.Status405MethodNotAllowed);
            return Task.CompletedTask;
        }

        if (exchange.ContentType is not { } contentType || !contentType.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase))
        {
            // The gRPC spec's answer to a non-gRPC request: HTTP 415, plus a gRPC status for gRPC-aware peers.
            exchange.SetStatusCode(StatusCodes.Status415UnsupportedMediaType);
            exchange.SetResponseHeader("grpc-status", ((int)GrpcStatusCode.Internal).ToString(System.Globalization.CultureInfo.InvariantCulture));
            exchange.SetResponseHeader("grpc-message", GrpcStatusMessage.Encode($"Content-Type '{exchange.ContentType}' is not supported; expected application/grpc"));
            return Task.CompletedTask;
        }

        exchange.SetResponseHeader("content-type", "application/grpc");
        exchange.SetResponseHeader("grpc-accept-encoding", GrpcCompression.AcceptEncoding);

        if (!_methods.TryGet(path, out var method))
        {
            WriteStatus(exchange, null, GrpcStatusCode.Unimplemented, $"unknown method {path}");
            Metrics?.RpcEnded("/_OTHER/_OTHER", GrpcStatusCode.Unimplemented, System.Diagnostics.Stopwatch.GetTimestamp());
            return Task.CompletedTask;
        }

        // Timed only while something reads the metric: otherwise a call pays no extra state machine for it.
        return Metrics is { RpcTimed: true } metrics ? TimedAsync(metrics, exchange, path, method) : ServeAsync(exchange, path, method);
    }

    private async Task TimedAsync(Monitoring.ServerMetrics metrics, IHttp2Exchange exchange, string path, GrpcMethod method)
    {
        var startedAt = System.Diagnostics.Stopwatch.GetTimestamp();
        var status = GrpcStatusCode.Unknown;
        try
        {
            status = await ServeAsync(exchange, path, method).ConfigureAwait(false);
        }
        finally
        {
            metrics.RpcEnded(path, status, startedAt);
        }
    }

    /// <summary>A known method's call, after its headers were checked; returns the status it ended with.</summary>
    private async Task<GrpcStatusCode> ServeAsync(IHttp2Exchange exchange, string path, GrpcMethod method)
    {
        var encoding = exchange.RequestHeader("grpc-encoding");
        if (encoding is not null && encoding != GrpcCompression.Identity && encoding != GrpcCompression.Gzip)
        {
            return Ended(exchange, null, GrpcStatusCode.Unimplemented, $"grpc-encoding '{encoding}' is not supported (supported: {GrpcCompression.AcceptEncoding})");
        }

        TimeSpan? timeout = null;
        if (exchange.RequestHeader("grpc-timeout") is { } timeoutHeader)
        {
            if (!GrpcTimeout.TryParse(timeoutHeader, out var parsed))
            {
                return Ended(exchange, null, GrpcStatusCode.Internal, $"malformed grpc-timeout '{timeoutHeader}'");
            }

            timeout = parsed;
        }

        using var deadline = new CancellationTokenSource();
        using var callCancel = CancellationTokenSource.CreateLinkedTokenSource(exchange.Aborted, _stopping.Token, deadline.Token);
        DateTime? deadlineUtc = null;
        if (timeout is { } t)
        {
            // The spec allows up to 99999999H (11,000 years): past what a timer takes (~49.7 days) the client's own
            // deadline, which it enforces too, is left to end the call; past DateTime's range the deadline is its end.
            if (t <= MaxTimerDelay)
            {
                deadline.CancelAfter(t);
            }

            var now = DateTime.UtcNow;
            deadlineUtc = t < DateTime.MaxValue - now ? now + t : DateTime.MaxValue;
        }

        var context = new GrpcCallContext(exchange, path, deadlineUtc, callCancel.Token);
        var call = new GrpcServerCall(exchange, context, _options, encoding);
        try
        {
            await method.InvokeAsync(call).ConfigureAwait(false);
            return Ended(exchange, call, GrpcStatusCode.OK, null);
        }
        catch (GrpcException ex)
        {
            return Ended(exchange, call, ex.StatusCode, ex.Detail);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && callCancel.IsCancellationRequested)
        {
            if (exchange.Aborted.IsCancellationRequested)
            {
                LogClientGone(_logger, path);    // nobody left to tell
                return GrpcStatusCode.Cancelled;
            }

            return deadline.IsCancellationRequested
                ? Ended(exchange, call, GrpcStatusCode.DeadlineExceeded, "Deadline Exceeded")
                : Ended(exchange, call, GrpcStatusCode.Unavailable, "the server is shutting down");
        }
        catch (Exception ex)
        {
            LogHandlerFailed(_logger, ex, path);
            // The log has the exception; its type and message (paths, internals) are not the client's to see.
            return Ended(exchange, call, GrpcStatusCode.Internal, "Exception was thrown by handler");
        }
    }

    private static GrpcStatusCode Ended(IHttp2Exchange exchange, GrpcServerCall? call, GrpcStatusCode code, string? message)
    {
        WriteStatus(exchange, call, code, message);
        return code;
    }

    /// <summary>
    /// Before any message, the status goes in the response headers ("trailers-only", one HEADERS
    /// frame with END_STREAM); after one, in the trailers.
    /// </summary>
    private static void WriteStatus(IHttp2Exchange exchange, GrpcServerCall? call, GrpcStatusCode code, string? message)
    {
        var status = ((int)code).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var encoded = GrpcStatusMessage.Encode(message);
        if (exchange.ResponseStarted || call?.HasWrittenMessages == true)
        {
            exchange.AppendTrailer("grpc-status", status);
            if (encoded.Length > 0)
            {
                exchange.AppendTrailer("grpc-message", encoded);
            }
        }
        else
        {
            exchange.SetResponseHeader("grpc-status", status);
            if (encoded.Length > 0)
            {
                exchange.SetResponseHeader("grpc-message", encoded);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "gRPC server listening on {Address} (TLS: {Tls}, HTTP/2: {Transport})")]
    private static partial void LogStarted(ILogger logger, string address, bool tls, GrpcServerTransport transport);

    [LoggerMessage(Level = LogLevel.Debug, Message = "gRPC call {Path} ended: the client cancelled or disconnected")]
    private static partial void LogClientGone(ILogger logger, string path);

    [LoggerMessage(Level = LogLevel.Error, Message = "gRPC handler for {Path} threw")]
    private static partial void LogHandlerFailed(ILogger logger, Exception exception, string path);
}
