// Failure policy: an I/O error during an append throws to the appender and publishes nothing
// (the next append rewrites the same bytes). A failed fsync closes the log, because the kernel
// may have dropped the dirty pages and a later fsync could falsely succeed: every later call
// throws CommitLogClosedException naming the cause, and the owner reopens the log. Recovery on
// open (Segment.Open) keeps every complete record, truncates a torn tail of the newest segment,
// rebuilds missing or damaged indexes and reports damage anywhere else as CorruptLogException.
// Open also checks the files against the segment manifest: a missing or cut sealed segment is
// CorruptLogException; a lost tail (the newest segment missing, or the high-watermark checkpoint
// past the last record) is logged and skipped, so that no acknowledged offset is handed out again.
using System.Buffers;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Storage.Log.Checkpoints;
using Sluice.Storage.Log.Index;
using Sluice.Storage.Log.Records;
using Sluice.Storage.Log.Segments;

namespace Sluice.Storage.Log;

/// <summary>
/// The commit log of one partition: a directory of segments (<c>%020d.log</c> with
/// <c>.index</c> and <c>.timeindex</c>), a high-watermark checkpoint and a leader-epoch cache.
/// Offsets are assigned densely from 0 and never reused. One append runs at a time (appends are
/// serialised internally); reads, waits and timestamp lookups run concurrently with appends.
/// </summary>
public sealed partial class CommitLog : IDisposable
{
    private const string HighWatermarkFileName = "high-watermark";
    private const ushort HighWatermarkKind = 1;
    private const int StateOpen = 0;
    private const int StateClosed = 1;
    private const int StateDeleted = 2;

    // Batches are capped so that a segment (at most 1 GiB) plus one batch stays within int positions.
    private const long MaxBatchBytes = 512L * 1024 * 1024;

    private readonly Lock _writeLock = new();
    private readonly Lock _maintenanceLock = new();
    private readonly Lock _syncGate = new();
    private readonly ChangeSignal _signal = new();
    private readonly ILogger _logger;
    private readonly LeaderEpochCache _epochs;
    private readonly ITimer? _fsyncTimer;
    private Segment[] _segments;
    private long _nextOffset;
    private long _highWatermark = -1;
    private long _checkpointedHighWatermark = -1;
    private ITimer? _highWatermarkTimer;
    private int _state;
    private Exception? _closeCause;
    private long _writeTicket;
    private long _syncedTicket;
    private TaskCompletionSource? _syncInFlight;
    private long _fsyncs;
    private int _dirty;

    private CommitLog(string directory, CommitLogOptions options, ILogger logger)
    {
        Directory = directory;
        Options = options;
        _logger = logger;
        _epochs = new LeaderEpochCache(directory, options.Durability == DurabilityPolicy.Always);
        _segments = Recover(out var manifest, out var lostNewest);
        var active = _segments[^1];
        _nextOffset = active.RecordCount > 0 ? active.LastOffset + 1 : active.BaseOffset;
        if (active.RecordCount > 0)
        {
            active.FirstWriteTicks = NowTicks;
        }

        try
        {
            LoadCheckpoints(lostNewest);
        }
        catch
        {
            foreach (var segment in _segments)
            {
                segment.File.Retire();
            }

            throw;
        }

        var entries = ManifestEntries(_segments);
        if (manifest is null || !manifest.SequenceEqual(entries))
        {
            TryWriteManifest(entries, Options.Durability == DurabilityPolicy.Always);
        }
        if (options.Durability == DurabilityPolicy.Interval)
        {
            _fsyncTimer = options.TimeProvider.CreateTimer(_ => SyncIfDirty(), null, options.FsyncInterval, options.FsyncInterval);
        }
    }

    /// <summary>
    /// Opens the log in <paramref name="directory"/>, creating it if needed and recovering it after a crash.
    /// A lost tail is skipped (see <see cref="LostTail"/>); lost or damaged data before it throws.
    /// </summary>
    /// <exception cref="CorruptLogException">A sealed segment, or the middle of the newest one, is damaged, or a
    /// sealed segment is missing or shorter than when it was sealed.</exception>
    public static CommitLog Open(string directory, CommitLogOptions? options = null, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        options ??= CommitLogOptions.Default;
        options.Validate();
        System.IO.Directory.CreateDirectory(directory);
        return new CommitLog(Path.GetFullPath(directory), options, logger ?? NullLogger.Instance);
    }

    /// <summary>The log's directory.</summary>
    public string Directory { get; }

    /// <summary>The options the log was opened with.</summary>
    public CommitLogOptions Options { get; }

    /// <summary>Offset of the oldest record held, or -1 when the log holds no record.</summary>
    public long OldestOffset
    {
        get
        {
            foreach (var segment in Volatile.Read(ref _segments))
            {
                var first = segment.FirstOffset;
                if (first >= 0)
                {
                    return first;
                }
            }

            return -1;
        }
    }

    /// <summary>Offset of the newest record ever appended (kept after retention empties the log), or -1 when none.</summary>
    public long NewestOffset => Volatile.Read(ref _nextOffset) - 1;

    /// <summary>The offset the next appended record gets.</summary>
    public long NextOffset => Volatile.Read(ref _nextOffset);

    /// <summary>Offset of the last committed record (Liftbridge's HW), -1 when none. Set by the partition's owner.</summary>
    public long HighWatermark => Volatile.Read(ref _highWatermark);

    /// <summary>Number of segments.</summary>
    public int SegmentCount => Volatile.Read(ref _segments).Length;

    /// <summary>Bytes of all segment files.</summary>
    public long SizeInBytes => Volatile.Read(ref _segments).Sum(s => s.Size);

    /// <summary>
    /// Offsets handed out before whose records are gone, skipped by the last open or <see cref="AdvanceTo"/>
    /// (for example the tail an OS crash took under <see cref="DurabilityPolicy.Never"/>); null when none.
    /// </summary>
    public OffsetGap? LostTail { get; private set; }

    /// <summary>fsync calls made for appends so far (group commit makes this lower than the append count).</summary>
    public long FsyncCount => Interlocked.Read(ref _fsyncs);

    private long NowTicks => Options.TimeProvider.GetUtcNow().UtcTicks;

    internal Segment[] Segments => Volatile.Read(ref _segments);

    private Segment[] Recover(out List<SegmentManifest.Entry>? manifest, out long lostNewest)
    {
        lostNewest = -1;
        var names = new List<(long Base, string Path)>();
        var indexes = new List<string>();
        foreach (var path in System.IO.Directory.EnumerateFiles(Directory))
        {
            var name = Path.GetFileName(path);
            if (name.EndsWith(".tmp", StringComparison.Ordinal) || name.EndsWith(".cleaned", StringComparison.Ordinal))
            {
                File.Delete(path); // an interrupted checkpoint, index or compaction: the original is intact
            }
            else if (SegmentName().IsMatch(name))
            {
                names.Add((long.Parse(name.AsSpan(0, 20)), path));
            }
            else if (name.EndsWith(IndexFiles.OffsetExtension, StringComparison.Ordinal) || name.EndsWith(IndexFiles.TimeExtension, StringComparison.Ordinal))
            {
                indexes.Add(path);
            }
        }

        names.Sort((a, b) => a.Base.CompareTo(b.Base));
        manifest = null;
        try
        {
            manifest = SegmentManifest.Load(Directory);
        }
        catch (InvalidDataException e)
        {
            _logger.LogWarning(e, "Ignoring a damaged segment manifest in {Directory}: missing segments cannot be detected on this open", Directory);
        }

        if (manifest is not null)
        {
            lostNewest = CheckAgainstManifest(manifest, names);
        }

        var segmentPaths = names.Select(n => n.Path).ToHashSet();
        foreach (var path in indexes)
        {
            if (!segmentPaths.Contains(Path.ChangeExtension(path, Segment.Extension)))
            {
                File.Delete(path); // orphan of a deleted segment
            }
        }

        if (names.Count == 0)
        {
            return [CreateSegment(0)];
        }

        var indexed = indexes.ToHashSet(StringComparer.Ordinal);
        var segments = new Segment[names.Count];
        try
        {
            for (var i = 0; i < names.Count; i++)
            {
                var indexPresent = indexed.Contains(IndexFiles.OffsetPath(names[i].Path));
                segments[i] = Segment.Open(names[i].Path, names[i].Base, Options.FileHandles, Options.IndexIntervalBytes, i == names.Count - 1, _logger, indexPresent);
                if (i > 0 && segments[i - 1].LastOffset >= segments[i].BaseOffset)
                {
                    throw new CorruptLogException(segments[i - 1].Path, segments[i - 1].Size, segments[i - 1].LastOffset, $"its records overlap the next segment, which starts at {segments[i].BaseOffset}");
                }
            }
        }
        catch
        {
            // The broker keeps running with this partition offline: give back the handles of the segments opened so far.
            foreach (var segment in segments)
            {
                segment?.File.Retire();
            }

            throw;
        }

        return segments;
    }

    /// <summary>
    /// Throws when a segment the log had (listed in the manifest) is missing or shorter than when it
    /// was sealed. Returns the base offset of the newest listed segment when only it is missing (a lost
    /// tail, skipped rather than reused), else -1. Files the manifest does not list are kept: a roll
    /// lists its segment only after creating it, and retention lists before deleting.
    /// </summary>
    private long CheckAgainstManifest(List<SegmentManifest.Entry> manifest, List<(long Base, string Path)> names)
    {
        var present = names.Select(n => n.Base).ToHashSet();
        var newestPresent = names.Count == 0 ? -1 : names[^1].Base;
        var lostNewest = -1L;
        for (var i = 0; i < manifest.Count; i++)
        {
            var entry = manifest[i];
            var path = Path.Combine(Directory, Segment.FileName(entry.BaseOffset));
            if (!present.Contains(entry.BaseOffset))
            {
                if (i == manifest.Count - 1 && entry.BaseOffset > newestPresent)
                {
                    lostNewest = entry.BaseOffset;
                    continue;
                }

                throw new CorruptLogException(path, 0, entry.BaseOffset, "the segment file is missing (retention or compaction did not remove it)");
            }

            if (entry.SealedSize >= 0)
            {
                var length = new FileInfo(path).Length;
                if (length < entry.SealedSize)
                {
                    throw new CorruptLogException(path, length, -1, $"the sealed segment is {length} bytes long, shorter than the {entry.SealedSize} bytes it had when sealed");
                }
            }
        }

        return lostNewest;
    }

    [GeneratedRegex(@"^\d{20}\.log$")]
    private static partial Regex SegmentName();

    private static List<SegmentManifest.Entry> ManifestEntries(Segment[] segments)
    {
        var entries = new List<SegmentManifest.Entry>(segments.Length);
        for (var i = 0; i < segments.Length; i++)
        {
            entries.Add(new SegmentManifest.Entry(segments[i].BaseOffset, i == segments.Length - 1 ? -1 : segments[i].Size));
        }

        return entries;
    }

    /// <summary>Writes the manifest; false (logged) when it failed, and then callers must not delete segment files.</summary>
    private bool TryWriteManifest(IReadOnlyList<SegmentManifest.Entry> entries, bool sync)
    {
        try
        {
            SegmentManifest.Write(Directory, entries, sync);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning(e, "Could not write the segment manifest of {Directory}; segment files stay until it can be written", Directory);
            return false;
        }
    }

    private void LoadCheckpoints(long lostNewest)
    {
        try
        {
            var payload = CheckpointFile.Read(Path.Combine(Directory, HighWatermarkFileName), HighWatermarkKind);
            if (payload is { Length: 8 })
            {
                _checkpointedHighWatermark = BitConverter.ToInt64(payload);
            }
        }
        catch (InvalidDataException e)
        {
            // The HW only ever under-reports safely: the owner re-derives it from the ISR.
            _logger.LogWarning(e, "Ignoring a damaged high-watermark checkpoint in {Directory}", Directory);
        }

        // Offsets up to the checkpointed HW, and below the newest segment's base, were handed out. When their
        // records are gone (an OS crash under durability never, a deleted newest segment), skip them.
        var newest = _nextOffset - 1;
        if (lostNewest > _nextOffset)
        {
            SkipLocked(lostNewest, $"the newest segment {Segment.FileName(lostNewest)} is missing");
        }

        if (_checkpointedHighWatermark >= _nextOffset)
        {
            SkipLocked(_checkpointedHighWatermark + 1, $"the high-watermark checkpoint is at offset {_checkpointedHighWatermark} but the log ends at {newest}");
        }

        _highWatermark = Math.Clamp(_checkpointedHighWatermark, -1, _nextOffset - 1);

        try
        {
            _epochs.Load();
        }
        catch (InvalidDataException e)
        {
            _logger.LogWarning(e, "Ignoring a damaged leader-epoch checkpoint in {Directory}; the next election rebuilds it", Directory);
        }

        _epochs.ClearLatest(_nextOffset);
        _epochs.ClearEarliest(_segments[0].BaseOffset);
    }

    /// <summary>
    /// Moves <see cref="NextOffset"/> forward to <paramref name="nextOffset"/> when it is behind: the offsets in
    /// between were handed out before (the caller knows, e.g. from its own metadata) and their records are lost,
    /// so they are skipped and reported in <see cref="LostTail"/>, never reused. Returns false when nothing moved.
    /// </summary>
    public bool AdvanceTo(long nextOffset, string reason)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        lock (_writeLock)
        {
            ThrowIfNotOpen();
            if (nextOffset <= _nextOffset)
            {
                return false;
            }

            SkipLocked(nextOffset, reason);
        }

        _signal.Pulse();
        return true;
    }

    /// <summary>Starts a new active segment at <paramref name="nextOffset"/> (write lock held, or opening).</summary>
    private void SkipLocked(long nextOffset, string reason)
    {
        var gap = new OffsetGap(_nextOffset, nextOffset - 1);
        _logger.LogError("Offsets {First}..{Last} of {Directory} were handed out but their records are lost ({Reason}); new offsets continue at {Next} so that none is reused", gap.First, gap.Last, Directory, reason, nextOffset);
        var active = _segments[^1];
        var segment = CreateSegment(nextOffset);
        Segment[] updated;
        if (active.RecordCount == 0)
        {
            updated = [.. _segments[..^1], segment];
        }
        else
        {
            if (Options.Durability != DurabilityPolicy.Never)
            {
                SyncSegment(active);
            }

            active.SaveIndex(_logger);
            updated = [.. _segments, segment];
        }

        Volatile.Write(ref _segments, updated);
        Volatile.Write(ref _nextOffset, nextOffset);
        var listed = TryWriteManifest(ManifestEntries(updated), sync: true);
        if (active.RecordCount == 0 && listed)
        {
            DeleteSegmentFiles(active); // an empty segment below the gap: nothing in it to keep
        }

        LostTail = LostTail is { } earlier && earlier.Last + 1 == gap.First ? earlier with { Last = gap.Last } : gap;
    }

    private Segment CreateSegment(long baseOffset) =>
        Segment.Create(Directory, baseOffset, Options.FileHandles, Options.IndexIntervalBytes, Options.Durability == DurabilityPolicy.Always);

    /// <summary>
    /// Appends records (their <see cref="LogRecord.Offset"/> is ignored) and returns the offset of the first.
    /// With <paramref name="expectedNextOffset"/> other than -1, the append happens only if the first
    /// record would get exactly that offset, checked atomically with the append.
    /// Under <see cref="DurabilityPolicy.Always"/> it returns after the records are fsynced.
    /// </summary>
    /// <exception cref="IncorrectOffsetException">The expected offset does not match.</exception>
    public long Append(ReadOnlySpan<LogRecord> records, long expectedNextOffset = -1)
    {
        var first = Write(records, expectedNextOffset, replicated: false, out var ticket);
        WaitDurable(ticket);
        return first;
    }

    /// <summary>Async form of <see cref="Append"/>; cancellation is honoured only before the records are written.</summary>
    public ValueTask<long> AppendAsync(ReadOnlyMemory<LogRecord> records, long expectedNextOffset = -1, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var first = Write(records.Span, expectedNextOffset, replicated: false, out var ticket);
        return ticket == 0 || Options.Durability != DurabilityPolicy.Always
            ? new ValueTask<long>(first)
            : AwaitDurable(first, ticket);
    }

    /// <summary>
    /// Replication path: appends records with the offsets they carry (assigned by the leader).
    /// Records at or below <see cref="NewestOffset"/> are skipped, as in NATS Streaming's
    /// <c>MsgStore.Store</c>; the rest must have strictly increasing offsets (gaps are allowed:
    /// a compacted leader ships sparse offsets). Returns <see cref="NewestOffset"/> afterwards.
    /// </summary>
    public long AppendReplicated(ReadOnlySpan<LogRecord> records)
    {
        Write(records, -1, replicated: true, out var ticket);
        WaitDurable(ticket);
        return NewestOffset;
    }

    /// <summary>Async form of <see cref="AppendReplicated"/>.</summary>
    public async ValueTask<long> AppendReplicatedAsync(ReadOnlyMemory<LogRecord> records, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Write(records.Span, -1, replicated: true, out var ticket);
        await GroupSyncAsync(ticket).ConfigureAwait(false);
        return NewestOffset;
    }

    private async ValueTask<long> AwaitDurable(long first, long ticket)
    {
        await GroupSyncAsync(ticket).ConfigureAwait(false);
        return first;
    }

    private void WaitDurable(long ticket)
    {
        if (ticket != 0 && Options.Durability == DurabilityPolicy.Always)
        {
            GroupSyncAsync(ticket).AsTask().GetAwaiter().GetResult();
        }
    }

    private long Write(ReadOnlySpan<LogRecord> records, long expectedNextOffset, bool replicated, out long ticket)
    {
        if (records.IsEmpty)
        {
            throw new ArgumentException("Cannot append an empty batch.", nameof(records));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(expectedNextOffset, -1);
        ticket = 0;
        var sizes = ArrayPool<int>.Shared.Rent(records.Length);
        try
        {
            long total = 0;
            for (var i = 0; i < records.Length; i++)
            {
                var size = RecordFormat.SizeOf(records[i]);
                if (size > Options.MaxRecordBytes)
                {
                    throw new ArgumentException($"Record {i} of the batch encodes to {size} bytes, above MaxRecordBytes ({Options.MaxRecordBytes}).", nameof(records));
                }

                sizes[i] = size;
                total += size;
            }

            if (total > MaxBatchBytes)
            {
                throw new ArgumentException($"The batch encodes to {total} bytes, above the {MaxBatchBytes}-byte limit; split it.", nameof(records));
            }

            lock (_writeLock)
            {
                ThrowIfNotOpen();
                var next = _nextOffset;
                var skip = 0;
                if (replicated)
                {
                    while (skip < records.Length && records[skip].Offset < next)
                    {
                        total -= sizes[skip];
                        skip++;
                    }

                    if (skip == records.Length)
                    {
                        return next;
                    }

                    for (var i = skip + 1; i < records.Length; i++)
                    {
                        if (records[i].Offset <= records[i - 1].Offset)
                        {
                            throw new ArgumentException($"Replicated offsets must increase: {records[i].Offset} follows {records[i - 1].Offset}.", nameof(records));
                        }
                    }
                }
                else if (expectedNextOffset != -1 && expectedNextOffset != next)
                {
                    throw new IncorrectOffsetException(expectedNextOffset, next);
                }

                return WriteLocked(records[skip..], sizes.AsSpan(skip, records.Length - skip), (int)total, replicated, out ticket);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(sizes);
        }
    }

    private long WriteLocked(ReadOnlySpan<LogRecord> records, ReadOnlySpan<int> sizes, int total, bool replicated, out long ticket)
    {
        var next = _nextOffset;
        MaybeRoll(next);
        var firstOffset = replicated ? records[0].Offset : next;

        // Epochs are recorded before the bytes: a failed write then leaves at most an entry past the end, which recovery clears.
        for (var i = 0; i < records.Length; i++)
        {
            if (records[i].LeaderEpoch > _epochs.LastEpoch)
            {
                _epochs.Assign(records[i].LeaderEpoch, replicated ? records[i].Offset : next + i);
            }
        }

        var active = _segments[^1];
        var buffer = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            var p = 0;
            for (var i = 0; i < records.Length; i++)
            {
                p += RecordFormat.Write(buffer.AsSpan(p), records[i], replicated ? records[i].Offset : next + i, sizes[i]);
            }

            var basePosition = active.Size;
            active.Write(buffer.AsSpan(0, total), sync: false);
            p = 0;
            var offset = firstOffset;
            for (var i = 0; i < records.Length; i++)
            {
                offset = replicated ? records[i].Offset : next + i;
                active.OnAppended((int)(basePosition + p), sizes[i], offset, records[i].Timestamp);
                p += sizes[i];
            }

            active.PublishSize(basePosition + total);
            if (active.FirstWriteTicks == 0)
            {
                active.FirstWriteTicks = NowTicks;
            }

            Volatile.Write(ref _nextOffset, offset + 1);
            ticket = Interlocked.Increment(ref _writeTicket);
            Volatile.Write(ref _dirty, 1);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        _signal.Pulse();
        return firstOffset;
    }

    private void MaybeRoll(long next, bool ageOnly = false)
    {
        var active = _segments[^1];
        if (active.RecordCount == 0)
        {
            return;
        }

        var full = !ageOnly && active.Size - Segment.HeaderSize >= Options.SegmentMaxBytes;
        var old = Options.SegmentMaxAge > TimeSpan.Zero && active.FirstWriteTicks != 0 && NowTicks - active.FirstWriteTicks >= Options.SegmentMaxAge.Ticks;
        if (full || old)
        {
            Roll(next);
        }
    }

    /// <summary>Seals the active segment and starts a new one at <paramref name="baseOffset"/> (write lock held).</summary>
    private void Roll(long baseOffset)
    {
        var active = _segments[^1];
        if (Options.Durability != DurabilityPolicy.Never)
        {
            SyncSegment(active);
        }

        active.SaveIndex(_logger);
        var segment = CreateSegment(baseOffset);
        Volatile.Write(ref _segments, [.. _segments, segment]);
        TryWriteManifest(ManifestEntries(_segments), Options.Durability == DurabilityPolicy.Always); // unlisted newer files are kept: a lost write costs nothing
    }

    private void SyncSegment(Segment segment)
    {
        try
        {
            var started = Options.FsyncObserver is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
            segment.Sync();
            Interlocked.Increment(ref _fsyncs);
            Options.FsyncObserver?.Invoke(System.Diagnostics.Stopwatch.GetElapsedTime(started));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            CloseAfterFailure(e);
            throw;
        }
    }

    /// <summary>Group commit: the first waiter fsyncs everything written so far; later waiters share that fsync or start the next.</summary>
    private async ValueTask GroupSyncAsync(long ticket)
    {
        if (ticket == 0 || Options.Durability != DurabilityPolicy.Always)
        {
            return;
        }

        while (true)
        {
            TaskCompletionSource? lead = null;
            Task? follow = null;
            long target = 0;
            lock (_syncGate)
            {
                if (_syncedTicket >= ticket)
                {
                    return;
                }

                ThrowIfNotOpen();
                if (_syncInFlight is null)
                {
                    lead = _syncInFlight = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    target = Interlocked.Read(ref _writeTicket);
                }
                else
                {
                    follow = _syncInFlight.Task;
                }
            }

            if (lead is null)
            {
                await follow!.ConfigureAwait(false);
                continue;
            }

            try
            {
                // A roll fsyncs the segment it seals, so syncing the current active one covers every ticket up to target.
                SyncSegment(Volatile.Read(ref _segments)[^1]);
            }
            catch (Exception e)
            {
                lock (_syncGate)
                {
                    _syncInFlight = null;
                }

                lead.SetException(new CommitLogClosedException(Directory, e));
                throw;
            }

            lock (_syncGate)
            {
                _syncedTicket = Math.Max(_syncedTicket, target);
                _syncInFlight = null;
            }

            lead.SetResult();
        }
    }

    private void SyncIfDirty()
    {
        if (Volatile.Read(ref _state) != StateOpen || Interlocked.Exchange(ref _dirty, 0) == 0)
        {
            return;
        }

        try
        {
            SyncSegment(Volatile.Read(ref _segments)[^1]);
        }
        catch (Exception e) when (Volatile.Read(ref _state) != StateOpen || e is Files.FileRetiredException)
        {
            // The log closed under the timer; Dispose synced what it had.
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Interval fsync of {Directory} failed; the log is closed", Directory);
        }
    }

    /// <summary>
    /// Sets the high watermark (-1 ..= <see cref="NewestOffset"/>) and wakes committed readers. The value is
    /// checkpointed atomically within <see cref="CommitLogOptions.HighWatermarkCheckpointInterval"/> and on close.
    /// </summary>
    public void SetHighWatermark(long highWatermark)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(highWatermark, -1);
        lock (_writeLock)
        {
            ThrowIfNotOpen();
            if (highWatermark > _nextOffset - 1)
            {
                throw new ArgumentOutOfRangeException(nameof(highWatermark), highWatermark, $"The high watermark cannot pass the newest offset ({_nextOffset - 1}).");
            }

            if (highWatermark == _highWatermark)
            {
                return;
            }

            if (Options.HighWatermarkCheckpointInterval == TimeSpan.Zero)
            {
                PersistHighWatermark(highWatermark);
            }
            else
            {
                Volatile.Write(ref _highWatermark, highWatermark);
                // One one-shot timer per dirty period: idle partitions (thousands of them) hold no timer.
                _highWatermarkTimer ??= Options.TimeProvider.CreateTimer(_ => CheckpointHighWatermark(), null, Options.HighWatermarkCheckpointInterval, Timeout.InfiniteTimeSpan);
            }
        }

        _signal.Pulse();
    }

    private void PersistHighWatermark(long highWatermark)
    {
        CheckpointFile.Write(Path.Combine(Directory, HighWatermarkFileName), HighWatermarkKind, BitConverter.GetBytes(highWatermark), Options.Durability == DurabilityPolicy.Always);
        Volatile.Write(ref _highWatermark, highWatermark);
        _checkpointedHighWatermark = highWatermark;
    }

    // Called under the write lock: writes the in-memory HW if it moved since the last checkpoint.
    private void FlushHighWatermarkCheckpoint()
    {
        _highWatermarkTimer?.Dispose();
        _highWatermarkTimer = null;
        if (_highWatermark != _checkpointedHighWatermark)
        {
            PersistHighWatermark(_highWatermark);
        }
    }

    private void CheckpointHighWatermark()
    {
        try
        {
            lock (_writeLock)
            {
                if (Volatile.Read(ref _state) == StateOpen)
                {
                    FlushHighWatermarkCheckpoint();
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The HW in memory stays right; the next change schedules another try, and close retries.
            _logger.LogError(e, "Checkpointing the high watermark of {Directory} failed", Directory);
        }
    }

    /// <summary>The newest leader epoch recorded, or -1.</summary>
    public long LastLeaderEpoch
    {
        get
        {
            lock (_writeLock)
            {
                return _epochs.LastEpoch;
            }
        }
    }

    /// <summary>The leader-epoch cache as (epoch, start offset) pairs, oldest first.</summary>
    public IReadOnlyList<(long Epoch, long StartOffset)> LeaderEpochs
    {
        get
        {
            lock (_writeLock)
            {
                return [.. _epochs.Entries];
            }
        }
    }

    /// <summary>
    /// Records that this broker leads from <paramref name="epoch"/>: assigns (epoch, <see cref="NewestOffset"/>)
    /// as Liftbridge does. Ignored when the epoch is not newer than the last one.
    /// </summary>
    public void NewLeaderEpoch(long epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        lock (_writeLock)
        {
            ThrowIfNotOpen();
            if (!_epochs.Assign(epoch, _nextOffset - 1))
            {
                _logger.LogWarning("Ignoring leader epoch {Epoch} in {Directory}: the last epoch is {Last}", epoch, Directory, _epochs.LastEpoch);
            }
        }
    }

    /// <summary>Start offset of the first epoch above <paramref name="epoch"/>, or <see cref="NewestOffset"/> when there is none.</summary>
    public long LastOffsetForLeaderEpoch(long epoch)
    {
        lock (_writeLock)
        {
            ThrowIfNotOpen();
            return _epochs.LastOffsetFor(epoch, _nextOffset - 1);
        }
    }

    private void ThrowIfNotOpen()
    {
        switch (Volatile.Read(ref _state))
        {
            case StateClosed:
                throw new CommitLogClosedException(Directory, _closeCause);
            case StateDeleted:
                throw new CommitLogDeletedException(Directory);
        }
    }

    private void CloseAfterFailure(Exception cause)
    {
        _closeCause = cause;
        if (Interlocked.CompareExchange(ref _state, StateClosed, StateOpen) != StateOpen)
        {
            return;
        }

        _logger.LogError(cause, "Closing the commit log in {Directory} after an I/O failure", Directory);
        _fsyncTimer?.Dispose();
        _highWatermarkTimer?.Dispose();
        foreach (var segment in Volatile.Read(ref _segments))
        {
            segment.File.Retire();
        }

        _signal.Pulse();
    }

    /// <summary>Closes the log: saves indexes, syncs (unless the policy is Never) and releases its files. Idempotent.</summary>
    public void Dispose()
    {
        lock (_maintenanceLock)
        {
            lock (_writeLock)
            {
                if (Volatile.Read(ref _state) != StateOpen)
                {
                    return;
                }

                _fsyncTimer?.Dispose();
                var segments = _segments;
                try
                {
                    if (Options.Durability != DurabilityPolicy.Never)
                    {
                        segments[^1].Sync();
                    }

                    FlushHighWatermarkCheckpoint();
                }
                catch (IOException e)
                {
                    _logger.LogError(e, "Final fsync or high-watermark checkpoint of {Directory} failed", Directory);
                }

                foreach (var segment in segments)
                {
                    segment.SaveIndex(_logger);
                    segment.File.Retire();
                }

                Volatile.Write(ref _state, StateClosed);
            }
        }

        _signal.Pulse();
    }

    /// <summary>Closes the log and deletes its directory. Later calls on this instance throw <see cref="CommitLogDeletedException"/>.</summary>
    public void Delete()
    {
        lock (_maintenanceLock)
        {
            lock (_writeLock)
            {
                if (Volatile.Read(ref _state) == StateDeleted)
                {
                    return;
                }

                _fsyncTimer?.Dispose();
                _highWatermarkTimer?.Dispose();
                foreach (var segment in _segments)
                {
                    segment.File.Retire();
                }

                Volatile.Write(ref _state, StateDeleted);
                System.IO.Directory.Delete(Directory, recursive: true);
            }
        }

        _signal.Pulse();
    }
}
