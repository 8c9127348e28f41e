namespace Sluice.Storage.Log.Index;

/// <summary>
/// Sparse offset and time index of one segment, in memory: one entry per
/// <see cref="CommitLogOptions.IndexIntervalBytes"/> of log, always one for the first record.
/// Single writer, lock-free readers: an entry is written before the count that publishes it, and
/// a grown array is published before the count that covers it.
/// </summary>
internal sealed class SegmentIndex
{
    private IndexEntry[] _entries;
    private int _count;

    public SegmentIndex(int capacity = 4)
    {
        _entries = new IndexEntry[Math.Max(capacity, 1)];
    }

    public int Count => Volatile.Read(ref _count);

    /// <summary>Entries visible to a reader right now.</summary>
    public ReadOnlySpan<IndexEntry> Snapshot()
    {
        var entries = Volatile.Read(ref _entries);
        var count = Math.Min(Volatile.Read(ref _count), entries.Length);
        return entries.AsSpan(0, count);
    }

    public IndexEntry Last => _entries[_count - 1];

    public void Add(in IndexEntry entry)
    {
        var entries = _entries;
        if (_count == entries.Length)
        {
            var grown = new IndexEntry[entries.Length * 2];
            entries.AsSpan().CopyTo(grown);
            grown[_count] = entry;
            Volatile.Write(ref _entries, grown);
        }
        else
        {
            entries[_count] = entry;
        }

        Volatile.Write(ref _count, _count + 1);
    }

    /// <summary>Index of the last entry whose offset is at or before <paramref name="offset"/>, or -1.</summary>
    public static int FindByOffset(ReadOnlySpan<IndexEntry> entries, long offset)
    {
        int lo = 0, hi = entries.Length - 1, found = -1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            if (entries[mid].Offset <= offset)
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

    /// <summary>Index of the last entry all of whose earlier records have timestamps below <paramref name="timestamp"/>, or -1.</summary>
    public static int FindByTimestamp(ReadOnlySpan<IndexEntry> entries, long timestamp)
    {
        int lo = 0, hi = entries.Length - 1, found = -1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            if (entries[mid].MaxTimestampBefore < timestamp)
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

/// <summary>
/// One index entry: the record at <see cref="Position"/> has <see cref="Offset"/>, and every
/// earlier record of the segment has a timestamp at most <see cref="MaxTimestampBefore"/>
/// (<see cref="long.MinValue"/> for the first record).
/// </summary>
internal readonly record struct IndexEntry(long Offset, int Position, long MaxTimestampBefore);
