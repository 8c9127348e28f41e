using System.Buffers;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Sluice.Nats.Protocol;

namespace Sluice.Nats.Connection;

/// <summary>
/// Opens a connection to one server: TCP, INFO, optional TLS upgrade, CONNECT, then a PING/PONG round
/// trip (so a rejected CONNECT surfaces here as -ERR), then re-sends the subscriptions it is given.
/// </summary>
internal sealed class ServerConnector(NatsOptions options, ILogger logger)
{
    public static NatsServerInfo ParseInfo(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<NatsServerInfo>(json) ?? throw new NatsProtocolException("INFO is null.");
        }
        catch (JsonException ex)
        {
            throw new NatsProtocolException($"INFO is not valid JSON: {ex.Message}");
        }
    }

    public async Task<Transport> ConnectAsync(ServerAddress address, IReadOnlyCollection<NatsSubscription> resubscribe, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        var token = timeout.Token;
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream? stream = null;
        try
        {
            await socket.ConnectAsync(address.Host, address.Port, token).ConfigureAwait(false);
            stream = new NetworkStream(socket, ownsSocket: true);
            var parser = new NatsParser();
            var reader = PipeReader.Create(stream, new StreamPipeReaderOptions(leaveOpen: true));
            var first = await ReadOpAsync(reader, parser, token).ConfigureAwait(false);
            if (first.Kind != ServerOpKind.Info)
            {
                throw new NatsProtocolException($"Expected INFO from {address}, got {first.Kind}.");
            }

            var info = ParseInfo(first.Text!);
            var tls = info.TlsRequired || address.Tls || options.Tls.Mode == NatsTlsMode.Require;
            if (tls)
            {
                // Nothing follows INFO until the client speaks, so this reader holds no TLS bytes.
                await reader.CompleteAsync().ConfigureAwait(false);
                var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                stream = ssl;
                await ssl.AuthenticateAsClientAsync(BuildTlsOptions(address), token).ConfigureAwait(false);
                reader = PipeReader.Create(ssl, new StreamPipeReaderOptions(leaveOpen: true));
            }

            var buffer = new ArrayBufferWriter<byte>();
            NatsProtocolWriter.WriteConnect(buffer, BuildConnectJson(address, tls));
            NatsProtocolWriter.WritePing(buffer);
            await stream.WriteAsync(buffer.WrittenMemory, token).ConfigureAwait(false);
            await stream.FlushAsync(token).ConfigureAwait(false);

            while (true)
            {
                var op = await ReadOpAsync(reader, parser, token).ConfigureAwait(false);
                if (op.Kind == ServerOpKind.Pong)
                {
                    break;
                }

                switch (op.Kind)
                {
                    case ServerOpKind.Err:
                        throw IsAuthError(op.Text!) ? new NatsAuthorizationException(op.Text!) : new NatsServerErrorException(op.Text!);
                    case ServerOpKind.Ping:
                        await stream.WriteAsync("PONG\r\n"u8.ToArray(), token).ConfigureAwait(false);
                        break;
                    case ServerOpKind.Info:
                        info = ParseInfo(op.Text!);
                        break;
                    default:
                        break;
                }
            }

            buffer.ResetWrittenCount();
            foreach (var sub in resubscribe)
            {
                NatsProtocolWriter.WriteSubscribe(buffer, sub.Sid, sub.Subject, sub.QueueGroup);
                if (sub.MaxMsgs is { } max)
                {
                    NatsProtocolWriter.WriteUnsubscribe(buffer, sub.Sid, Math.Max(1, max - sub.ReceivedMessages));
                }
            }

            if (buffer.WrittenCount > 0)
            {
                await stream.WriteAsync(buffer.WrittenMemory, token).ConfigureAwait(false);
                await stream.FlushAsync(token).ConfigureAwait(false);
            }

            logger.LogDebug("Connected to {Server} ({ServerId}, version {Version}, TLS {Tls})", address, info.ServerId, info.Version, tls);
            return new Transport(socket, stream, reader, info, address);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            Dispose(socket, stream);
            throw new NatsConnectionException($"Connecting to {address} timed out after {options.ConnectTimeout.TotalMilliseconds:0} ms.");
        }
        catch (Exception ex) when (ex is SocketException or IOException or System.Security.Authentication.AuthenticationException)
        {
            Dispose(socket, stream);
            throw new NatsConnectionException($"Could not connect to {address}: {ex.Message}", ex);
        }
        catch
        {
            Dispose(socket, stream);
            throw;
        }
    }

    internal static bool IsAuthError(string message) =>
        message.Contains("authorization", StringComparison.OrdinalIgnoreCase)
        || message.Contains("authentication", StringComparison.OrdinalIgnoreCase);

    private static void Dispose(Socket socket, Stream? stream)
    {
        stream?.Dispose();
        socket.Dispose();
    }

    private static async Task<ServerOp> ReadOpAsync(PipeReader reader, NatsParser parser, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (parser.TryParse(ref buffer, out var op))
            {
                reader.AdvanceTo(buffer.Start);
                return op;
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                throw new NatsConnectionException("The server closed the connection during the handshake.");
            }
        }
    }

    private byte[] BuildConnectJson(ServerAddress address, bool tls)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteBoolean("verbose", false);
            json.WriteBoolean("pedantic", false);
            json.WriteBoolean("tls_required", tls);
            if (options.Name is not null)
            {
                json.WriteString("name", options.Name);
            }

            json.WriteString("lang", ".NET");
            json.WriteString("version", typeof(ServerConnector).Assembly.GetName().Version?.ToString() ?? "0.0.0");
            json.WriteNumber("protocol", 1);
            json.WriteBoolean("echo", options.Echo);
            json.WriteBoolean("headers", true);
            json.WriteBoolean("no_responders", true);
            var user = address.User ?? options.User;
            var password = address.User is not null ? address.Password : options.Password;
            if (user is not null)
            {
                json.WriteString("user", user);
                json.WriteString("pass", password ?? string.Empty);
            }

            if (options.Token is not null)
            {
                json.WriteString("auth_token", options.Token);
            }

            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private SslClientAuthenticationOptions BuildTlsOptions(ServerAddress address)
    {
        var tls = options.Tls;
        var result = new SslClientAuthenticationOptions { TargetHost = tls.TargetHost ?? address.Host };
        if (tls.CertFile is not null)
        {
            var certificate = tls.KeyFile is null
                ? X509Certificate2.CreateFromPemFile(tls.CertFile)
                : X509Certificate2.CreateFromPemFile(tls.CertFile, tls.KeyFile);
            result.ClientCertificates = [certificate];
        }

        if (tls.RemoteCertificateValidation is not null)
        {
            result.RemoteCertificateValidationCallback = tls.RemoteCertificateValidation;
        }
        else if (tls.CaFile is not null)
        {
            var roots = new X509Certificate2Collection();
            roots.ImportFromPemFile(tls.CaFile);
            result.CertificateChainPolicy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
            };
            result.CertificateChainPolicy.CustomTrustStore.AddRange(roots);
        }

        return result;
    }
}
