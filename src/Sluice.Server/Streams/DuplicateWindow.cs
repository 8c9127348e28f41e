// Failure policy: the window lives in memory only. It is rebuilt from the log (the records'
// Sluice-Msg-Id headers and timestamps) when the partition opens and when its broker becomes leader,
// so a restart or a failover forgets only ids whose records retention or compaction removed.
// An id counts only once its record is appended: a failed append leaves no trace, and a retry of
// that message is stored.
using System.IO.Hashing;
using System.Runtime.InteropServices;
using Sluice.Protocol.Api;
using Sluice.Storage.Log;

namespace Sluice.Server.Streams;

/// <summary>
/// Idempotent publishing for one partition (its leader): the message ids (header
/// <see cref="HeaderName"/>) seen within the last <c>streams.duplicate.window</c>, each with the
/// offset and timestamp of its first record. A repeat is not appended; it is acked with the first
/// record's offset. Bounded: at most <see cref="DefaultMaxIds"/> (or the given number of) ids, the oldest evicted first.
/// An id is kept as its 128-bit XxHash128: a fixed 16 bytes whatever its length, no string per message,
/// and two different ids of one partition meeting in one window by chance is a 2^-128-scale event.
/// Used under the partition's write gate; <see cref="RebuildFrom"/> takes a lock of its own, so the
/// cluster layer may call it from another thread before the partition takes publishes.
/// </summary>
internal sealed class DuplicateWindow
{
    /// <summary>The header that carries a message id (JetStream calls its own Nats-Msg-Id).</summary>
    public const string HeaderName = "Sluice-Msg-Id";

    /// <summary>Longer ids are refused: an id is a token (a GUID, a hash), not data, and each costs memory for the whole window.</summary>
    public const int MaxIdBytes = 256;

    /// <summary>About 90 bytes each (a map entry, a queue entry, the map's slack): at most ~100 MB for a partition at the cap.</summary>
    public const int DefaultMaxIds = 1_000_000;

    // A rebuild reads the log backwards in chunks of this size: large enough to amortise a read, small
    // enough not to matter next to the log's own buffers.
    private const int RebuildReadBytes = 1024 * 1024;

    private readonly Lock _lock = new();
    private readonly long _windowNanoseconds;
    private readonly int _maxIds;
    private readonly Dictionary<UInt128, Stored> _ids = [];
    private readonly Queue<(UInt128 Id, long Timestamp)> _order = new();

    // Scratch for one append batch (used under the write gate only). Filter enters each new id at once
    // with a pending offset, so a batch costs one cold lookup per id; Record fills the entries in, and
    // Settle removes those whose message was not appended after all.
    private const long Pending = -1;
    private readonly List<UInt128> _placed = [];
    private readonly List<Repeat> _repeats = [];
    private int _recorded;

    /// <summary>
    /// The newest offset whose id the window holds from reading the log or following the leader; long.MinValue once
    /// a leader's appends (or nothing yet) decide it. Under <c>_lock</c>.
    /// </summary>
    private long _reflects = long.MinValue;

    public DuplicateWindow(TimeSpan window, int maxIds = DefaultMaxIds)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(window, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxIds, 1);
        _windowNanoseconds = window.Ticks > long.MaxValue / 100 ? long.MaxValue : window.Ticks * 100;
        _maxIds = maxIds;
    }

    /// <summary>Ids remembered now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _ids.Count;
            }
        }
    }

    /// <summary>Why <paramref name="headers"/>' message id is refused, or null when it is fine (or absent).</summary>
    public static string? InvalidIdReason(IReadOnlyList<RecordHeader> headers)
    {
        foreach (var header in headers)
        {
            if (header.Name == HeaderName && header.Value.Length > MaxIdBytes)
            {
                return $"header {HeaderName} is {header.Value.Length} bytes long; a message id may have at most {MaxIdBytes}";
            }
        }

        return null;
    }

    /// <summary>Throws <see cref="InvalidRequestException"/> when the message id is longer than <see cref="MaxIdBytes"/>.</summary>
    public static void ThrowIfInvalidId(IReadOnlyList<RecordHeader> headers)
    {
        if (InvalidIdReason(headers) is { } reason)
        {
            throw new InvalidRequestException(reason);
        }
    }

    /// <summary>
    /// Forgets everything and reads the ids of the log's records younger than the window, newest first,
    /// stopping at the window's start or at <see cref="DefaultMaxIds"/> (or the given number of) ids. Call it before the partition takes
    /// publishes: when it opens, and when this broker becomes the partition's leader.
    /// </summary>
    public void RebuildFrom(CommitLog log)
    {
        ArgumentNullException.ThrowIfNull(log);
        var since = Partition.NowNanoseconds() - _windowNanoseconds;
        var newest = log.NewestOffset;
        var found = new List<(UInt128 Id, long Offset, long Timestamp)>();
        var index = new Dictionary<UInt128, int>();
        var offset = log.NewestOffset;
        var done = offset < 0;
        while (!done)
        {
            using var batch = log.ReadReverse(offset, RebuildReadBytes);
            if (batch.IsEmpty)
            {
                break;
            }

            foreach (var record in batch.Records)
            {
                if (record.Timestamp < since || found.Count >= _maxIds)
                {
                    done = true;
                    break;
                }

                // Newest first: an id seen twice (only possible across a window boundary) keeps its oldest record, as appends did.
                if (IdOf(record.Headers, out _) is { } id)
                {
                    if (index.TryGetValue(id, out var i))
                    {
                        found[i] = (id, record.Offset, record.Timestamp);
                    }
                    else
                    {
                        index[id] = found.Count;
                        found.Add((id, record.Offset, record.Timestamp));
                    }
                }
            }

            offset = batch.NextOffset;
            done |= offset < 0;
        }

        lock (_lock)
        {
            _ids.Clear();
            _order.Clear();
            for (var i = found.Count - 1; i >= 0; i--)
            {
                var (id, recordOffset, timestamp) = found[i];
                _ids[id] = new Stored(recordOffset, timestamp);
                _order.Enqueue((id, timestamp));
            }

            _reflects = newest;
        }
    }

    /// <summary>
    /// Whether the window already holds every id up to <paramref name="newestOffset"/>, the end of the log a new
    /// leader opens: a follower kept it up to date, so taking the lead needs no reading back.
    /// </summary>
    public bool Reflects(long newestOffset)
    {
        lock (_lock)
        {
            return _reflects != long.MinValue && _reflects == newestOffset;
        }
    }

    /// <summary>A follower wrote <paramref name="records"/> (in offset order, after what the window holds): remembers their ids.</summary>
    public void RecordReplicated(ReadOnlySpan<LogRecord> records)
    {
        if (records.IsEmpty)
        {
            return;
        }

        lock (_lock)
        {
            foreach (var record in records)
            {
                if (IdOf(record.Headers, out _) is not { } id)
                {
                    continue;
                }

                ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_ids, id, out var exists);
                if (!exists)
                {
                    slot = new Stored(record.Offset, record.Timestamp);
                    _order.Enqueue((id, record.Timestamp));
                }
            }

            TrimToMaxIdsLocked();

            _reflects = _reflects != long.MinValue && records[0].Offset == _reflects + 1 ? records[^1].Offset : long.MinValue;
        }
    }

    /// <summary>
    /// Takes the repeats out of <c>items[0..n)</c> (closing the gap, nulling the freed tail) and returns how
    /// many messages are left to append. Repeats are answered by <see cref="Settle"/>, after the append.
    /// </summary>
    public int Filter(PublishItem[] items, int n, long now)
    {
        lock (_lock)
        {
            Expire(now);
            var kept = 0;
            for (var i = 0; i < n; i++)
            {
                var item = items[i];
                if (IdOf(item.Headers, out var length) is not { } id)
                {
                    items[kept++] = item;
                }
                else if (length > MaxIdBytes)
                {
                    // Only NATS ingest gets here: the gRPC paths refuse such a publish before it is queued.
                    _repeats.Add(new Repeat(item, id, Refused: true, default));
                }
                else
                {
                    ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_ids, id, out var exists);
                    if (!exists)
                    {
                        slot = new Stored(Pending, 0);
                        _placed.Add(id);
                        items[kept++] = item;
                    }
                    else
                    {
                        // A pending one's original is in this batch: Settle finds its offset after the append.
                        _repeats.Add(new Repeat(item, id, Refused: false, slot.Offset == Pending ? null : slot));
                    }
                }
            }

            Array.Clear(items, kept, n - kept);
            return kept;
        }
    }

    /// <summary>Remembers the ids of <c>items[0..n)</c>, appended at offsets <paramref name="first"/>.. with <paramref name="timestamp"/>.</summary>
    public void Record(PublishItem[] items, int n, long first, long timestamp)
    {
        lock (_lock)
        {
            _reflects = long.MinValue; // a leader's window: the next leadership reads the log again
            for (var i = 0; i < n; i++)
            {
                if (IdOf(items[i].Headers, out _) is not { } id)
                {
                    continue;
                }

                ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_ids, id, out var exists);
                if (!exists || slot.Offset == Pending)
                {
                    _recorded += exists ? 1 : 0;
                    slot = new Stored(first + i, timestamp);
                    _order.Enqueue((id, timestamp));
                }
            }

            TrimToMaxIdsLocked();
        }
    }

    /// <summary>Forgets the oldest ids past the window's size (under <c>_lock</c>).</summary>
    private void TrimToMaxIdsLocked()
    {
        while (_ids.Count > _maxIds && _order.TryDequeue(out var oldest))
        {
            _ids.Remove(oldest.Id);
        }
    }

    /// <summary>
    /// Answers the repeats <see cref="Filter"/> took out: each gets its first record's ack (offset and
    /// reception time of that record), or, when that record was not appended after all, the error its
    /// original got (UNKNOWN). Acks of policy ALL wait for the high watermark, as any ack does.
    /// </summary>
    public void Settle(Partition partition, long highWatermark)
    {
        List<Repeat> repeats;
        lock (_lock)
        {
            repeats = _repeats.Count == 0 ? [] : [.. _repeats];
            _repeats.Clear();
            for (var i = 0; i < repeats.Count; i++)
            {
                if (repeats[i] is { Refused: false, First: null } r && _ids.TryGetValue(r.Id, out var stored) && stored.Offset != Pending)
                {
                    repeats[i] = r with { First = stored };
                }
            }

            if (_recorded != _placed.Count)
            {
                foreach (var id in _placed)
                {
                    if (_ids.TryGetValue(id, out var stored) && stored.Offset == Pending)
                    {
                        _ids.Remove(id); // not appended (a failed append, a refused value): a retry must be stored
                    }
                }
            }

            _placed.Clear();
            _recorded = 0;
            if (repeats.Count == 0)
            {
                return;
            }
        }

        var now = Partition.NowNanoseconds();
        IAckReceiver? flushed = null;
        foreach (var repeat in repeats)
        {
            var item = repeat.Item;
            if (item.Receiver is not { } receiver)
            {
                continue;
            }

            if (repeat.Refused)
            {
                receiver.OnAck(item, partition.ErrorAck(item, Ack.Types.Error.TooLarge));
            }
            else if (repeat.First is not { } first)
            {
                receiver.OnAck(item, partition.ErrorAck(item, Ack.Types.Error.Unknown));
            }
            else if (item.AckPolicy == AckPolicy.None)
            {
                continue;
            }
            else if (item.AckPolicy == AckPolicy.All && first.Offset > highWatermark)
            {
                // Its first copy is not committed yet: with followers, the ack waits for the ISR like the first's;
                // a sole replica below min ISR sends none, as for the first.
                partition.Runtime?.Replication?.OnAppended(item, new CommitInfo(partition, first.Offset, first.Timestamp, now));
                continue;
            }
            else
            {
                receiver.OnCommitted(item, new CommitInfo(partition, first.Offset, first.Timestamp, now));
            }

            if (receiver != flushed)
            {
                receiver.FlushAcks();
                flushed = receiver;
            }
        }
    }

    /// <summary>The message id of a record or publish as a lookup key (its hash), and its length in bytes; null when it has none.</summary>
    private static UInt128? IdOf(IReadOnlyList<RecordHeader>? headers, out int length)
    {
        length = 0;
        if (headers is null)
        {
            return null;
        }

        for (var i = 0; i < headers.Count; i++)
        {
            var header = headers[i];
            if (header.Name == HeaderName)
            {
                length = header.Value.Length;
                return length == 0 ? null : XxHash128.HashToUInt128(header.Value.Span);
            }
        }

        return null;
    }

    private void Expire(long now)
    {
        var since = now - _windowNanoseconds;
        while (_order.TryPeek(out var oldest) && oldest.Timestamp < since)
        {
            _order.Dequeue();
            _ids.Remove(oldest.Id);
        }
    }

    private readonly record struct Stored(long Offset, long Timestamp);

    private readonly record struct Repeat(PublishItem Item, UInt128 Id, bool Refused, Stored? First);
}
