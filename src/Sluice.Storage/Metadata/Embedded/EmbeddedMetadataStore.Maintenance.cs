using Microsoft.Extensions.Logging;
using Sluice.Storage.Metadata.Persistence;

namespace Sluice.Storage.Metadata.Embedded;

public sealed partial class EmbeddedMetadataStore
{
    // (timestamp, revision) samples for time-window compaction, oldest first.
    private readonly Queue<(long At, long Revision)> _revisionSamples = new();

    /// <inheritdoc />
    public async ValueTask<CompactResponse> CompactAsync(long revision, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckCompactRevision(revision, Volatile.Read(ref _pendingRevision));

        // Compaction must never pass the visible revision, or current reads would fail as compacted.
        await WaitDurableAsync(revision).ConfigureAwait(false);
        Task durable;
        lock (_writeLock)
        {
            ThrowIfFaulted();
            CheckCompactRevision(revision, _pendingRevision);
            durable = CommitLocked(new LogRecord(_pendingRevision, [LogEntry.Compact(revision)]));
        }

        await durable.ConfigureAwait(false);
        _logger.LogDebug("Metadata store compacted at revision {Revision}", revision);
        return new CompactResponse(new ResponseHeader(Revision));
    }

    private void CheckCompactRevision(long revision, long current)
    {
        var compacted = Volatile.Read(ref _compactRevision);
        if (revision <= compacted)
        {
            throw new CompactedException(revision, compacted);
        }

        if (revision > current)
        {
            throw new FutureRevisionException(revision, current);
        }
    }

    /// <inheritdoc />
    public ValueTask<HashKVResponse> HashKVAsync(long revision = 0, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        _rw.EnterReadLock();
        try
        {
            var visible = Volatile.Read(ref _visibleRevision);
            var at = CheckReadRevision(revision, visible);
            var crc = Crc32C.Seed;
            foreach (var history in _index.All)
            {
                foreach (var kv in history.Versions)
                {
                    if (kv.ModRevision > at)
                    {
                        break;
                    }

                    crc = Crc32C.Append(crc, kv.Key.Length);
                    crc = Crc32C.Append(crc, kv.Key);
                    crc = Crc32C.Append(crc, kv.ModRevision);
                    crc = Crc32C.Append(crc, kv.CreateRevision);
                    crc = Crc32C.Append(crc, kv.Version);
                    crc = Crc32C.Append(crc, kv.Lease);
                    crc = Crc32C.Append(crc, kv.Value.Length);
                    crc = Crc32C.Append(crc, kv.Value);
                }
            }

            return ValueTask.FromResult(new HashKVResponse(new ResponseHeader(visible), Crc32C.Finish(crc), _compactRevision, at));
        }
        finally
        {
            _rw.ExitReadLock();
        }
    }

    /// <inheritdoc />
    public async Task SnapshotAsync(Stream destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        cancellationToken.ThrowIfCancellationRequested();
        byte[] bytes;
        lock (_writeLock)
        {
            ThrowIfFaulted();
            WaitDrainedLocked();
            ThrowIfFaulted();
            bytes = SnapshotFile.Encode(CaptureLocked(_wal.Sequence));
        }

        await destination.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
        await destination.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes a snapshot file and starts a new, empty log; the old log is deleted.</summary>
    internal void Checkpoint()
    {
        lock (_writeLock)
        {
            if (_disposed || _fault is not null)
            {
                return;
            }

            // Holding _writeLock keeps new writes out; draining makes memory equal to what is durable.
            WaitDrainedLocked();
            if (_fault is not null)
            {
                return;
            }

            var old = _wal;
            var next = old.Sequence + 1;
            var bytes = SnapshotFile.Encode(CaptureLocked(next));
            var wal = WriteAheadLog.Create(_directory, next);
            try
            {
                SnapshotFile.WriteAtomically(_directory, bytes); // the commit point of the rotation
            }
            catch
            {
                wal.Dispose();
                File.Delete(wal.Path);
                throw;
            }

            lock (_queueLock)
            {
                _wal = wal;
            }

            old.Dispose();
            File.Delete(old.Path);
            _snapshotWanted = false;
            _logger.LogInformation("Metadata snapshot written at revision {Revision} ({Bytes} bytes); log {Sequence} started", _visibleRevision, bytes.Length, next);
        }
    }

    /// <summary>State as of now. Caller holds _writeLock with nothing in flight.</summary>
    private SnapshotState CaptureLocked(long logSequence)
    {
        var history = new SortedDictionary<long, List<LogEntry>>();
        foreach (var key in _index.All)
        {
            foreach (var kv in key.Versions)
            {
                if (!history.TryGetValue(kv.ModRevision, out var entries))
                {
                    history[kv.ModRevision] = entries = [];
                }

                entries.Add(kv.Version == 0 ? LogEntry.Delete(kv.Key) : LogEntry.Put(kv.Key, kv.Value, kv.CreateRevision, kv.Version, kv.Lease));
            }
        }

        // Within a revision, keep the order the transaction made its changes (the event order watchers saw).
        var records = new List<LogRecord>(history.Count);
        foreach (var (revision, entries) in history)
        {
            records.Add(new LogRecord(revision, OrderLikeEvents(revision, entries)));
        }

        var leases = _leases.Values.Select(l => (l.Id, l.Ttl)).ToList();
        return new SnapshotState(_pendingRevision, _compactRevision, logSequence, leases, records);
    }

    private List<LogEntry> OrderLikeEvents(long revision, List<LogEntry> entries)
    {
        if (entries.Count < 2 || revision <= _compactRevision)
        {
            return entries;
        }

        var batch = new List<RevisionEvents>(1);
        _events.Collect(revision, revision, 1, batch);
        if (batch.Count == 0)
        {
            return entries;
        }

        var position = new Dictionary<byte[], int>(ByteArrayComparer.Instance);
        for (var i = 0; i < batch[0].Events.Length; i++)
        {
            position[batch[0].Events[i].Kv.Key] = i;
        }

        entries.Sort((a, b) => position.GetValueOrDefault(a.Key!).CompareTo(position.GetValueOrDefault(b.Key!)));
        return entries;
    }

    private async Task MaintenanceLoopAsync(CancellationToken cancellationToken)
    {
        await Task.Yield();
        using var timer = new PeriodicTimer(_options.MaintenanceInterval, _time);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                await ExpireLeasesAsync().ConfigureAwait(false);
                await AutoCompactAsync(cancellationToken).ConfigureAwait(false);
                if (_snapshotWanted)
                {
                    Checkpoint();
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is IOException or MetadataStoreException or UnauthorizedAccessException or ObjectDisposedException)
            {
                if (!_disposed)
                {
                    _logger.LogError(e, "Metadata store maintenance failed; retrying on the next tick");
                }
            }
        }
    }

    private async Task AutoCompactAsync(CancellationToken cancellationToken)
    {
        var visible = Revision;
        long target = 0;
        var retain = _options.AutoCompactionRetainRevisions;
        if (retain > 0)
        {
            // Compact in steps of a tenth of the window, not on every tick: each pass walks every key.
            var candidate = visible - retain;
            if (candidate - CompactRevision >= Math.Max(1, retain / 10))
            {
                target = candidate;
            }
        }

        if (_options.AutoCompactionRetention is { } window)
        {
            var now = _time.GetTimestamp();
            if (_revisionSamples.Count == 0 || _revisionSamples.Last().Revision != visible)
            {
                _revisionSamples.Enqueue((now, visible));
            }

            var cutoff = now - (long)(window.TotalSeconds * _time.TimestampFrequency);
            while (_revisionSamples.Count > 0 && _revisionSamples.Peek().At <= cutoff)
            {
                // Everything up to the last revision seen before the window started may go.
                target = Math.Max(target, _revisionSamples.Dequeue().Revision);
            }
        }

        if (target > CompactRevision)
        {
            try
            {
                await CompactAsync(target, cancellationToken).ConfigureAwait(false);
            }
            catch (CompactedException)
            {
                // A caller compacted further meanwhile.
            }
        }
    }
}
