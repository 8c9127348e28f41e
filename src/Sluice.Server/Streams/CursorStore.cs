using System.Text;
using Google.Protobuf;
using Sluice.Protocol.Hashing;
using Sluice.Protocol.Internal;

namespace Sluice.Server.Streams;

/// <summary>
/// Cursors (stored consumer offsets) in the compacted internal stream <c>__cursors</c>: key
/// <c>"cursorId,stream,partition"</c>, partition <c>crc32(key) % N</c>, value a <see cref="Cursor"/>
/// record. Reads go through an LRU cache, then a reverse scan of the cursor's partition.
/// </summary>
/// <remarks>
/// The partition count is the stream's: <c>cursors.stream.partitions</c> when the server created it, or
/// <see cref="PartitionsForGroups"/> when consumer groups turned cursors on.
/// </remarks>
internal sealed class CursorStore(Broker broker)
{
    /// <summary>Partitions of a cursors stream that consumer groups created: a group writes a cursor per partition every few seconds, which one partition carries.</summary>
    public const int PartitionsForGroups = 1;

    /// <summary>Liftbridge's cache size.</summary>
    private const int CacheCapacity = 512;

    /// <summary>Reverse scans read this much per step: cursor records are ~50 bytes, so one step covers thousands.</summary>
    private const int ScanChunkBytes = 256 * 1024;

    private readonly Lock _cacheLock = new();
    private readonly Dictionary<string, LinkedListNode<(string Key, long Offset)>> _cache = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Key, long Offset)> _lru = new();

    /// <summary>How the .NET client names a consumer group's cursors: this prefix and the group id.</summary>
    public const string GroupCursorPrefix = "__group:";

    /// <summary>
    /// The one lag rule (metrics, admin API, CLI, console): messages committed past a cursor, which stores the last offset
    /// handled. Kafka's log end offset minus committed offset is the same number, as both count one past. A cursor below 0
    /// (none stored yet) has no lag, as Kafka shows "-": where the reader starts depends on its reset policy.
    /// </summary>
    public static long? Lag(long highWatermark, long cursor) => cursor < 0 ? null : Math.Max(0, highWatermark - cursor);

    public bool Enabled => broker.TryGetStream(Broker.CursorsStreamName, out _);

    /// <summary>The cursors this broker stored or read lately (its cache), for the lag metrics.</summary>
    public List<(string CursorId, string Stream, int Partition, long Offset)> Known()
    {
        lock (_cacheLock)
        {
            var known = new List<(string, string, int, long)>(_lru.Count);
            foreach (var (key, offset) in _lru)
            {
                // "cursorId,stream,partition", read from the right: a cursor id may hold commas (a stream name with one is misread).
                var last = key.LastIndexOf(',');
                var middle = last > 0 ? key.LastIndexOf(',', last - 1) : -1;
                if (middle >= 0 && int.TryParse(key.AsSpan(last + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var partition))
                {
                    known.Add((key[..middle], key[(middle + 1)..last], partition, offset));
                }
            }

            return known;
        }
    }

    public static string Key(string cursorId, string stream, int partition) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{cursorId},{stream},{partition}");

    private static int PartitionFor(string key, int partitions) => (int)(Crc32Ieee.Compute(key) % (uint)partitions);

    public async Task SetAsync(string cursorId, string stream, int partition, long offset, CancellationToken cancellationToken)
    {
        var target = CursorsPartition(cursorId, stream, partition, out var key);
        ThrowIfNotLeader(target);
        var record = new Cursor { Stream = stream, Partition = partition, CursorId = cursorId, Offset = offset };
        var ack = await broker.PublishInternalAsync(target, Encoding.UTF8.GetBytes(key), record.ToByteArray(), cancellationToken).ConfigureAwait(false);
        if (ack.AckError != Protocol.Api.Ack.Types.Error.Ok)
        {
            throw new BrokerInternalException($"Failed to store cursor: {ack.AckError}");
        }

        Remember(key, offset);
    }

    public async Task<long> FetchAsync(string cursorId, string stream, int partition, CancellationToken cancellationToken)
    {
        var target = CursorsPartition(cursorId, stream, partition, out var key);
        ThrowIfNotLeader(target);
        lock (_cacheLock)
        {
            if (_cache.TryGetValue(key, out var node))
            {
                _lru.Remove(node);
                _lru.AddFirst(node);
                return node.Value.Offset;
            }
        }

        target.ThrowIfOffline(); // an unknown cursor (-1) would be a wrong answer
        if (target.IsPaused)
        {
            await broker.ResumeAsync(target, cancellationToken).ConfigureAwait(false);
        }

        var log = target.Log;
        if (log is null || log.HighWatermark < 0)
        {
            return -1;
        }

        var keyBytes = Encoding.UTF8.GetBytes(key);
        var next = log.HighWatermark;
        while (next >= 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var batch = log.ReadReverse(next, ScanChunkBytes);
            foreach (var record in batch.Records)
            {
                if (record.Offset <= log.HighWatermark && record.Key is { } k && k.Span.SequenceEqual(keyBytes) && record.Value is { } v)
                {
                    var offset = Cursor.Parser.ParseFrom(v.Span).Offset;
                    Remember(key, offset);
                    return offset;
                }
            }

            next = batch.IsEmpty ? -1 : batch.NextOffset;
        }

        return -1;
    }

    /// <summary>The partition of <c>__cursors</c> that holds this cursor, or null when there is no cursors stream.</summary>
    public Partition? PartitionOf(string cursorId, string stream, int partition) =>
        Enabled ? CursorsPartition(cursorId, stream, partition, out _) : null;

    /// <summary>In a cluster, the leader of the cursors partition answers (Liftbridge's text; clients route there).</summary>
    private static void ThrowIfNotLeader(Partition target)
    {
        if (target.Leadership is not null && target.Runtime is null)
        {
            throw new PreconditionFailedException($"Server not leader for cursors partition {target.Id}");
        }
    }

    /// <summary>Drops cached cursors of a deleted stream (a re-created stream starts without them).</summary>
    public void ForgetStream(string stream)
    {
        var marker = "," + stream + ",";
        lock (_cacheLock)
        {
            foreach (var key in _cache.Keys.Where(k => k.Contains(marker, StringComparison.Ordinal)).ToList())
            {
                _lru.Remove(_cache[key]);
                _cache.Remove(key);
            }
        }
    }

    private Partition CursorsPartition(string cursorId, string stream, int partition, out string key)
    {
        if (!broker.TryGetStream(Broker.CursorsStreamName, out var cursors))
        {
            throw new BrokerInternalException("Cursors stream does not exist");
        }

        key = Key(cursorId, stream, partition);
        return cursors.Partitions[PartitionFor(key, cursors.Partitions.Length)];
    }

    private void Remember(string key, long offset)
    {
        lock (_cacheLock)
        {
            if (_cache.TryGetValue(key, out var node))
            {
                _lru.Remove(node);
                node.Value = (key, offset);
                _lru.AddFirst(node);
                return;
            }

            _cache[key] = _lru.AddFirst((key, offset));
            if (_cache.Count > CacheCapacity)
            {
                var last = _lru.Last!;
                _lru.RemoveLast();
                _cache.Remove(last.Value.Key);
            }
        }
    }
}
