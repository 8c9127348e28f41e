using Microsoft.Extensions.Logging;
using Sluice.Client.Grpc;

namespace Sluice.Client.Connections;

/// <summary>
/// The client's link to one broker: a gRPC channel (a small pool of HTTP/2 connections) and the
/// broker's long-lived PublishAsync stream, reopened when it breaks.
/// </summary>
internal sealed class BrokerConnection : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private readonly TimeSpan _ackWaitTime;
    private readonly ILogger _logger;
    private readonly Action<List<PendingAck>, Exception>? _resend;
    private readonly Action<PublishSession, List<(string Stream, int Partition)>>? _silent;
    private PublishSession? _session;
    private bool _disposed;

    /// <summary>
    /// Opens the channel; <paramref name="resend"/> gets the messages a broken publish stream leaves unacknowledged that
    /// may be sent again, and <paramref name="silent"/> hears of a publish stream whose broker has stopped answering.
    /// </summary>
    public BrokerConnection(string address, Uri uri, GrpcChannelOptions options, TimeSpan ackWaitTime, ILogger logger, Action<List<PendingAck>, Exception>? resend = null,
        Action<PublishSession, List<(string Stream, int Partition)>>? silent = null)
    {
        _resend = resend;
        _silent = silent;
        Address = address;
        Channel = new GrpcChannel(uri, options);
        _ackWaitTime = ackWaitTime;
        _logger = logger;
    }

    /// <summary>"host:port".</summary>
    public string Address { get; }

    public GrpcChannel Channel { get; }

    /// <summary>The current publish stream, opening a new one if there is none or it broke.</summary>
    public PublishSession GetPublishSession()
    {
        var session = _session;
        if (session is { IsBroken: false })
        {
            return session;
        }

        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_session is { IsBroken: false } current)
            {
                return current;
            }

            var broken = _session;
            _session = new PublishSession(Channel, Address, _ackWaitTime, _logger, _resend, _silent);
            if (broken is not null)
            {
                // While a broker is down every attempt opens a stream that breaks at once: say so once per outage (a
                // stream that had worked), not once per attempt.
                _logger.Log(broken.Answered ? LogLevel.Information : LogLevel.Debug, "Reopened the publish stream to {Address}", Address);
                _ = broken.DisposeAsync().AsTask(); // already failed; releasing it needs no waiting
            }

            return _session;
        }
    }

    public async ValueTask DisposeAsync()
    {
        PublishSession? session;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            session = _session;
            _session = null;
        }

        if (session is not null)
        {
            await session.CloseAsync(_ackWaitTime).ConfigureAwait(false);
        }

        Channel.Dispose();
    }
}
