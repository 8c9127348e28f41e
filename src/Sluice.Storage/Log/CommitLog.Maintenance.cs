// Failure policy: retention and compaction first change the in-memory segment list (what
// readers see), then the segment manifest (fsynced: a segment that open finds missing must have
// been lost, not removed here), then the files. Retention: a file that cannot be deleted, or whose
// removal the manifest could not record, is logged and stays on disk; the next open sees it again
// and the next retention run removes it. Compaction writes a
// complete `.cleaned` file plus its index before renaming it over the old segment, so a crash
// leaves either the old or the new segment (and `.cleaned` leftovers are deleted on open).
// Truncation cuts the segment holding the offset in place after deleting its index files, so a
// crash in between only costs an index rebuild.
using System.Buffers;
using Microsoft.Extensions.Logging;
using Sluice.Storage.Log.Files;
using Sluice.Storage.Log.Index;
using Sluice.Storage.Log.Records;
using Sluice.Storage.Log.Segments;

namespace Sluice.Storage.Log;

public sealed partial class CommitLog
{
    // Compaction copies kept records through a buffer of this size: few syscalls, modest memory.
    private const int CopyBufferSize = 1024 * 1024;

    /// <summary>
    /// Rolls the active segment if it is due by age, then deletes whole segments from the head by age (newest record older than RetentionMaxAge),
    /// then by message count and by bytes (keeping the newest segments within the limits).
    /// The active segment is never deleted, so <see cref="NextOffset"/> never goes backwards.
    /// Returns the number of segments deleted.
    /// </summary>
    public int EnforceRetention()
    {
        lock (_maintenanceLock)
        {
            ThrowIfNotOpen();
            lock (_writeLock)
            {
                // An idle partition's active segment must still roll by age, or its records would never expire.
                MaybeRoll(_nextOffset, ageOnly: true);
            }

            var segments = Volatile.Read(ref _segments);
            var n = segments.Length;
            var remove = 0;
            if (Options.RetentionMaxAge > TimeSpan.Zero)
            {
                var nowNs = (Options.TimeProvider.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks * 100;
                var cutoff = nowNs - (Options.RetentionMaxAge.Ticks * 100);
                while (remove < n - 1 && segments[remove].MaxTimestamp < cutoff)
                {
                    remove++;
                }
            }

            if (Options.RetentionMaxMessages > 0)
            {
                remove = Math.Max(remove, CountOverLimit(segments, s => s.RecordCount, Options.RetentionMaxMessages));
            }

            if (Options.RetentionMaxBytes > 0)
            {
                remove = Math.Max(remove, CountOverLimit(segments, s => s.Size, Options.RetentionMaxBytes));
            }

            if (remove == 0)
            {
                return 0;
            }

            bool listed;
            lock (_writeLock)
            {
                var current = _segments;
                Volatile.Write(ref _segments, current[remove..]);
                _epochs.ClearEarliest(_segments[0].BaseOffset);
                listed = TryWriteManifest(ManifestEntries(_segments), sync: true);
            }

            for (var i = 0; i < remove; i++)
            {
                if (listed)
                {
                    DeleteSegmentFiles(segments[i]);
                }
                else
                {
                    segments[i].File.Retire();
                }
            }

            return remove;
        }
    }

    /// <summary>How many leading segments to drop so that the newest ones, walking back, stay within <paramref name="limit"/> (never the active one).</summary>
    private static int CountOverLimit(Segment[] segments, Func<Segment, long> measure, long limit)
    {
        long total = 0;
        for (var i = segments.Length - 1; i >= 0; i--)
        {
            total += measure(segments[i]);
            if (total > limit)
            {
                return Math.Min(i + 1, segments.Length - 1);
            }
        }

        return 0;
    }

    private void DeleteSegmentFiles(Segment segment)
    {
        segment.File.Retire();
        try
        {
            IndexFiles.Delete(segment.Path);
            File.Delete(segment.Path);
        }
        catch (IOException e)
        {
            _logger.LogError(e, "Could not delete segment {Path}; it reappears on the next open and the next retention run deletes it", segment.Path);
        }
    }

    /// <summary>
    /// Compacts by key: in sealed segments, keeps records without a key, records at or past the
    /// high watermark and, for each key, the latest record at or below it; drops the rest.
    /// Offsets stay sparse and are never reused; concurrent readers carry on across it.
    /// Returns the number of records removed.
    /// </summary>
    public long Compact()
    {
        lock (_maintenanceLock)
        {
            ThrowIfNotOpen();
            var highWatermark = HighWatermark;
            var segments = Volatile.Read(ref _segments);
            if (highWatermark < 0 || segments.Length < 2)
            {
                return 0;
            }

            var latest = LatestOffsetByKey(segments, highWatermark);
            long removed = 0;
            for (var i = 0; i < segments.Length - 1; i++)
            {
                removed += CompactSegment(segments[i], latest, highWatermark);
            }

            return removed;
        }
    }

    private static Dictionary<byte[], long> LatestOffsetByKey(Segment[] segments, long highWatermark)
    {
        var latest = new Dictionary<byte[], long>(KeyComparer.Instance);
        var lookup = latest.GetAlternateLookup<ReadOnlySpan<byte>>();
        foreach (var segment in segments)
        {
            using var scanner = segment.Scan(Segment.HeaderSize, segment.Size);
            while (true)
            {
                var position = scanner.Position;
                var step = scanner.Next(out var info, out var record);
                if (step == ScanStep.End || (step == ScanStep.Record && info.Offset > highWatermark))
                {
                    break;
                }

                if (step != ScanStep.Record)
                {
                    throw segment.Damaged(position, -1, "a record fails its checks during compaction");
                }

                if (RecordFormat.TryGetKey(record, out var key))
                {
                    lookup[key] = info.Offset;
                }
            }

            if (segment.LastOffset >= highWatermark)
            {
                break;
            }
        }

        return latest;
    }

    private long CompactSegment(Segment segment, Dictionary<byte[], long> latest, long highWatermark)
    {
        var lookup = latest.GetAlternateLookup<ReadOnlySpan<byte>>();
        bool Keep(in RecordInfo info, ReadOnlySpan<byte> record) =>
            info.Offset >= highWatermark || !RecordFormat.TryGetKey(record, out var key) || lookup[key] == info.Offset;

        // First pass: leave untouched segments alone.
        long drop = 0;
        using (var scanner = segment.Scan(Segment.HeaderSize, segment.Size))
        {
            while (scanner.Next(out var info, out var record) == ScanStep.Record)
            {
                if (!Keep(info, record))
                {
                    drop++;
                }
            }
        }

        if (drop == 0)
        {
            return 0;
        }

        var cleaned = segment.Path + ".cleaned";
        var sync = Options.Durability != DurabilityPolicy.Never;
        long kept = 0;
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        try
        {
            using var output = File.OpenHandle(cleaned, FileMode.Create, FileAccess.ReadWrite);
            Segment.WriteHeader(buffer, segment.BaseOffset);
            var filled = Segment.HeaderSize;
            long written = 0;
            using (var scanner = segment.Scan(Segment.HeaderSize, segment.Size))
            {
                while (true)
                {
                    var position = scanner.Position;
                    var step = scanner.Next(out var info, out var record);
                    if (step == ScanStep.End)
                    {
                        break;
                    }

                    if (step != ScanStep.Record)
                    {
                        throw segment.Damaged(position, -1, "a record fails its checks during compaction");
                    }

                    if (!Keep(info, record))
                    {
                        continue;
                    }

                    kept++;
                    if (filled + record.Length > buffer.Length)
                    {
                        RandomAccess.Write(output, buffer.AsSpan(0, filled), written);
                        written += filled;
                        filled = 0;
                    }

                    if (record.Length > buffer.Length)
                    {
                        RandomAccess.Write(output, record, written);
                        written += record.Length;
                    }
                    else
                    {
                        record.CopyTo(buffer.AsSpan(filled));
                        filled += record.Length;
                    }
                }
            }

            RandomAccess.Write(output, buffer.AsSpan(0, filled), written);
            if (sync)
            {
                FileSync.File(output);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        // The new index goes in first: should we crash before the rename, its size no longer matches the old segment and it is rebuilt.
        if (kept > 0)
        {
            Segment.IndexRewrite(cleaned, segment.Path, segment.BaseOffset, Options.FileHandles, Options.IndexIntervalBytes, _logger);
        }

        lock (_writeLock)
        {
            ThrowIfNotOpen();
            var current = _segments;
            var at = Array.IndexOf(current, segment);
            if (kept == 0)
            {
                File.Delete(cleaned);
                Volatile.Write(ref _segments, [.. current[..at], .. current[(at + 1)..]]);
                if (TryWriteManifest(ManifestEntries(_segments), sync: true))
                {
                    DeleteSegmentFiles(segment);
                }
                else
                {
                    segment.File.Retire();
                }

                return drop;
            }

            // Listed with its new, smaller size before the rename: after a crash either file passes the size check.
            var entries = ManifestEntries(current);
            entries[at] = entries[at] with { SealedSize = new FileInfo(cleaned).Length };
            if (!TryWriteManifest(entries, sync: true))
            {
                File.Delete(cleaned);
                return 0;
            }

            segment.File.Retire();
            File.Move(cleaned, segment.Path, overwrite: true);
            if (sync)
            {
                FileSync.Directory(Directory);
            }

            var replacement = Segment.Open(segment.Path, segment.BaseOffset, Options.FileHandles, Options.IndexIntervalBytes, isLast: false, _logger);
            var updated = (Segment[])current.Clone();
            updated[at] = replacement;
            Volatile.Write(ref _segments, updated);
        }

        return drop;
    }

    /// <summary>
    /// Removes every record at or after <paramref name="offset"/> (replication truncates an
    /// uncommitted tail); the next append gets <paramref name="offset"/>. A no-op when
    /// <paramref name="offset"/> is at or past <see cref="NextOffset"/>. Lowers the high watermark
    /// and clears leader epochs that start at or after it.
    /// </summary>
    public void Truncate(long offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        lock (_maintenanceLock)
        {
            lock (_writeLock)
            {
                ThrowIfNotOpen();
                if (offset >= _nextOffset)
                {
                    return;
                }

                var segments = _segments;
                var keep = 0;
                while (keep < segments.Length && segments[keep].BaseOffset < offset)
                {
                    keep++;
                }

                // Both go first: after a crash in between, open must see neither the removed segments as
                // lost nor a high watermark past the cut as a lost tail to skip.
                if (_highWatermark >= offset || _checkpointedHighWatermark >= offset)
                {
                    PersistHighWatermark(Math.Min(_highWatermark, offset - 1));
                }

                TryWriteManifest(ManifestEntries(segments[..keep]), sync: Options.Durability != DurabilityPolicy.Never);
                for (var i = keep; i < segments.Length; i++)
                {
                    DeleteSegmentFiles(segments[i]);
                }

                var remaining = new List<Segment>(segments[..keep]);
                if (keep > 0 && remaining[^1].LastOffset >= offset)
                {
                    var last = remaining[^1];
                    var cut = last.PositionOf(offset);
                    last.File.Retire();
                    IndexFiles.Delete(last.Path);
                    using (var handle = File.OpenHandle(last.Path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete))
                    {
                        RandomAccess.SetLength(handle, cut);
                        if (Options.Durability != DurabilityPolicy.Never)
                        {
                            FileSync.File(handle);
                        }
                    }

                    remaining[^1] = Segment.Open(last.Path, last.BaseOffset, Options.FileHandles, Options.IndexIntervalBytes, isLast: true, _logger);
                }

                // Keep the next offset exactly at `offset` even when the kept records end earlier (a compacted gap).
                if (remaining.Count == 0 || remaining[^1].LastOffset + 1 < offset)
                {
                    if (remaining.Count > 0)
                    {
                        remaining[^1].SaveIndex(_logger);
                    }

                    remaining.Add(CreateSegment(offset));
                }

                Volatile.Write(ref _segments, [.. remaining]);
                Volatile.Write(ref _nextOffset, offset);
                TryWriteManifest(ManifestEntries(_segments), sync: Options.Durability != DurabilityPolicy.Never);
                _epochs.ClearLatest(offset);
            }
        }

        _signal.Pulse();
    }

    /// <summary>Byte-array keys compared by content, with span lookups so that known keys cost no allocation.</summary>
    private sealed class KeyComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static readonly KeyComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] obj) => GetHashCode(obj.AsSpan());

        public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

        public int GetHashCode(ReadOnlySpan<byte> alternate)
        {
            var hash = new HashCode();
            hash.AddBytes(alternate);
            return hash.ToHashCode();
        }

        public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();
    }
}
