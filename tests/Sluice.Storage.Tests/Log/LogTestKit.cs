using System.Text;
using Sluice.Storage.Log;

namespace Sluice.Storage.Tests.Log;

/// <summary>Small builders shared by the commit log tests.</summary>
internal static class LogTestKit
{
    public static LogRecord Rec(string? value, string? key = null, long timestamp = 0, long epoch = 0, long offset = 0, params (string Name, string Value)[] headers) => new()
    {
        Offset = offset,
        Timestamp = timestamp,
        LeaderEpoch = epoch,
        Key = key is null ? (ReadOnlyMemory<byte>?)null : Encoding.UTF8.GetBytes(key),
        Value = value is null ? (ReadOnlyMemory<byte>?)null : Encoding.UTF8.GetBytes(value),
        Headers = headers.Length == 0 ? null : headers.Select(h => new RecordHeader(h.Name, Encoding.UTF8.GetBytes(h.Value))).ToArray(),
    };

    public static string? Text(ReadOnlyMemory<byte>? bytes) => bytes is { } b ? Encoding.UTF8.GetString(b.Span) : null;

    /// <summary>A detached copy of a record read from the log.</summary>
    public sealed record Stored(long Offset, long Timestamp, long Epoch, string? Key, string? Value, string Headers);

    public static Stored Copy(in LogRecord r) => new(
        r.Offset,
        r.Timestamp,
        r.LeaderEpoch,
        Text(r.Key),
        Text(r.Value),
        string.Join(",", (r.Headers ?? []).Select(h => h.Name + "=" + Encoding.UTF8.GetString(h.Value.Span))));

    /// <summary>Every record from <paramref name="from"/> to the end, via forward reads of <paramref name="maxBytes"/>.</summary>
    public static List<Stored> ReadAll(CommitLog log, long from = 0, int maxBytes = 64 * 1024, long lastOffset = long.MaxValue)
    {
        var result = new List<Stored>();
        var offset = from;
        while (true)
        {
            using var batch = log.Read(offset, maxBytes, lastOffset);
            if (batch.IsEmpty)
            {
                return result;
            }

            foreach (var r in batch.Records)
            {
                result.Add(Copy(r));
            }

            offset = batch.NextOffset;
        }
    }

    public static CommitLogOptions Small(long segmentBytes = 1024) => CommitLogOptions.Default with
    {
        SegmentMaxBytes = segmentBytes,
        IndexIntervalBytes = 128,
        RetentionMaxAge = TimeSpan.Zero,
        FileHandles = new Sluice.Storage.Log.Files.FileHandleBudget(64),
    };

    public static long[] AppendValues(CommitLog log, int count, int from = 0, string? key = null, long timestampStep = 0)
    {
        var offsets = new long[count];
        for (var i = 0; i < count; i++)
        {
            offsets[i] = log.Append([Rec($"v{from + i}", key, timestamp: (from + i) * timestampStep)]);
        }

        return offsets;
    }
}

/// <summary>A clock the test moves by hand (timers are not needed by the tests that use it).</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private DateTimeOffset _now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;

    public long NowNanos => (_now - DateTimeOffset.UnixEpoch).Ticks * 100;
}
