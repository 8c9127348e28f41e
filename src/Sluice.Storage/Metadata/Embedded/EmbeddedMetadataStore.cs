// Failure policy (embedded metadata store):
// - Writes: a transaction is applied in memory, appended to the write-ahead log and acknowledged only after
//   the fsync that covers it (concurrent commits share one fsync). Readers and watchers see a revision only
//   once it is durable, so nothing a caller saw can vanish in a crash.
// - An I/O error on the log (a full disk, say) fails the writes of that batch and of the batch queued behind it
//   with MetadataStoreFaultedException. The flusher then cuts the log back to its last synced byte and rebuilds
//   memory from the snapshot and log, exactly as an open would, so the failed writes leave no trace and later
//   writes succeed once the disk does. Reads and watches keep serving the last durable revision throughout.
//   Only if that cut-back fails does the store stay faulted until it is reopened.
// - Open: load the snapshot (corrupt = MetadataCorruptException), replay the log after it, truncate a torn
//   tail, delete logs the snapshot made obsolete. Damage inside the log (intact records after a bad one) fails
//   the open with MetadataLogDamagedException and changes nothing. Leases come back with a fresh TTL (etcd's rule).
// - A failed background snapshot is logged and retried later; the log keeps everything meanwhile.
using System.Buffers;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Sluice.Storage.Metadata.Persistence;

namespace Sluice.Storage.Metadata.Embedded;

/// <summary>
/// The single-node <see cref="IMetadataStore"/>: an MVCC key-value store held in memory, made durable by a
/// write-ahead log with group commit plus periodic snapshots, in one directory.
/// </summary>
public sealed partial class EmbeddedMetadataStore : IMetadataStore
{
    private readonly string _directory;
    private readonly MetadataStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly FileStream _lockFile;

    // Mutations (index, event log, leases, pending revision) hold _writeLock and, for the index and event log,
    // the write side of _rw. Readers hold the read side of _rw, or _writeLock.
    private readonly Lock _writeLock = new();
    private readonly ReaderWriterLockSlim _rw = new(LockRecursionPolicy.NoRecursion);
    private readonly KeyIndex _index = new();
    private readonly EventLog _events = new();
    private readonly Dictionary<long, Lease> _leases = [];
    private long _pendingRevision = 1;
    private long _visibleRevision = 1;
    private long _compactRevision;

    // Group commit: writers frame records into _batch under _queueLock; the flusher thread writes and syncs them.
    private readonly object _queueLock = new(); // a monitor: the flusher waits on it
    private readonly ArrayBufferWriter<byte> _scratch = new(256);
    private ArrayBufferWriter<byte> _batch = new(64 * 1024); // 64 KiB: a busy group of small transactions
    private ArrayBufferWriter<byte> _spare = new(64 * 1024);
    private bool _batchHasRecords;
    private long _batchRevision;
    private TaskCompletionSource _batchDone = NewCompletion();
    private Task _inFlight = Task.CompletedTask;
    private bool _flushing;
    private bool _stopping;
    private Exception? _fault;
    private WriteAheadLog _wal;
    private readonly Thread _flusher;
    private readonly TaskCompletionSource _flusherExited = NewCompletion();
    private volatile bool _snapshotWanted;

    private readonly CancellationTokenSource _shutdown = new();
    private Task _maintenance = Task.CompletedTask;
    private volatile bool _disposed;

    private EmbeddedMetadataStore(string directory, MetadataStoreOptions options, FileStream lockFile, WriteAheadLog wal)
    {
        _directory = directory;
        _options = options;
        _time = options.TimeProvider;
        _logger = options.LoggerFactory.CreateLogger<EmbeddedMetadataStore>();
        _lockFile = lockFile;
        _wal = wal;
        _flusher = new Thread(FlusherLoop) { IsBackground = true, Name = "metadata-wal-flusher" };
    }

    /// <inheritdoc />
    public long Revision => Volatile.Read(ref _visibleRevision);

    /// <inheritdoc />
    public long CompactRevision => Volatile.Read(ref _compactRevision);

    /// <summary>Directory holding the store's files.</summary>
    public string Directory => _directory;

    /// <summary>
    /// Opens (or creates) the store in <paramref name="directory"/>, recovering from a crash if needed. Only one
    /// process may hold a directory at a time.
    /// </summary>
    public static Task<EmbeddedMetadataStore> OpenAsync(string directory, MetadataStoreOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options ??= MetadataStoreOptions.Default;
        options.Validate();
        cancellationToken.ThrowIfCancellationRequested();
        return Task.Run(() => Open(directory, options), cancellationToken);
    }

    /// <summary>
    /// Creates a store in an empty (or missing) <paramref name="directory"/> from a stream written by
    /// <see cref="SnapshotAsync"/>, and opens it.
    /// </summary>
    public static async Task<EmbeddedMetadataStore> RestoreAsync(Stream snapshot, string directory, MetadataStoreOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (System.IO.Directory.Exists(directory) && System.IO.Directory.EnumerateFileSystemEntries(directory).Any())
        {
            throw new IOException($"cannot restore into {directory}: the directory is not empty");
        }

        using var buffer = new MemoryStream();
        await snapshot.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
        var bytes = buffer.ToArray();
        var state = SnapshotFile.Decode(bytes); // validates before anything is written
        System.IO.Directory.CreateDirectory(directory);
        SnapshotFile.WriteAtomically(directory, SnapshotFile.Encode(state with { LogSequence = 1 }));
        return await OpenAsync(directory, options, cancellationToken).ConfigureAwait(false);
    }

    private static EmbeddedMetadataStore Open(string directory, MetadataStoreOptions options)
    {
        System.IO.Directory.CreateDirectory(directory);
        return Open(directory, options, DirectoryLock.Acquire(directory));
    }

    /// <summary>Opens with the directory's lock already held (a repair hands over its own); the store then owns it.</summary>
    internal static EmbeddedMetadataStore Open(string directory, MetadataStoreOptions options, FileStream lockFile)
    {
        EmbeddedMetadataStore? store = null;
        try
        {
            var logger = options.LoggerFactory.CreateLogger<EmbeddedMetadataStore>();
            var snapshot = ReadSnapshot(directory);
            var snapshotPath = Path.Combine(directory, SnapshotFile.FileName);
            var sequence = snapshot?.LogSequence ?? 1;
            foreach (var path in System.IO.Directory.EnumerateFiles(directory, "wal-*.log"))
            {
                // Older logs are covered by the snapshot; a newer one is an empty leftover of an unfinished rotation.
                if (WriteAheadLog.TryParseSequence(Path.GetFileName(path), out var s) && s != sequence)
                {
                    File.Delete(path);
                }
            }

            File.Delete(snapshotPath + ".tmp");
            var records = new List<LogRecord>();
            var walPath = Path.Combine(directory, WriteAheadLog.FileName(sequence));
            var wal = File.Exists(walPath)
                ? WriteAheadLog.OpenAndRecover(walPath, sequence, records, logger)
                : WriteAheadLog.Create(directory, sequence);
            store = new EmbeddedMetadataStore(directory, options, lockFile, wal);
            store.Load(snapshot, records);
            store._flusher.Start();
            store._maintenance = store.MaintenanceLoopAsync(store._shutdown.Token);
            logger.LogInformation("Metadata store opened at {Directory}: revision {Revision}, compacted at {Compact}, {Leases} leases, {Records} log records replayed", directory, store._visibleRevision, store._compactRevision, store._leases.Count, records.Count);
            return store;
        }
        catch
        {
            if (store is null)
            {
                lockFile.Dispose();
            }
            else
            {
                store._wal.Dispose();
                lockFile.Dispose();
            }

            throw;
        }
    }

    /// <summary>The directory's snapshot, or null when it has none; a damaged one fails naming the file.</summary>
    internal static SnapshotState? ReadSnapshot(string directory)
    {
        var path = Path.Combine(directory, SnapshotFile.FileName);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return SnapshotFile.Decode(File.ReadAllBytes(path));
        }
        catch (MetadataCorruptException e)
        {
            throw new MetadataCorruptException($"metadata snapshot {path} is damaged ({e.Message}); the file was left unchanged");
        }
    }

    /// <summary>
    /// After a failed log write: cut the log back to its last synced record and rebuild memory from disk, dropping
    /// every change that was applied in memory but never made durable. Caller holds _writeLock; nothing is in flight.
    /// </summary>
    private void RollBackToDurableLocked()
    {
        _wal.RollBack();
        var snapshot = ReadSnapshot(_directory);
        var records = _wal.ReadSyncedRecords();
        _rw.EnterWriteLock();
        try
        {
            // One write-lock hold: no reader may see the index empty or half rebuilt.
            _index.Clear();
            _events.Clear();
            _leases.Clear();
            _pendingRevision = 1;
            Volatile.Write(ref _compactRevision, 0);
            LoadLocked(snapshot, records);
        }
        finally
        {
            _rw.ExitWriteLock();
        }
    }

    private void Load(SnapshotState? snapshot, List<LogRecord> records)
    {
        lock (_writeLock)
        {
            _rw.EnterWriteLock();
            try
            {
                LoadLocked(snapshot, records);
            }
            finally
            {
                _rw.ExitWriteLock();
            }
        }
    }

    /// <summary>Applies a snapshot and the log after it. Caller holds _writeLock and the write side of _rw.</summary>
    private void LoadLocked(SnapshotState? snapshot, List<LogRecord> records)
    {
        if (snapshot is not null)
        {
            foreach (var (id, ttl) in snapshot.Leases)
            {
                ApplyLeaseGrant(id, ttl);
            }

            foreach (var record in snapshot.History)
            {
                ApplyLocked(record);
            }

            _pendingRevision = Math.Max(_pendingRevision, snapshot.CurrentRevision);
            if (snapshot.CompactRevision > 0)
            {
                CompactLocked(snapshot.CompactRevision);
            }
        }

        foreach (var record in records)
        {
            ApplyLocked(record);
        }

        Volatile.Write(ref _visibleRevision, _pendingRevision);
    }

    /// <summary>Applies one record to memory. Caller holds _writeLock and the write side of _rw.</summary>
    private void ApplyLocked(LogRecord record)
    {
        List<WatchEvent>? events = null;
        var revision = record.Revision;
        foreach (var entry in record.Entries)
        {
            switch (entry.Kind)
            {
                case EntryKind.Put:
                    {
                        var history = _index.GetOrAdd(entry.Key!);
                        var prev = history.Latest;
                        var kv = new KeyValue(history.Key, entry.Value!, entry.A, revision, entry.B, entry.C);
                        history.Versions.Add(kv);
                        if (prev is { Lease: not 0 } && prev.Lease != kv.Lease && _leases.TryGetValue(prev.Lease, out var old))
                        {
                            old.Keys.Remove(history.Key);
                        }

                        if (kv.Lease != 0 && _leases.TryGetValue(kv.Lease, out var attached))
                        {
                            attached.Keys.Add(history.Key);
                        }

                        (events ??= []).Add(new WatchEvent(WatchEventType.Put, kv, prev));
                        break;
                    }

                case EntryKind.Delete:
                    {
                        var history = _index.Find(entry.Key!);
                        var prev = history?.Latest;
                        if (history is null || prev is null)
                        {
                            break;
                        }

                        var tombstone = new KeyValue(history.Key, [], 0, revision, 0, 0);
                        history.Versions.Add(tombstone);
                        if (prev.Lease != 0 && _leases.TryGetValue(prev.Lease, out var old))
                        {
                            old.Keys.Remove(history.Key);
                        }

                        (events ??= []).Add(new WatchEvent(WatchEventType.Delete, tombstone, prev));
                        break;
                    }

                case EntryKind.LeaseGrant:
                    ApplyLeaseGrant(entry.A, entry.B);
                    break;
                case EntryKind.LeaseRevoke:
                    _leases.Remove(entry.A);
                    break;
                case EntryKind.Compact:
                    CompactLocked(entry.A);
                    break;
                default:
                    throw new MetadataCorruptException($"unknown entry kind {entry.Kind}");
            }
        }

        if (events is not null)
        {
            _events.Add(new RevisionEvents(revision, [.. events]));
        }

        _pendingRevision = Math.Max(_pendingRevision, revision);
    }

    private void ApplyLeaseGrant(long id, long ttl) =>
        _leases[id] = new Lease(id, ttl) { ExpiresAt = _time.GetTimestamp() + (ttl * _time.TimestampFrequency) };

    private void CompactLocked(long revision)
    {
        List<KeyHistory>? empty = null;
        foreach (var history in _index.All)
        {
            if (history.CompactTo(revision))
            {
                (empty ??= []).Add(history);
            }
        }

        if (empty is not null)
        {
            foreach (var history in empty)
            {
                _index.Remove(history);
            }
        }

        _events.CompactTo(revision);
        Volatile.Write(ref _compactRevision, Math.Max(_compactRevision, revision));
    }

    /// <summary>Applies and enqueues a record; returns the task that completes when it is durable. Caller holds _writeLock.</summary>
    private Task CommitLocked(LogRecord record)
    {
        ThrowIfFaulted();
        _rw.EnterWriteLock();
        try
        {
            ApplyLocked(record);
        }
        finally
        {
            _rw.ExitWriteLock();
        }

        lock (_queueLock)
        {
            if (_fault is not null)
            {
                // Memory now holds a revision that will never become visible; the store is faulted anyway.
                throw new MetadataStoreFaultedException(_fault);
            }

            WriteAheadLog.Frame(_batch, record, _scratch);
            _batchRevision = Math.Max(_batchRevision, record.Revision);
            _batchHasRecords = true;
            Monitor.Pulse(_queueLock);
            return _batchDone.Task;
        }
    }

    /// <summary>A task that completes when <paramref name="revision"/> is durable and visible.</summary>
    private Task WaitDurableAsync(long revision)
    {
        if (Volatile.Read(ref _visibleRevision) >= revision)
        {
            return Task.CompletedTask;
        }

        lock (_queueLock)
        {
            if (_fault is not null)
            {
                return Task.FromException(new MetadataStoreFaultedException(_fault));
            }

            if (_visibleRevision >= revision)
            {
                return Task.CompletedTask;
            }

            return _batchHasRecords && _batchRevision >= revision ? _batchDone.Task : _inFlight;
        }
    }

    private void FlusherLoop()
    {
        try
        {
            while (true)
            {
                ArrayBufferWriter<byte> batch;
                long revision;
                TaskCompletionSource done;
                WriteAheadLog wal;
                lock (_queueLock)
                {
                    while (!_batchHasRecords && !_stopping)
                    {
                        Monitor.Wait(_queueLock);
                    }

                    if (!_batchHasRecords)
                    {
                        return;
                    }

                    batch = _batch;
                    _batch = _spare;
                    revision = _batchRevision;
                    done = _batchDone;
                    _batchDone = NewCompletion();
                    _batchHasRecords = false;
                    _flushing = true;
                    _inFlight = done.Task;
                    wal = _wal;
                }

                Exception? error = null;
                try
                {
                    wal.Append(batch.WrittenSpan);
                    wal.Sync();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
                {
                    error = e;
                }

                batch.ResetWrittenCount();
                TaskCompletionSource? queued = null;
                lock (_queueLock)
                {
                    _spare = batch;
                    _flushing = false;
                    if (error is null)
                    {
                        Volatile.Write(ref _visibleRevision, Math.Max(_visibleRevision, revision));
                    }
                    else
                    {
                        // The queued batch was applied in memory on top of the failed one: it fails with it.
                        _fault = error;
                        queued = _batchDone;
                        _batchDone = NewCompletion();
                        _batch.ResetWrittenCount();
                        _batchHasRecords = false;
                    }

                    Monitor.PulseAll(_queueLock);
                }

                if (error is not null)
                {
                    _logger.LogError(error, "Metadata log write failed at revision {Revision}; the writes of this batch fail and the log is cut back to its last durable record", revision);
                    var faulted = new MetadataStoreFaultedException(error);
                    done.TrySetException(faulted);
                    queued!.TrySetException(faulted);
                    RecoverAfterWriteFailure();
                    continue;
                }

                NotifyWatchers();
                done.TrySetResult();
                if (wal.Length > _options.SnapshotAfterLogBytes)
                {
                    _snapshotWanted = true;
                }
            }
        }
        finally
        {
            _flusherExited.TrySetResult();
        }
    }

    /// <summary>Clears the fault once the log and memory are back at the last durable revision; else the store stays faulted.</summary>
    private void RecoverAfterWriteFailure()
    {
        lock (_writeLock)
        {
            if (_disposed)
            {
                return;
            }

            try
            {
                RollBackToDurableLocked();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or MetadataStoreException)
            {
                _logger.LogCritical(e, "Metadata log could not be cut back after a failed write; the store accepts no more writes until it is reopened");
                return;
            }

            lock (_queueLock)
            {
                _fault = null;
            }

            _logger.LogWarning("Metadata store rolled back to revision {Revision} after the failed write; writes are accepted again", _visibleRevision);
        }
    }

    /// <summary>Blocks until nothing is queued or in flight. Caller holds _writeLock, so nothing new arrives.</summary>
    private void WaitDrainedLocked()
    {
        lock (_queueLock)
        {
            while ((_batchHasRecords || _flushing) && _fault is null)
            {
                Monitor.Wait(_queueLock);
            }
        }
    }

    private void ThrowIfFaulted()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var fault = Volatile.Read(ref _fault);
        if (fault is not null)
        {
            throw new MetadataStoreFaultedException(fault);
        }
    }

    private static TaskCompletionSource NewCompletion() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static long NewLeaseId()
    {
        Span<byte> bytes = stackalloc byte[8];
        RandomNumberGenerator.Fill(bytes);
        return (long)(BitConverter.ToUInt64(bytes) & 0x3FFF_FFFF_FFFF_FFFF) + 1; // positive, never 0
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _shutdown.CancelAsync().ConfigureAwait(false);
        try
        {
            await _maintenance.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        lock (_queueLock)
        {
            _stopping = true;
            Monitor.PulseAll(_queueLock);
        }

        await _flusherExited.Task.ConfigureAwait(false);
        NotifyWatchers();
        lock (_writeLock)
        {
            _wal.Dispose();
        }

        _lockFile.Dispose();
        _shutdown.Dispose();
    }
}
