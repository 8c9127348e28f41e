using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using Sluice.Server.Streams;

namespace Sluice.Server.Nats;

/// <summary>
/// One open partition's NATS subscription (Liftbridge: QueueSubscribe(partitionSubject, group)) and the loop
/// that hands its messages to the partition. Created when the partition opens; disposed (unsubscribed)
/// when it pauses, is deleted or the server stops. NATS.Net re-subscribes it after a reconnect.
/// </summary>
internal sealed partial class PartitionFeed : IAsyncDisposable
{
    private readonly NatsAttachment _owner;
    private readonly Partition _partition;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task<INatsSub<byte[]>> _subscribe;
    private readonly Task _loop;

    /// <summary>
    /// Starts the subscription. Connected, NATS.Net writes the SUB before this returns; while it reconnects,
    /// the subscription completes once it is back, so opening a partition never waits for NATS.
    /// </summary>
    public PartitionFeed(NatsAttachment owner, Partition partition, string? queueGroup, ILogger logger)
    {
        _owner = owner;
        _partition = partition;
        Subject = partition.Subject;
        QueueGroup = queueGroup;
        // The raw serializer hands over the payload bytes untouched (a bare NatsConnection has no JSON fallback anyway).
        _subscribe = owner.Connection.SubscribeCoreAsync(Subject, queueGroup, NatsRawSerializer<byte[]>.Default, cancellationToken: _stop.Token).AsTask();
        _loop = Task.Run(() => RunAsync(logger), CancellationToken.None);
    }

    /// <summary>The NATS subject (may hold wildcards).</summary>
    public string Subject { get; }

    /// <summary>The queue group, or null for a plain (fan-out) subscription.</summary>
    public string? QueueGroup { get; }

    /// <summary>Completes when the SUB is written (or the subscription failed or was given up).</summary>
    public Task Subscribed => _subscribe.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    private async Task RunAsync(ILogger logger)
    {
        var token = _stop.Token;
        INatsSub<byte[]> subscription;
        try
        {
            subscription = await _subscribe.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            return; // closed before NATS came back
        }
        catch (Exception ex)
        {
            LogSubscribeFailed(logger, ex, _partition.Stream.Name, _partition.Id, Subject);
            return;
        }

        try
        {
            var reader = subscription.Msgs;
            while (await reader.WaitToReadAsync(token).ConfigureAwait(false))
            {
                while (reader.TryRead(out var msg))
                {
                    // More already buffered: queue for the partition's writer, which appends the burst as one batch.
                    await _owner.IngestAsync(_partition, msg, moreComing: reader.Count > 0, token).ConfigureAwait(false);
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
        finally
        {
            try
            {
                await subscription.DisposeAsync().ConfigureAwait(false); // UNSUB
            }
            catch (Exception ex) when (ex is NatsException or ObjectDisposedException or OperationCanceledException)
            {
                // The connection is gone: the server forgot the subscription with it.
            }
        }
    }

    /// <summary>Stops the loop (a message being queued is given up) and unsubscribes.</summary>
    public async ValueTask DisposeAsync()
    {
        _owner.Detached(this);
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "NATS feed of {Stream}/{Partition} stopped")]
    private static partial void LogFeedFailed(ILogger logger, Exception exception, string stream, int partition);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not subscribe {Stream}/{Partition} to NATS subject {Subject}")]
    private static partial void LogSubscribeFailed(ILogger logger, Exception exception, string stream, int partition, string subject);
}
