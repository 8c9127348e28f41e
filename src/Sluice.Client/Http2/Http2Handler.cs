using Sluice.Client.Grpc;

namespace Sluice.Client.Http2;

/// <summary>
/// An <see cref="HttpMessageHandler"/> that sends HTTP/2 requests to one server over this client's own
/// <see cref="Http2Connection"/>s. It opens a connection on first use, puts each request on a usable
/// connection with room under the server's concurrent-stream limit, and opens another when all are
/// full (if <see cref="GrpcChannelOptions.EnableMultipleHttp2Connections"/>) or waits for room.
/// A connection that failed or received GOAWAY takes no new requests; the next request connects anew.
/// </summary>
internal sealed class Http2Handler(Uri address, GrpcChannelOptions options) : HttpMessageHandler
{
    private readonly Lock _sync = new();
    private readonly List<Http2Connection> _connections = [];
    private readonly List<Http2Connection> _draining = [];
    private Task<Http2Connection>? _connecting;
    private bool _disposed;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.RequestUri is not { } uri || uri.Scheme != address.Scheme || uri.IdnHost != address.IdnHost || uri.Port != address.Port)
        {
            throw new ArgumentException($"This handler sends only to {address.GetLeftPart(UriPartial.Authority)}, not to {request.RequestUri}.", nameof(request));
        }

        while (true)
        {
            var connection = await ReserveAsync(cancellationToken).ConfigureAwait(false);
            if (await connection.SendAsync(request, cancellationToken).ConfigureAwait(false) is { } response)
            {
                return response;
            }

            // The connection received GOAWAY before this request went out: try another one.
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Http2Connection[] connections;
            lock (_sync)
            {
                _disposed = true;
                connections = [.. _connections, .. _draining];
                _connections.Clear();
                _draining.Clear();
            }

            foreach (var connection in connections)
            {
                connection.Dispose();
            }
        }

        base.Dispose(disposing);
    }

    /// <summary>A connection with a stream reserved for the caller.</summary>
    private async ValueTask<Http2Connection> ReserveAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_sync)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                for (var i = _connections.Count - 1; i >= 0; i--)
                {
                    if (!_connections[i].IsUsable)
                    {
                        _draining.Add(_connections[i]); // after GOAWAY its last streams finish; Dispose closes it if they do not
                        _connections.RemoveAt(i);
                    }
                }

                _draining.RemoveAll(static c => c.IsClosed);
                foreach (var connection in _connections)
                {
                    if (connection.TryReserveStream())
                    {
                        return connection;
                    }
                }

                // A server that allows no streams at all (SETTINGS_MAX_CONCURRENT_STREAMS 0) would have every
                // new connection refuse too: wait for it to raise the limit instead of connecting in a loop.
                var closedToStreams = _connections.Find(static c => !c.AllowsStreams);
                if (closedToStreams is null && (_connections.Count == 0 || options.EnableMultipleHttp2Connections || _connecting is not null))
                {
                    wait = _connecting ??= ConnectAsync();
                }
                else
                {
                    wait = (closedToStreams ?? _connections[0]).CapacityChanged();
                }
            }

            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<Http2Connection> ConnectAsync()
    {
        await Task.Yield(); // run outside the caller's lock
        try
        {
            var connection = await Http2Connection.ConnectAsync(address, options, CancellationToken.None).ConfigureAwait(false);
            lock (_sync)
            {
                _connecting = null;
                if (!_disposed)
                {
                    _connections.Add(connection);
                    return connection;
                }
            }

            connection.Dispose();
            throw new ObjectDisposedException(nameof(Http2Handler));
        }
        catch
        {
            lock (_sync)
            {
                _connecting = null;
            }

            throw;
        }
    }
}
