// Failure policy: reads never change the log. An I/O error or a record failing its CRC throws
// (CorruptLogException names the file, position and offset); a segment replaced or deleted under
// a reader (compaction, retention, truncation) is retried on the new segment list.
using Sluice.Storage.Log.Files;
using Sluice.Storage.Log.Segments;

namespace Sluice.Storage.Log;

public sealed partial class CommitLog
{
    // A reader racing segment replacement retries; more than this many replacements in a row means something is wrong.
    private const int MaxRetries = 1000;

    /// <summary>
    /// Reads forward from <paramref name="offset"/>: the records with offsets in
    /// [offset, <paramref name="lastOffset"/>], at most <paramref name="maxBytes"/> of them
    /// (always at least one record when one exists), from one segment. An offset below the
    /// oldest record starts at the oldest; gaps left by compaction are skipped. An empty batch
    /// means nothing is there yet; its <see cref="RecordBatch.NextOffset"/> says where to wait.
    /// </summary>
    public RecordBatch Read(long offset, int maxBytes, long lastOffset = long.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBytes);
        for (var attempt = 0; ; attempt++)
        {
            ThrowIfNotOpen();
            var next = Volatile.Read(ref _nextOffset);
            var segments = Volatile.Read(ref _segments);
            try
            {
                for (var i = FindSegment(segments, offset); i < segments.Length; i++)
                {
                    var batch = segments[i].Read(offset, maxBytes, lastOffset);
                    if (batch is not null)
                    {
                        return batch;
                    }
                }

                var bound = lastOffset == long.MaxValue ? next : Math.Min(next, lastOffset + 1);
                return RecordBatch.Empty(Math.Max(offset, bound));
            }
            catch (FileRetiredException) when (attempt < MaxRetries)
            {
            }
        }
    }

    /// <summary>
    /// Reads backwards: the records at or below <paramref name="startOffset"/>, newest first, at most
    /// <paramref name="maxBytes"/> (at least one). Continue with <see cref="RecordBatch.NextOffset"/> (-1 = done).
    /// </summary>
    public RecordBatch ReadReverse(long startOffset, int maxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(startOffset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBytes);
        return WithSegments(segments =>
        {
            for (var i = FindSegment(segments, startOffset); i >= 0; i--)
            {
                var batch = segments[i].ReadReverse(startOffset, maxBytes);
                if (batch is not null)
                {
                    return batch;
                }
            }

            return RecordBatch.Empty(-1);
        });
    }

    /// <summary>A cursor for a subscriber (<paramref name="committed"/> = stop at the high watermark) or a replica (read to the end).</summary>
    public LogReader CreateReader(long startOffset, bool committed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(startOffset);
        ThrowIfNotOpen();
        return new LogReader(this, startOffset, committed);
    }

    /// <summary>
    /// Completes when <see cref="NewestOffset"/> (or, if <paramref name="committed"/>, <see cref="HighWatermark"/>)
    /// reaches <paramref name="offset"/>. Throws when the log is closed or deleted, or on cancellation.
    /// </summary>
    public ValueTask WaitForOffsetAsync(long offset, bool committed = false, CancellationToken cancellationToken = default)
    {
        ThrowIfNotOpen();
        return Reached(offset, committed) ? default : WaitSlowAsync(offset, committed, cancellationToken);
    }

    private bool Reached(long offset, bool committed) =>
        (committed ? Volatile.Read(ref _highWatermark) : Volatile.Read(ref _nextOffset) - 1) >= offset;

    private async ValueTask WaitSlowAsync(long offset, bool committed, CancellationToken cancellationToken)
    {
        while (true)
        {
            var changed = _signal.Observe();
            ThrowIfNotOpen();
            if (Reached(offset, committed))
            {
                return;
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Offset of the first record with a timestamp at or after <paramref name="timestamp"/>; <see cref="NextOffset"/> when none.</summary>
    public long EarliestOffsetAfterTimestamp(long timestamp) => WithSegments(segments =>
    {
        foreach (var segment in segments)
        {
            var offset = segment.FindFirstAtOrAfter(timestamp);
            if (offset >= 0)
            {
                return offset;
            }
        }

        return NextOffset;
    });

    /// <summary>Offset of the last record with a timestamp at or before <paramref name="timestamp"/> (timestamps taken as non-decreasing).</summary>
    /// <exception cref="OffsetNotFoundException">No record is that old.</exception>
    public long LatestOffsetBeforeTimestamp(long timestamp) => WithSegments(segments =>
    {
        long previous = -1;
        foreach (var segment in segments)
        {
            if (segment.RecordCount == 0)
            {
                continue;
            }

            var (offset, bounded) = segment.FindLastAtOrBefore(timestamp);
            if (bounded)
            {
                previous = offset >= 0 ? offset : previous;
                break;
            }

            previous = offset;
        }

        return previous >= 0
            ? previous
            : throw new OffsetNotFoundException($"No record in '{Directory}' has a timestamp at or before {timestamp}.");
    });

    private T WithSegments<T>(Func<Segment[], T> action)
    {
        for (var attempt = 0; ; attempt++)
        {
            ThrowIfNotOpen();
            try
            {
                return action(Volatile.Read(ref _segments));
            }
            catch (FileRetiredException) when (attempt < MaxRetries)
            {
            }
        }
    }

    /// <summary>Index of the last segment whose base offset is at or below <paramref name="offset"/> (0 when none is).</summary>
    private static int FindSegment(Segment[] segments, long offset)
    {
        int lo = 0, hi = segments.Length - 1, found = 0;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            if (segments[mid].BaseOffset <= offset)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return found;
    }
}
