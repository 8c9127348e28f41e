// Failure policy: every change is persisted with CheckpointFile (temp + rename) before it is
// visible; a write error throws to the caller and the in-memory cache is rolled back. On open a
// damaged file is reported by CheckpointFile; the log then starts with an empty cache (it is
// rebuilt by the next leader election) and logs a warning.
using System.Buffers.Binary;

namespace Sluice.Storage.Log.Checkpoints;

/// <summary>
/// Leader epoch → start offset, strictly increasing in both, with Liftbridge's semantics
/// (liftbridge.md §4.7). Not thread-safe: the log calls it under its write lock.
/// </summary>
internal sealed class LeaderEpochCache
{
    public const string FileName = "leader-epochs";
    private const ushort Kind = 2;
    private readonly string _path;
    private readonly bool _sync;
    private List<(long Epoch, long StartOffset)> _entries = [];

    public LeaderEpochCache(string directory, bool sync)
    {
        _path = Path.Combine(directory, FileName);
        _sync = sync;
    }

    public IReadOnlyList<(long Epoch, long StartOffset)> Entries => _entries;

    public long LastEpoch => _entries.Count == 0 ? -1 : _entries[^1].Epoch;

    public void Load()
    {
        var payload = CheckpointFile.Read(_path, Kind);
        _entries = [];
        if (payload is null)
        {
            return;
        }

        var count = BinaryPrimitives.ReadInt32LittleEndian(payload);
        if (count < 0 || payload.Length != 4 + (count * 16))
        {
            throw new InvalidDataException($"Leader epoch checkpoint '{_path}' has an invalid entry count.");
        }

        for (var i = 0; i < count; i++)
        {
            _entries.Add((BinaryPrimitives.ReadInt64LittleEndian(payload.AsSpan(4 + (i * 16))), BinaryPrimitives.ReadInt64LittleEndian(payload.AsSpan(12 + (i * 16)))));
        }
    }

    /// <summary>Adds (epoch, startOffset) unless the epoch or the offset goes backwards; true when it changed.</summary>
    public bool Assign(long epoch, long startOffset)
    {
        if (_entries.Count > 0 && (epoch <= _entries[^1].Epoch || startOffset < _entries[^1].StartOffset))
        {
            return false;
        }

        _entries.Add((epoch, startOffset));
        Persist(() => _entries.RemoveAt(_entries.Count - 1));
        return true;
    }

    /// <summary>Start offset of the first epoch above <paramref name="epoch"/>, or <paramref name="newestOffset"/> when none.</summary>
    public long LastOffsetFor(long epoch, long newestOffset)
    {
        foreach (var (e, start) in _entries)
        {
            if (e > epoch)
            {
                return start;
            }
        }

        return newestOffset;
    }

    /// <summary>Drops entries starting at or after <paramref name="offset"/> (truncation).</summary>
    public void ClearLatest(long offset)
    {
        var keep = _entries.FindIndex(e => e.StartOffset >= offset);
        if (keep < 0)
        {
            return;
        }

        var old = _entries;
        _entries = _entries.GetRange(0, keep);
        Persist(() => _entries = old);
    }

    /// <summary>
    /// Drops entries whose epoch ended before <paramref name="offset"/> (retention). Start offsets
    /// are never moved: with Liftbridge's election entries a start means "after this offset", so
    /// moving one would change what <see cref="LastOffsetFor"/> answers.
    /// </summary>
    public void ClearEarliest(long offset)
    {
        var drop = 0;
        while (drop + 1 < _entries.Count && _entries[drop + 1].StartOffset <= offset)
        {
            drop++;
        }

        if (drop == 0)
        {
            return;
        }

        var old = _entries;
        _entries = _entries.GetRange(drop, _entries.Count - drop);
        Persist(() => _entries = old);
    }

    private void Persist(Action rollback)
    {
        try
        {
            var payload = new byte[4 + (_entries.Count * 16)];
            BinaryPrimitives.WriteInt32LittleEndian(payload, _entries.Count);
            for (var i = 0; i < _entries.Count; i++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(4 + (i * 16)), _entries[i].Epoch);
                BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(12 + (i * 16)), _entries[i].StartOffset);
            }

            CheckpointFile.Write(_path, Kind, payload, _sync);
        }
        catch
        {
            rollback();
            throw;
        }
    }
}
