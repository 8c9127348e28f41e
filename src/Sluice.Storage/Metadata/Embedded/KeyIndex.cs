namespace Sluice.Storage.Metadata.Embedded;

/// <summary>
/// Every retained version of one key, oldest first. A tombstone is a <see cref="KeyValue"/> with version 0 whose
/// mod revision is the delete's revision. Versions above the visible revision may exist (written, not yet durable);
/// readers always ask for a revision, so they never see them.
/// </summary>
internal sealed class KeyHistory
{
    public KeyHistory(byte[] key) => Key = key;

    public byte[] Key { get; }

    public List<KeyValue> Versions { get; } = new(2);

    /// <summary>The newest version if it is live.</summary>
    public KeyValue? Latest => Versions.Count > 0 && Versions[^1].Version != 0 ? Versions[^1] : null;

    /// <summary>The live version at <paramref name="revision"/>, or null if absent or deleted then.</summary>
    public KeyValue? At(long revision)
    {
        var i = IndexAtOrBefore(revision);
        return i >= 0 && Versions[i].Version != 0 ? Versions[i] : null;
    }

    /// <summary>Drops versions superseded at <paramref name="revision"/>; true when nothing is left.</summary>
    public bool CompactTo(long revision)
    {
        var keep = IndexAtOrBefore(revision);
        if (keep < 0)
        {
            return Versions.Count == 0;
        }

        // A tombstone at or below the compaction point hides nothing readable any more.
        var drop = Versions[keep].Version == 0 ? keep + 1 : keep;
        if (drop > 0)
        {
            Versions.RemoveRange(0, drop);
        }

        return Versions.Count == 0;
    }

    private int IndexAtOrBefore(long revision)
    {
        var versions = Versions;
        if (versions.Count > 0 && versions[^1].ModRevision <= revision)
        {
            return versions.Count - 1; // the common case: reading the newest version
        }

        int lo = 0, hi = versions.Count - 1, found = -1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            if (versions[mid].ModRevision <= revision)
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

/// <summary>Keys in byte order, each with its history. Not thread-safe: the store guards it.</summary>
internal sealed class KeyIndex
{
    private static readonly KeyHistoryComparer Comparer = new();
    private readonly SortedSet<KeyHistory> _keys = new(Comparer);

    public int Count => _keys.Count;

    public KeyHistory? Find(byte[] key) => _keys.TryGetValue(new KeyHistory(key), out var found) ? found : null;

    public KeyHistory GetOrAdd(byte[] key)
    {
        var probe = new KeyHistory(key);
        if (_keys.TryGetValue(probe, out var found))
        {
            return found;
        }

        _keys.Add(probe);
        return probe;
    }

    public void Remove(KeyHistory history) => _keys.Remove(history);

    public void Clear() => _keys.Clear();

    public IEnumerable<KeyHistory> All => _keys;

    /// <summary>Histories of keys in the range: one key (<paramref name="end"/> null), <c>[key, end)</c>, or from key on.</summary>
    public IEnumerable<KeyHistory> Range(byte[] key, byte[]? end)
    {
        if (end is null)
        {
            var single = Find(key);
            return single is null ? [] : [single];
        }

        if (_keys.Count == 0)
        {
            return [];
        }

        var low = new KeyHistory(key);
        if (KeyRanges.IsFromKey(end))
        {
            var max = _keys.Max!;
            return Comparer.Compare(low, max) > 0 ? [] : _keys.GetViewBetween(low, max);
        }

        var high = new KeyHistory(end);
        if (Comparer.Compare(low, high) >= 0)
        {
            return [];
        }

        return ExcludeEnd(_keys.GetViewBetween(low, high), end);
    }

    private static IEnumerable<KeyHistory> ExcludeEnd(SortedSet<KeyHistory> view, byte[] end)
    {
        foreach (var history in view)
        {
            if (history.Key.AsSpan().SequenceEqual(end))
            {
                yield break;
            }

            yield return history;
        }
    }

    private sealed class KeyHistoryComparer : IComparer<KeyHistory>
    {
        public int Compare(KeyHistory? x, KeyHistory? y) => x!.Key.AsSpan().SequenceCompareTo(y!.Key);
    }
}

/// <summary>Byte-array keys for hash sets and dictionaries.</summary>
internal sealed class ByteArrayComparer : IEqualityComparer<byte[]>
{
    public static ByteArrayComparer Instance { get; } = new();

    public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

    public int GetHashCode(byte[] obj)
    {
        var hash = new HashCode();
        hash.AddBytes(obj);
        return hash.ToHashCode();
    }
}

/// <summary>The events of one committed revision, kept for watchers until compaction.</summary>
internal sealed record RevisionEvents(long Revision, WatchEvent[] Events);

/// <summary>Per-revision events in revision order, trimmed by compaction.</summary>
internal sealed class EventLog
{
    private readonly List<RevisionEvents> _revisions = [];

    public void Add(RevisionEvents events) => _revisions.Add(events);

    public void Clear() => _revisions.Clear();

    public void CompactTo(long revision)
    {
        var cut = FirstAtOrAfter(revision + 1);
        if (cut > 0)
        {
            _revisions.RemoveRange(0, cut);
        }
    }

    /// <summary>Copies up to <paramref name="max"/> revisions in <c>[from, to]</c>.</summary>
    public void Collect(long from, long to, int max, List<RevisionEvents> into)
    {
        for (var i = FirstAtOrAfter(from); i < _revisions.Count && into.Count < max; i++)
        {
            if (_revisions[i].Revision > to)
            {
                break;
            }

            into.Add(_revisions[i]);
        }
    }

    private int FirstAtOrAfter(long revision)
    {
        int lo = 0, hi = _revisions.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_revisions[mid].Revision < revision)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }
}

/// <summary>A granted lease: its TTL, expiry (in <see cref="TimeProvider"/> timestamps) and attached keys.</summary>
internal sealed class Lease(long id, long ttl)
{
    public long Id { get; } = id;

    public long Ttl { get; } = ttl;

    public long ExpiresAt { get; set; }

    public HashSet<byte[]> Keys { get; } = new(ByteArrayComparer.Instance);
}
