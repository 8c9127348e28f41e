using System.Net;
using Microsoft.AspNetCore.Connections;
using Sluice.Protocol.Http2;
using Sluice.Server.Http2;

namespace Sluice.Server.Grpc;

/// <summary>
/// Kestrel connection middleware for <see cref="GrpcServerOptions.MaxConnectionsPerAddress"/>: a connection over
/// the limit is answered as the native transport answers it, SETTINGS and GOAWAY(ENHANCE_YOUR_CALM) with the
/// reason (h2c), or closed at once (TLS: it runs before the handshake, which it would otherwise pay for).
/// </summary>
internal sealed class ConnectionLimitPerAddress(int max, bool tls)
{
    private readonly Dictionary<IPAddress, int> _counts = [];
    private readonly Lock _sync = new();

    public ConnectionDelegate Wrap(ConnectionDelegate next) => async context =>
    {
        var address = Http2Listener.ClientAddress(context.RemoteEndPoint);
        if (!TryEnter(address))
        {
            if (!tls)
            {
                var output = context.Transport.Output;
                Http2Frame.WriteSettings(output, []);
                Http2Frame.WriteGoAway(output, 0, Http2ErrorCode.EnhanceYourCalm, Http2Listener.PerAddressRefusal(max));
                await output.FlushAsync(context.ConnectionClosed).ConfigureAwait(false);
            }

            return; // Kestrel closes the connection
        }

        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            Exit(address);
        }
    };

    private bool TryEnter(IPAddress address)
    {
        lock (_sync)
        {
            var count = _counts.GetValueOrDefault(address);
            if (count >= max)
            {
                return false;
            }

            _counts[address] = count + 1;
            return true;
        }
    }

    private void Exit(IPAddress address)
    {
        lock (_sync)
        {
            var count = _counts[address] - 1;
            if (count == 0)
            {
                _counts.Remove(address);
            }
            else
            {
                _counts[address] = count;
            }
        }
    }
}
