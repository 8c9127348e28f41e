using System.Buffers;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace Sluice.Server.Monitoring;

/// <summary>
/// HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one cleartext Kestrel endpoint. Kestrel picks HTTP/1.1 for every
/// cleartext connection of an Http1AndHttp2 endpoint because there is no ALPN to ask (dotnet/aspnetcore#56984, open). A
/// connection that starts with HTTP/2's fixed client preface (RFC 9113 §3.4) cannot be HTTP/1.1, so this peeks at the
/// first bytes without consuming them and, for the preface, tells Kestrel "h2" the way ALPN would.
/// </summary>
internal static class Http2PriorKnowledge
{
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    private static readonly byte[] H2 = "h2"u8.ToArray();

    /// <summary>How long a new connection may stay silent: Kestrel's own request timeouts start only after this peek.</summary>
    private static readonly TimeSpan FirstBytesTimeout = TimeSpan.FromSeconds(10);

    public static ConnectionDelegate Detect(ConnectionDelegate next) => async connection =>
    {
        bool http2;
        using (var silent = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed))
        {
            silent.CancelAfter(FirstBytesTimeout);
            try
            {
                http2 = await StartsWithPrefaceAsync(connection, silent.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                connection.Abort(); // silent for too long, or gone
                return;
            }
        }

        if (http2)
        {
            // Kestrel reads the protocol choice from the TLS features; the connection stays cleartext.
            var alpn = new NegotiatedHttp2();
            connection.Features.Set<ITlsApplicationProtocolFeature>(alpn);
            connection.Features.Set<ITlsConnectionFeature>(alpn);
        }

        await next(connection).ConfigureAwait(false);
    };

    /// <summary>Examines (does not consume) the first bytes until they match the preface or cannot.</summary>
    private static async Task<bool> StartsWithPrefaceAsync(ConnectionContext connection, CancellationToken cancellationToken)
    {
        var input = connection.Transport.Input;
        while (true)
        {
            var read = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = read.Buffer;
            var (matches, whole) = Compare(buffer);
            if (!matches || whole || read.IsCompleted || read.IsCanceled)
            {
                input.AdvanceTo(buffer.Start); // nothing consumed or examined: Kestrel reads the same bytes again
                return matches && whole;
            }

            input.AdvanceTo(buffer.Start, buffer.End); // a partial preface so far: wait for more bytes
        }
    }

    private static (bool Matches, bool Whole) Compare(in ReadOnlySequence<byte> buffer)
    {
        var length = (int)Math.Min(buffer.Length, Preface.Length);
        Span<byte> head = stackalloc byte[Preface.Length];
        buffer.Slice(0, length).CopyTo(head);
        return (head[..length].SequenceEqual(Preface.AsSpan(0, length)), length == Preface.Length);
    }

    private sealed class NegotiatedHttp2 : ITlsApplicationProtocolFeature, ITlsConnectionFeature
    {
        public ReadOnlyMemory<byte> ApplicationProtocol => H2;

        public X509Certificate2? ClientCertificate { get; set; }

        public Task<X509Certificate2?> GetClientCertificateAsync(CancellationToken cancellationToken) => Task.FromResult<X509Certificate2?>(null);
    }
}
