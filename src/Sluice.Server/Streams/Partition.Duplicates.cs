using Microsoft.Extensions.Logging;
using Sluice.Storage.Log;

namespace Sluice.Server.Streams;

/// <summary>The partition's side of idempotent publishing (<see cref="DuplicateWindow"/>): a few calls from the append path.</summary>
internal sealed partial class Partition
{
    private DuplicateWindow? _duplicates;

    /// <summary>The window of message ids, or null when <c>streams.duplicate.window</c> is 0.</summary>
    internal DuplicateWindow? Duplicates => _duplicates;

    /// <summary>
    /// (Re)reads the window from <paramref name="log"/>. Call it before the partition takes publishes as
    /// leader: <see cref="Open"/> does; the cluster layer calls it when this broker becomes the leader of a
    /// partition it followed (a follower's appends do not go through the window).
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
            _duplicates.RebuildFrom(log);
        }
        catch (Exception ex) when (ex is CommitLogException or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            // Appends and subscribers will meet the same damage; the window starts empty and says so.
            LogWindowRebuildFailed(_logger, ex, Stream.Name, Id);
        }
    }

    /// <summary>Takes repeats out of the batch before it is stamped and appended; <see cref="SettleRepeats"/> answers them.</summary>
    private int DropRepeats(PublishItem[] items, int n, long now) => _duplicates?.Filter(items, n, now) ?? n;

    /// <summary>After a successful append: remembers the batch's ids.</summary>
    private void RememberIds(PublishItem[] items, int n, long first, long timestamp) => _duplicates?.Record(items, n, first, timestamp);

    /// <summary>After every append attempt (also a failed one): acks the repeats of this batch.</summary>
    private void SettleRepeats(CommitLog log) => _duplicates?.Settle(this, log.HighWatermark);

    [LoggerMessage(Level = LogLevel.Error, Message = "Reading message ids of {Stream}/{Partition} back into its duplicate window failed; repeats of messages published before now may be stored twice")]
    private static partial void LogWindowRebuildFailed(ILogger logger, Exception exception, string stream, int partition);
}
