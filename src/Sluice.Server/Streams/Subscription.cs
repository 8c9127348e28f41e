using Sluice.Protocol.Api;
using Sluice.Storage.Log;

namespace Sluice.Server.Streams;

/// <summary>
/// One subscriber reading one partition: resolves the start and stop offsets (Liftbridge §3.9),
/// sends the handshake frame, then streams committed records (≤ HW) as proto.Messages (<see cref="RecordMessage"/>),
/// waiting for new data without polling. Ends by returning (reverse reached offset 0) or throwing
/// a <see cref="BrokerException"/> that names the terminal status.
/// </summary>
internal sealed class Subscription
{
    /// <summary>Bytes per read: big enough to amortise the read, small enough to keep a slow subscriber's memory modest.</summary>
    private const int ReadChunkBytes = 256 * 1024;

    private readonly Broker _broker;
    private readonly SubscribeRequest _request;

    public Subscription(Broker broker, SubscribeRequest request)
    {
        _broker = broker;
        _request = request;
    }

    /// <summary>
    /// Validates and resolves, sends the handshake, then streams until an end or cancellation.
    /// <paramref name="send"/> takes a message and whether to flush; it must have serialized the
    /// message when its task completes, because record bytes are lent to the message, not copied.
    /// <paramref name="flush"/> pushes out what earlier non-flushing sends buffered.
    /// </summary>
    public async Task RunAsync(Func<RecordMessage, bool, ValueTask> send, Func<ValueTask> flush, CancellationToken cancellationToken)
    {
        var request = _request;
        if (request.Consumer is { } consumer && consumer.ConsumerId.Length == 0)
        {
            throw new InvalidRequestException("Consumer id cannot be empty when group id is provided");
        }

        if (!_broker.TryGetStream(request.Stream, out var stream) || !stream.TryGetPartition(request.Partition, out var partition))
        {
            throw new NotFoundException("No such partition");
        }

        if (request.StartPosition is < StartPosition.NewOnly or > StartPosition.Timestamp)
        {
            throw new InvalidRequestException($"Unknown StartPosition {(int)request.StartPosition}");
        }

        if (request.StopPosition is < StopPosition.StopOnCancel or > StopPosition.StopTimestamp)
        {
            throw new InvalidRequestException($"Unknown StopPosition {(int)request.StopPosition}");
        }

        // Counted from here on, so auto-pause (disable-if-subscribers) sees this subscriber while it resolves.
        partition.AddSubscriber();
        try
        {
            await RunAsync(partition, send, flush, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            partition.RemoveSubscriber();
        }
    }

    private async Task RunAsync(Partition partition, Func<RecordMessage, bool, ValueTask> send, Func<ValueTask> flush, CancellationToken cancellationToken)
    {
        var request = _request;
        partition.ThrowIfOffline();
        if (partition.IsPaused)
        {
            if (!request.Resume)
            {
                throw new PreconditionFailedException("Partition is paused; subscribe with resume=true to resume it");
            }

            try
            {
                await _broker.ResumeAsync(partition, cancellationToken).ConfigureAwait(false);
            }
            catch (BrokerException ex)
            {
                throw new BrokerInternalException($"Failed to resume stream: {ex.Message}", ex);
            }
        }

        ReadSource source;
        if (partition.Runtime is { } runtime)
        {
            source = new ReadSource(runtime.Log, () => partition.Runtime == runtime, () => Ended(partition, runtime));
        }
        else if (request.ReadISRReplica && partition.FollowerLog is { } followed)
        {
            // A follower serves what it has up to its own high watermark, which trails the leader's.
            source = new ReadSource(followed, () => partition.FollowerLog == followed, () => new PartitionUnavailableException($"this server no longer follows partition {partition.Id} of stream {partition.Stream.Name}"));
        }
        else if (partition.Leadership is { } leadership && !partition.IsPaused)
        {
            if (leadership.Leader == _broker.ServerId || (request.ReadISRReplica && leadership.Isr.Contains(_broker.ServerId)))
            {
                // The metadata already says this server serves it; the log opens in a moment (a hand-back, a
                // failover). UNAVAILABLE: clients try again, where "not leader" would send them elsewhere or stop them.
                throw new PartitionUnavailableException($"partition {partition.Id} of stream {partition.Stream.Name} is opening on this server; try again");
            }

            // Liftbridge's answer; clients look the leader up again and resubscribe there.
            throw new PreconditionFailedException(leadership.Leader.Length == 0 ? "Partition has no leader" : "Server not partition leader");
        }
        else
        {
            throw Ended(partition, null);
        }

        var log = source.Log;
        if (request.Reverse)
        {
            await send(RecordMessage.Handshake, true).ConfigureAwait(false); // quirk 15: the handshake frame
            await ReverseAsync(partition, log, send, flush, cancellationToken).ConfigureAwait(false);
            return;
        }

        long start;
        long stop;
        try
        {
            start = StartOffset(log);
            stop = StopOffset(partition, log);
        }
        catch (ObjectDisposedException)
        {
            throw source.Ended();
        }
        catch (CommitLogException ex) when (ex is CommitLogClosedException or CommitLogDeletedException)
        {
            throw source.Ended();
        }

        if (stop >= 0 && stop < start)
        {
            throw new InvalidRequestException($"Stop offset is before start offset: {stop} < {start}");
        }

        await send(RecordMessage.Handshake, true).ConfigureAwait(false); // quirk 15: the handshake frame
        await ForwardAsync(partition, source, start, stop, send, flush, cancellationToken).ConfigureAwait(false);
    }

    private long StartOffset(CommitLog log)
    {
        var hw = log.HighWatermark;
        long start = _request.StartPosition switch
        {
            // Quirk 7 (kept) only past the end of the log: a start between the HW and the log end (a new leader whose
            // HW has not caught up) is kept, and the reader waits for the HW to pass it, so a resubscriber sees no repeats.
            StartPosition.Offset => _request.StartOffset > log.NewestOffset + 1 ? hw + 1 : _request.StartOffset,
            StartPosition.Earliest => log.OldestOffset,
            StartPosition.Latest => log.NewestOffset,
            StartPosition.Timestamp => log.EarliestOffsetAfterTimestamp(_request.StartTimestamp),
            _ => log.NewestOffset + 1,
        };
        return Math.Max(0, start);
    }

    private long StopOffset(Partition partition, CommitLog log)
    {
        switch (_request.StopPosition)
        {
            case StopPosition.StopOffset:
                return _request.StopOffset;
            case StopPosition.StopLatest:
                return log.NewestOffset >= 0 ? log.NewestOffset : throw new SubscriptionExhaustedException("Stream is empty");
            case StopPosition.StopTimestamp:
                try
                {
                    return log.LatestOffsetBeforeTimestamp(_request.StopTimestamp);
                }
                catch (OffsetNotFoundException ex)
                {
                    // Liftbridge's text; the storage message names the partition's directory, which clients must not see.
                    throw new BrokerInternalException("Failed to lookup offset for timestamp: timestamp is before the beginning of the log", ex);
                }

            default:
                // A readonly partition never grows: stop at its end (Liftbridge: stopOffset = NewestOffset).
                return partition.IsReadonly && log.NewestOffset >= 0 ? log.NewestOffset : -1;
        }
    }

    private static async Task ForwardAsync(Partition partition, ReadSource source, long start, long stop, Func<RecordMessage, bool, ValueTask> send, Func<ValueTask> flush, CancellationToken cancellationToken)
    {
        var streamName = partition.Stream.NameUtf8;
        var log = source.Log;
        var reader = log.CreateReader(start, committed: true);
        while (true)
        {
            if (partition.IsReadonly && reader.NextOffset > log.HighWatermark)
            {
                throw new SubscriptionExhaustedException("End of readonly partition");
            }

            RecordBatch batch;
            var stateChanged = partition.StateChanged;
            using (var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stateChanged))
            {
                try
                {
                    batch = await reader.ReadAsync(ReadChunkBytes, linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && stateChanged.IsCancellationRequested)
                {
                    if (!source.IsCurrent())
                    {
                        throw source.Ended();
                    }

                    continue; // readonly changed: re-check the end
                }
                catch (CommitLogException ex) when (ex is CommitLogClosedException or CommitLogDeletedException)
                {
                    throw source.Ended();
                }
                catch (ObjectDisposedException)
                {
                    throw source.Ended();
                }
            }

            long sent = 0;
            long bytes = 0;
            try
            {
                using (batch)
                {
                    for (var i = 0; i < batch.Count; i++)
                    {
                        var record = batch[i];
                        if (stop >= 0 && record.Offset > stop)
                        {
                            throw new SubscriptionExhaustedException("Stop offset reached");
                        }

                        await send(ToMessage(partition, streamName, record), false).ConfigureAwait(false);
                        sent++;
                        bytes += (record.Key?.Length ?? 0) + (record.Value?.Length ?? 0);
                        if (record.Offset == stop)
                        {
                            throw new SubscriptionExhaustedException("Stop offset reached");
                        }
                    }
                }
            }
            finally
            {
                partition.Traffic.AddOut(sent, bytes); // once per read batch, not per message
            }

            await flush().ConfigureAwait(false); // one flush per read batch, before waiting for more
        }
    }

    /// <summary>Quirk 8 (fixed): a reverse subscription walks from the HW down to offset 0 and ends with OK.</summary>
    private static async Task ReverseAsync(Partition partition, CommitLog log, Func<RecordMessage, bool, ValueTask> send, Func<ValueTask> flush, CancellationToken cancellationToken)
    {
        var streamName = partition.Stream.NameUtf8;
        var next = log.HighWatermark;
        while (next >= 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            RecordBatch batch;
            try
            {
                batch = log.ReadReverse(next, ReadChunkBytes);
            }
            catch (CommitLogException ex) when (ex is CommitLogClosedException or CommitLogDeletedException)
            {
                throw Ended(partition, partition.Runtime);
            }

            using (batch)
            {
                if (batch.IsEmpty)
                {
                    return;
                }

                long bytes = 0;
                for (var i = 0; i < batch.Count; i++)
                {
                    var record = batch[i];
                    await send(ToMessage(partition, streamName, record), false).ConfigureAwait(false);
                    bytes += (record.Key?.Length ?? 0) + (record.Value?.Length ?? 0);
                }

                partition.Traffic.AddOut(batch.Count, bytes);

                await flush().ConfigureAwait(false);
                next = batch.NextOffset;
            }
        }
    }

    // Liftbridge's texts for a deleted and a paused (closed) commit log, so clients that show or match them see the same.
    private static BrokerException Ended(Partition partition, PartitionRuntime? runtime) => runtime?.Reason switch
    {
        PartitionCloseReason.Deleted => new PartitionDeletedException("commit log was deleted"),
        PartitionCloseReason.Paused => new PartitionPausedException("commit log was closed"),
        // One node: Liftbridge's INTERNAL. A cluster: UNAVAILABLE, the status Liftbridge's clients resubscribe on (to the
        // next leader); a real Liftbridge node closes the connection first, which clients see as UNAVAILABLE too.
        PartitionCloseReason.Stopping when partition.Leadership is not null => new PartitionUnavailableException("Server is shutting down"),
        PartitionCloseReason.Stopping => new BrokerInternalException("Server is shutting down"),
        PartitionCloseReason.LeadershipLost => new PartitionUnavailableException($"this server no longer leads partition {partition.Id} of stream {partition.Stream.Name}"),
        _ when partition.IsPaused => new PartitionPausedException("commit log was closed"),
        _ when partition.OfflineReason is { } reason => new PartitionUnavailableException($"partition {partition.Id} of stream {partition.Stream.Name} is offline: {reason}"),
        _ => new BrokerInternalException("The partition's log is closed"),
    };

    /// <summary>The log a subscription reads (the leader's, or with readISRReplica a follower's), whether it is still the one serving, and how it ended.</summary>
    private sealed record ReadSource(CommitLog Log, Func<bool> IsCurrent, Func<BrokerException> Ended);

    private static RecordMessage ToMessage(Partition partition, byte[] streamName, in LogRecord record) =>
        new(streamName, partition.Id, record, partition.OpenValue(record)); // encrypted: a fresh array from the cipher
}
