using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Sluice.Server.Configuration;

namespace Sluice.Server.Hosting;

/// <summary>Runs the server with resolved options until the token is cancelled.</summary>
public static class ServerRunner
{
    /// <summary>The gRPC status every call gets until the broker API lands (12 = UNIMPLEMENTED).</summary>
    public const string PlaceholderMessage = "Sluice broker API not available yet";

    /// <summary>
    /// Binds the configured listen address (HTTP/2, TLS when configured) and serves until <paramref name="ct"/>
    /// is cancelled, then stops gracefully. For now every call is answered with gRPC status UNIMPLEMENTED: an
    /// honest placeholder that the broker replaces.
    /// </summary>
    /// <returns>0 after a graceful stop; 1 when the server cannot start (address in use, bad certificate).</returns>
    public static async Task<int> RunAsync(ServerOptions options, ILoggerFactory loggers, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggers);
        var logger = loggers.CreateLogger("Sluice.Server");
        var endpoint = options.ListenEndpoint;

        WebApplication app;
        try
        {
            app = Build(options, loggers);
        }
        catch (Exception e) when (e is IOException or CryptographicException or ArgumentException or SocketException)
        {
            logger.LogError("Cannot start the server on {Endpoint}: {Reason}", endpoint, e.Message);
            return 1;
        }

        await using (app)
        {
            try
            {
                await app.StartAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return 0;
            }
            catch (IOException e)
            {
                logger.LogError("Cannot listen on {Endpoint}: {Reason}", endpoint, e.InnerException?.Message ?? e.Message);
                return 1;
            }

            var bound = BoundAddresses(app);
            logger.LogInformation("listening on {Address}{Tls}", string.Join(", ", bound), options.Tls.Enabled ? " (TLS)" : "");
            var advertised = options.AdvertisedAddress;
            if (advertised.Port == 0 && bound.Count > 0)
            {
                advertised = advertised with { Port = bound[0].Port };
            }

            logger.LogInformation("advertising {Address} to clients", advertised);

            try
            {
                await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            logger.LogInformation("shutting down");
            // Bounded, so a stuck connection cannot hold the process forever.
            using var stopTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await app.StopAsync(stopTimeout.Token).ConfigureAwait(false);
            logger.LogInformation("stopped");
            return 0;
        }
    }

    private static WebApplication Build(ServerOptions options, ILoggerFactory loggers)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Services.AddSingleton(loggers); // registered first: AddLogging only adds a factory when none is
        builder.Services.AddLogging();
        // The caller owns process signals and passes them in as the token.
        builder.Services.AddSingleton<IHostLifetime, CallerOwnedLifetime>();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = null;          // long-lived client and bidi streams
            kestrel.Limits.MinRequestBodyDataRate = null;
            kestrel.Limits.MinResponseDataRate = null;
            kestrel.Limits.Http2.MaxStreamsPerConnection = 1000;

            var endpoint = options.ListenEndpoint;
            var address = ResolveAddress(endpoint.Host);
            kestrel.Listen(address, endpoint.Port, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;            // h2c needs HTTP/2 only (prior knowledge)
                if (options.Tls.Enabled)
                {
                    listen.UseHttps(Https(options.Tls));
                }
            });
        });

        var app = builder.Build();
        app.Run(AnswerUnimplemented);
        return app;
    }

    private static Task AnswerUnimplemented(HttpContext context)
    {
        // Trailers-only gRPC response: the status travels in the HEADERS frame that ends the stream.
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/grpc";
        context.Response.Headers["grpc-status"] = "12";
        context.Response.Headers["grpc-message"] = PlaceholderMessage;
        return Task.CompletedTask;
    }

    private static IPAddress ResolveAddress(string host)
    {
        if (host is "" or "*" or "0.0.0.0")
        {
            return IPAddress.Any;
        }

        if (IPAddress.TryParse(host, out var ip))
        {
            return ip;
        }

        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            return IPAddress.Loopback;
        }

        var addresses = Dns.GetHostAddresses(host);
        return addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
            ?? addresses.FirstOrDefault()
            ?? throw new ArgumentException($"host \"{host}\" has no address");
    }

    private static HttpsConnectionAdapterOptions Https(TlsOptions tls)
    {
        var https = new HttpsConnectionAdapterOptions
        {
            ServerCertificate = X509Certificate2.CreateFromPemFile(tls.Cert, tls.Key),
        };
        if (tls.ClientAuthEnabled)
        {
            https.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
            var authorities = new X509Certificate2Collection();
            if (tls.ClientAuthCa.Length > 0)
            {
                authorities.ImportFromPemFile(tls.ClientAuthCa);
            }

            https.ClientCertificateValidation = (certificate, _, _) =>
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                if (authorities.Count > 0)
                {
                    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
                }

                return chain.Build(certificate);
            };
        }

        return https;
    }

    private static List<HostPort> BoundAddresses(WebApplication app)
    {
        var feature = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>();
        return (feature?.Addresses ?? [])
            .Select(a => new Uri(a))
            .Select(u => new HostPort(u.Host.Trim('[', ']'), u.Port))
            .ToList();
    }

    /// <summary>A host lifetime that leaves signals alone: stopping is driven by the caller's token.</summary>
    private sealed class CallerOwnedLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
