namespace Sluice.Storage.Log;

/// <summary>
/// A forward cursor over a log for one subscriber: each <see cref="ReadAsync"/> returns the next
/// non-empty batch, waiting (without polling) for new records or, for a committed reader, for the
/// high watermark to pass them. Not thread-safe: one consumer per reader.
/// Ends with <see cref="CommitLogClosedException"/> or <see cref="CommitLogDeletedException"/>
/// when the log goes away.
/// </summary>
public sealed class LogReader
{
    private readonly CommitLog _log;

    internal LogReader(CommitLog log, long startOffset, bool committed)
    {
        _log = log;
        NextOffset = startOffset;
        Committed = committed;
    }

    /// <summary>Offset the next read starts at.</summary>
    public long NextOffset { get; private set; }

    /// <summary>True when the reader stops at the high watermark (subscriptions); false to read to the log end (replication).</summary>
    public bool Committed { get; }

    /// <summary>The next records, at most <paramref name="maxBytes"/> (at least one record). Dispose the batch when done.</summary>
    public async ValueTask<RecordBatch> ReadAsync(int maxBytes, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBytes);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = _log.Read(NextOffset, maxBytes, Committed ? _log.HighWatermark : long.MaxValue);
            NextOffset = batch.NextOffset;
            if (!batch.IsEmpty)
            {
                return batch;
            }

            batch.Dispose();
            await _log.WaitForOffsetAsync(NextOffset, Committed, cancellationToken).ConfigureAwait(false);
        }
    }
}
