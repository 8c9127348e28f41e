using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Sluice.Server.Configuration;

namespace Sluice.Server.Hosting;

/// <summary>Runs the server with resolved options until the token is cancelled (what `sluice serve` calls).</summary>
public static class ServerRunner
{
    /// <summary>
    /// Starts a <see cref="SluiceServer"/> on the configured listen address and data directory, serves until
    /// <paramref name="ct"/> is cancelled, then stops gracefully (subscriptions end, logs are flushed and closed).
    /// </summary>
    /// <returns>0 after a graceful stop; 1 when the server cannot start (address in use, bad certificate, unreadable data).</returns>
    public static async Task<int> RunAsync(ServerOptions options, ILoggerFactory loggers, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggers);
        var logger = loggers.CreateLogger("Sluice.Server");
        var endpoint = options.ListenEndpoint;

        SluiceServer server;
        try
        {
            server = await SluiceServer.StartAsync(options, loggers, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return 0;
        }
        catch (ConfigurationException e)
        {
            logger.LogError("Cannot start the server: {Reason}", e.Message);
            return 1;
        }
        catch (Nats.NatsAttachmentException e)
        {
            logger.LogError("Cannot start the server: {Reason}", e.Message);
            return 1;
        }
        catch (Storage.Sql.SchemaException e)
        {
            logger.LogError("Cannot start the server: {Reason}", e.Message);
            return 1;
        }
        catch (Storage.Metadata.MetadataUnavailableException e)
        {
            logger.LogError("Cannot start the server: {Reason}", e.Message);
            return 1;
        }
        catch (Storage.Metadata.MetadataStoreLockedException)
        {
            logger.LogError("Cannot start the server: the data directory {DataDir} is in use by another Sluice process", options.DataDir);
            return 1;
        }
        catch (Exception e) when (e is Storage.Metadata.MetadataLogDamagedException or Storage.Metadata.MetadataCorruptException)
        {
            logger.LogError("Cannot start the server: {Reason}. To start with what is readable, stop here and run `sluice repair --data-dir {DataDir}` (see docs/operations.md)", e.Message, options.DataDir);
            return 1;
        }
        catch (Monitoring.MonitorListenException e)
        {
            logger.LogError("Cannot start the server: {Reason}", e.Message);
            return 1;
        }
        catch (Exception e) when (IsBindFailure(e))
        {
            logger.LogError("Cannot listen on {Endpoint}: {Reason}", endpoint, e.InnerException?.Message ?? e.Message);
            return 1;
        }
        catch (Exception e) when (e is IOException or CryptographicException or ArgumentException or UnauthorizedAccessException or InvalidDataException)
        {
            logger.LogError("Cannot start the server on {Endpoint}: {Reason}", endpoint, e.InnerException?.Message ?? e.Message);
            return 1;
        }

        await using (server.ConfigureAwait(false))
        {
            var advertised = options.AdvertisedAddress;
            if (advertised.Port == 0)
            {
                advertised = advertised with { Port = server.Port };
            }

            logger.LogInformation("serving proto.API on {Address}{Tls}", endpoint with { Port = server.Port }, options.Tls.Enabled ? " (TLS)" : "");
            logger.LogInformation("server id: {ServerId}, data in {DataDir}", server.ServerId, options.DataDir);
            logger.LogInformation("advertising {Address} to clients", advertised);
            using var onHangUp = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
            {
                context.Cancel = true; // SIGHUP reloads; it never stops the server
                if (server.Authorization is null)
                {
                    logger.LogInformation("received SIGHUP: authorization is off, nothing to reload");
                }
                else
                {
                    server.ReloadAuthorization(); // logs what it did
                }
            });
            try
            {
                await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            logger.LogInformation("shutting down");
        }

        logger.LogInformation("stopped");
        return 0;
    }

    /// <summary>Kestrel reports a taken or forbidden address as AddressInUseException (an IOException) or a SocketException.</summary>
    private static bool IsBindFailure(Exception e)
    {
        for (Exception? current = e; current is not null; current = current.InnerException)
        {
            if (current is SocketException || current.GetType().Name == "AddressInUseException")
            {
                return true;
            }
        }

        return false;
    }
}
