using Microsoft.Extensions.Logging;
using Sluice.Storage.Log;

namespace Sluice.Server.Streams;

/// <summary>The partition's side of idempotent publishing (<see cref="DuplicateWindow"/>): a few calls from the append path.</summary>
internal sealed partial class Partition
{
    private DuplicateWindow? _duplicates;

    /// <summary>The window of message ids, or null when <c>streams.duplicate.window</c> is 0.</summary>
    internal DuplicateWindow? Duplicates => _duplicates;

    private int _windowRebuilds;

    /// <summary>How many times the duplicate window was read back from the log (for tests: a promotion should not need it).</summary>
    internal int WindowRebuilds => Volatile.Read(ref _windowRebuilds);

    /// <summary>
    /// (Re)reads the window from <paramref name="log"/>. Call it before the partition takes publishes as
    /// leader: <see cref="Open"/> does unless a follower kept the window up to date
    /// (<see cref="PrepareWindowAsFollower"/>, <see cref="RememberReplicated"/>).
    /// </summary>
    internal void RebuildDuplicateWindow(BrokerContext context, CommitLog log)
    {
        var window = context.Options.Streams.DuplicateWindow;
        if (window <= TimeSpan.Zero)
        {
            _duplicates = null;
            return;
        }

        _duplicates ??= new DuplicateWindow(window);
        try
        {
            Interlocked.Increment(ref _windowRebuilds);
            _duplicates.RebuildFrom(log);
        }
        catch (Exception ex) when (ex is CommitLogException or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            // Appends and subscribers will meet the same damage; the window starts empty and says so.
            LogWindowRebuildFailed(_logger, ex, Stream.Name, Id);
        }
    }

    /// <summary>
    /// A follower, before it fetches: reads the ids of its copy into the window, off any publish path, and then
    /// keeps it up to date with <see cref="RememberReplicated"/>, so taking the lead needs no reading back.
    /// </summary>
    internal void PrepareWindowAsFollower(BrokerContext context, CommitLog log)
    {
        if (_duplicates?.Reflects(log.NewestOffset) != true)
        {
            RebuildDuplicateWindow(context, log);
        }
    }

    /// <summary>A follower wrote these records: their ids join the window.</summary>
    internal void RememberReplicated(ReadOnlySpan<LogRecord> records) => _duplicates?.RecordReplicated(records);

    /// <summary>Takes repeats out of the batch before it is stamped and appended; <see cref="SettleRepeats"/> answers them.</summary>
    private int DropRepeats(PublishItem[] items, int n, long now) => _duplicates?.Filter(items, n, now) ?? n;

    /// <summary>After a successful append: remembers the batch's ids.</summary>
    private void RememberIds(PublishItem[] items, int n, long first, long timestamp) => _duplicates?.Record(items, n, first, timestamp);

    /// <summary>After every append attempt (also a failed one): acks the repeats of this batch.</summary>
    private void SettleRepeats(CommitLog log) => _duplicates?.Settle(this, log.HighWatermark);

    [LoggerMessage(Level = LogLevel.Error, Message = "Reading message ids of {Stream}/{Partition} back into its duplicate window failed; repeats of messages published before now may be stored twice")]
    private static partial void LogWindowRebuildFailed(ILogger logger, Exception exception, string stream, int partition);
}
