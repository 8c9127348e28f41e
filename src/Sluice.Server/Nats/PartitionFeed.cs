using Microsoft.Extensions.Logging;
using Sluice.Nats;
using Sluice.Server.Streams;

namespace Sluice.Server.Nats;

/// <summary>
/// One open partition's NATS subscription (Liftbridge: QueueSubscribe(partitionSubject, group)) and the loop
/// that hands its messages to the partition. Created when the partition opens; disposed (unsubscribed)
/// when it pauses, is deleted or the server stops. Sluice.Nats re-subscribes it after a reconnect.
/// </summary>
internal sealed partial class PartitionFeed : IAsyncDisposable
{
    private readonly NatsAttachment _owner;
    private readonly Partition _partition;
    private readonly NatsSubscription _subscription;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public PartitionFeed(NatsAttachment owner, Partition partition, NatsSubscription subscription, ILogger logger)
    {
        _owner = owner;
        _partition = partition;
        _subscription = subscription;
        _loop = Task.Run(() => RunAsync(logger), CancellationToken.None);
    }

    /// <summary>The NATS subject (may hold wildcards).</summary>
    public string Subject => _subscription.Subject;

    /// <summary>The queue group, or null for a plain (fan-out) subscription.</summary>
    public string? QueueGroup => _subscription.QueueGroup;

    private async Task RunAsync(ILogger logger)
    {
        var reader = _subscription.Msgs;
        var token = _stop.Token;
        try
        {
            while (await reader.WaitToReadAsync(token).ConfigureAwait(false))
            {
                while (reader.TryRead(out var msg))
                {
                    await _owner.IngestAsync(_partition, msg, token).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // Unsubscribed: what is left in the buffer is dropped, as a Liftbridge partition that stops subscribing.
        }
        catch (Exception ex)
        {
            LogFeedFailed(logger, ex, _partition.Stream.Name, _partition.Id);
        }
    }

    /// <summary>Unsubscribes, then stops the loop (a message being queued finishes first).</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _subscription.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NatsException or ObjectDisposedException)
        {
            // The connection is gone: the server forgot the subscription with it.
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "NATS feed of {Stream}/{Partition} stopped")]
    private static partial void LogFeedFailed(ILogger logger, Exception exception, string stream, int partition);
}
