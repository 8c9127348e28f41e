// Failure policy: a write error throws to the appender and publishes nothing, so the next append
// overwrites the same position; any bytes left past the published size are cut by recovery.
// Recovery on open: the last segment's tail is checked record by record from where its index
// ends; a torn or corrupt tail is truncated (with a warning), unless a valid record follows the
// damage, which is reported as CorruptLogException. A sealed segment is never truncated: any
// damage found in it is reported with the file and position. Reads verify every record's CRC:
// a read returns the records before a damaged one, and a read that starts at it throws.
using System.Buffers;
using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using Sluice.Storage.Log.Files;
using Sluice.Storage.Log.Index;
using Sluice.Storage.Log.Records;

namespace Sluice.Storage.Log.Segments;

/// <summary>
/// One segment file, <c>%020d.log</c> named by its base offset, with a 16-byte header
/// (uint32 magic "SLOG" | uint16 version 1 | uint16 flags 0 | int64 baseOffset) followed by
/// records (<see cref="RecordFormat"/>). One writer appends; readers read up to the published size.
/// </summary>
internal sealed class Segment
{
    public const int HeaderSize = 16;
    public const string Extension = ".log";
    private const uint Magic = 0x474F4C53; // "SLOG"
    private const ushort Version = 1;

    // Below this size a segment is rescanned on open rather than indexed on disk: a scan of 64 KiB
    // costs less than writing and renaming two files, which matters with thousands of idle partitions.
    private const long MinIndexedSize = 64 * 1024;

    // Scanning reads this much at a time: large enough that recovery does few syscalls.
    private const int ScanBufferSize = 1024 * 1024;

    private readonly int _indexInterval;
    private long _size;
    private long _lastOffset;
    private long _recordCount;
    private long _maxTimestamp = long.MinValue;
    private int _lastIndexedPosition = int.MinValue;
    private bool _indexDirty;

    private Segment(string path, long baseOffset, FileHandleBudget budget, int indexInterval, SegmentIndex index)
    {
        Path = path;
        BaseOffset = baseOffset;
        File = new PooledFile(path, budget);
        Index = index;
        _indexInterval = indexInterval;
        _lastOffset = baseOffset - 1;
        _size = HeaderSize;
    }

    public string Path { get; }

    public long BaseOffset { get; }

    public PooledFile File { get; }

    public SegmentIndex Index { get; }

    /// <summary>Bytes of the file holding complete records (header included).</summary>
    public long Size => Volatile.Read(ref _size);

    /// <summary>Offset of the last record, or BaseOffset - 1 when the segment is empty.</summary>
    public long LastOffset => Volatile.Read(ref _lastOffset);

    public long RecordCount => Volatile.Read(ref _recordCount);

    public long MaxTimestamp => Volatile.Read(ref _maxTimestamp);

    /// <summary>Offset of the first record, or -1 when empty.</summary>
    public long FirstOffset
    {
        get
        {
            var entries = Index.Snapshot();
            return entries.IsEmpty ? -1 : entries[0].Offset;
        }
    }

    /// <summary>Wall-clock time (UTC ticks) of the first write seen by this process, for age-based rolls.</summary>
    public long FirstWriteTicks { get; set; }

    public static string FileName(long baseOffset) => $"{baseOffset:D20}{Extension}";

    public static Segment Create(string directory, long baseOffset, FileHandleBudget budget, int indexInterval, bool sync)
    {
        var path = System.IO.Path.Combine(directory, FileName(baseOffset));
        Span<byte> header = stackalloc byte[HeaderSize];
        WriteHeader(header, baseOffset);
        using (var handle = System.IO.File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete))
        {
            RandomAccess.Write(handle, header, 0);
            RandomAccess.SetLength(handle, HeaderSize);
            if (sync)
            {
                FileSync.File(handle);
            }
        }

        if (sync)
        {
            FileSync.Directory(directory);
        }

        // No stale index can exist under this name: deleting a segment deletes its index files too.
        return new Segment(path, baseOffset, budget, indexInterval, new SegmentIndex()) { _indexDirty = true };
    }

    /// <summary>Scans a rewritten segment at <paramref name="tempPath"/> and writes the index files of <paramref name="finalPath"/> for it.</summary>
    public static void IndexRewrite(string tempPath, string finalPath, long baseOffset, FileHandleBudget budget, int indexInterval, ILogger logger)
    {
        var segment = new Segment(tempPath, baseOffset, budget, indexInterval, new SegmentIndex());
        try
        {
            segment.CheckHeader();
            segment.Recover(HeaderSize, new FileInfo(tempPath).Length, isLast: false, logger);
            IndexFiles.Write(finalPath, baseOffset, new SegmentSummary(segment.Size, segment.RecordCount, segment.LastOffset, segment.MaxTimestamp), segment.Index.Snapshot());
        }
        finally
        {
            segment.File.Retire();
        }
    }

    /// <summary>File position of the first record at or after <paramref name="offset"/>, or <see cref="Size"/> when none.</summary>
    public long PositionOf(long offset)
    {
        var size = Size;
        var (position, _, _) = Seek(offset, size);
        return position < 0 ? size : position;
    }

    public static void WriteHeader(Span<byte> header, long baseOffset)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], Version);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], baseOffset);
    }

    /// <summary>
    /// Opens an existing segment: trusts a consistent index, else rebuilds it; checks and repairs the tail of the last segment.
    /// <paramref name="indexPresent"/> false (the caller listed the directory and saw no index file) skips looking for one:
    /// the active segment has none until it is sealed, and a missing file costs an exception.
    /// </summary>
    public static Segment Open(string path, long baseOffset, FileHandleBudget budget, int indexInterval, bool isLast, ILogger logger, bool indexPresent = true)
    {
        var fileLength = new FileInfo(path).Length;
        if (fileLength < HeaderSize)
        {
            if (!isLast)
            {
                throw new CorruptLogException(path, fileLength, baseOffset, "the segment is shorter than its header");
            }

            // Only the newest segment can be caught mid-creation: give it its header back.
            logger.LogWarning("Segment {Path} was torn at creation ({Length} bytes); rewriting its header", path, fileLength);
            using var handle = System.IO.File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            Span<byte> fresh = stackalloc byte[HeaderSize];
            WriteHeader(fresh, baseOffset);
            RandomAccess.Write(handle, fresh, 0);
            RandomAccess.SetLength(handle, HeaderSize);
            fileLength = HeaderSize;
        }

        Segment segment;
        if (indexPresent
            && IndexFiles.TryLoad(path, baseOffset, out var summary, out var index)
            && summary.CoveredBytes >= HeaderSize
            && summary.CoveredBytes <= fileLength
            && (isLast || summary.CoveredBytes == fileLength))
        {
            segment = new Segment(path, baseOffset, budget, indexInterval, index);
            segment.CheckHeader();
            if (!segment.AdoptIndex(summary))
            {
                logger.LogWarning("Index of segment {Path} disagrees with the segment; rebuilding it", path);
                segment = new Segment(path, baseOffset, budget, indexInterval, new SegmentIndex());
                segment.Recover(HeaderSize, fileLength, isLast, logger);
            }
            else if (summary.CoveredBytes < fileLength)
            {
                segment.Recover(summary.CoveredBytes, fileLength, isLast, logger);
            }
        }
        else
        {
            segment = new Segment(path, baseOffset, budget, indexInterval, new SegmentIndex());
            segment.CheckHeader();
            segment.Recover(HeaderSize, fileLength, isLast, logger);
        }

        return segment;
    }

    private void CheckHeader()
    {
        Span<byte> header = stackalloc byte[HeaderSize];
        using var lease = File.Lease();
        var n = SegmentIo.ReadFully(lease.Handle, header, 0);
        if (n < HeaderSize
            || BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic
            || BinaryPrimitives.ReadUInt16LittleEndian(header[4..]) != Version
            || BinaryPrimitives.ReadInt64LittleEndian(header[8..]) != BaseOffset)
        {
            throw new CorruptLogException(Path, 0, BaseOffset, "bad segment header (magic, version or base offset)");
        }
    }

    /// <summary>Takes a loaded index after checking that its last entry leads exactly to the covered size.</summary>
    private bool AdoptIndex(in SegmentSummary summary)
    {
        var entries = Index.Snapshot();
        if (entries.IsEmpty)
        {
            _size = summary.CoveredBytes;
            return summary.CoveredBytes == HeaderSize;
        }

        var last = entries[^1];
        long count = 0, lastOffset = last.Offset - 1, maxTs = last.MaxTimestampBefore;
        using (var scanner = new SegmentScanner(File.Lease(), last.Position, summary.CoveredBytes, _indexInterval * 2))
        {
            while (true)
            {
                var step = scanner.Next(out var info, out _);
                if (step == ScanStep.End)
                {
                    break;
                }

                if (step != ScanStep.Record || info.Offset <= lastOffset || (count == 0 && info.Offset != last.Offset))
                {
                    return false;
                }

                count++;
                lastOffset = info.Offset;
                maxTs = Math.Max(maxTs, info.Timestamp);
            }

            if (scanner.Position != summary.CoveredBytes)
            {
                return false;
            }
        }

        if (lastOffset != summary.LastOffset || maxTs > summary.MaxTimestamp || count > summary.RecordCount)
        {
            return false;
        }

        _size = summary.CoveredBytes;
        _lastOffset = summary.LastOffset;
        _recordCount = summary.RecordCount;
        _maxTimestamp = summary.MaxTimestamp;
        _lastIndexedPosition = last.Position;
        return true;
    }

    /// <summary>Scans [from, end) adding records; repairs a torn tail of the last segment, reports anything else.</summary>
    private void Recover(long from, long end, bool isLast, ILogger logger)
    {
        _indexDirty = true;
        _size = from;
        using var scanner = new SegmentScanner(File.Lease(), from, end, ScanBufferSize);
        while (true)
        {
            var position = scanner.Position;
            var step = scanner.Next(out var info, out _);
            if (step == ScanStep.End)
            {
                return;
            }

            if (step == ScanStep.Record && info.Offset > _lastOffset && info.Offset >= BaseOffset)
            {
                OnAppended((int)position, info.Size, info.Offset, info.Timestamp);
                _size = position + info.Size;
                continue;
            }

            var reason = step switch
            {
                ScanStep.Torn => "the record is cut short",
                ScanStep.Corrupt => "the record fails its checksum or structure check",
                _ => $"offset {info.Offset} does not follow {_lastOffset}",
            };
            if (!isLast || step == ScanStep.Record || ValidRecordFollows(position, end))
            {
                throw new CorruptLogException(Path, position, _lastOffset + 1, reason);
            }

            logger.LogWarning("Truncating the torn tail of {Path} at byte {Position} ({Lost} bytes): {Reason}", Path, position, end - position, reason);
            using var lease = File.Lease();
            RandomAccess.SetLength(lease.Handle, position);
            return;
        }
    }

    /// <summary>True when the damaged record at <paramref name="position"/> is followed by a valid one: damage in the middle, not a torn tail.</summary>
    private bool ValidRecordFollows(long position, long end)
    {
        using var lease = File.Lease();
        Span<byte> prefix = stackalloc byte[4];
        if (SegmentIo.ReadFully(lease.Handle, prefix, position) < 4)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(prefix);
        if (length < RecordFormat.MinSize - 4 || length > RecordFormat.MaxPlausibleSize)
        {
            return false;
        }

        var next = position + 4 + length;
        if (next + RecordFormat.MinSize > end)
        {
            return false;
        }

        using var scanner = new SegmentScanner(File.Lease(), next, end, 64 * 1024);
        return scanner.Next(out var info, out _) == ScanStep.Record && info.Offset > _lastOffset;
    }

    /// <summary>Accounts for a record written at <paramref name="position"/> (writer only; publish with <see cref="PublishSize"/>).</summary>
    public void OnAppended(int position, int size, long offset, long timestamp)
    {
        if (_recordCount == 0 || position - _lastIndexedPosition >= _indexInterval)
        {
            Index.Add(new IndexEntry(offset, position, _recordCount == 0 ? long.MinValue : _maxTimestamp));
            _lastIndexedPosition = position;
        }

        if (timestamp > _maxTimestamp)
        {
            Volatile.Write(ref _maxTimestamp, timestamp);
        }

        Volatile.Write(ref _recordCount, _recordCount + 1);
        Volatile.Write(ref _lastOffset, offset);
        _indexDirty = true;
    }

    public void PublishSize(long size) => Volatile.Write(ref _size, size);

    /// <summary>Writes encoded records at the end of the segment (writer only).</summary>
    public void Write(ReadOnlySpan<byte> bytes, bool sync)
    {
        using var lease = File.Lease();
        RandomAccess.Write(lease.Handle, bytes, Size);
        if (sync)
        {
            FileSync.File(lease.Handle);
        }
    }

    public void Sync()
    {
        using var lease = File.Lease();
        FileSync.File(lease.Handle);
    }

    /// <summary>Persists the index files if they changed (on roll and close). Failures are logged: indexes are rebuildable.</summary>
    public void SaveIndex(ILogger logger)
    {
        if (!_indexDirty || Size < MinIndexedSize)
        {
            return;
        }

        try
        {
            IndexFiles.Write(Path, BaseOffset, new SegmentSummary(Size, RecordCount, LastOffset, MaxTimestamp), Index.Snapshot());
            _indexDirty = false;
        }
        catch (IOException e)
        {
            logger.LogWarning(e, "Could not write the index of {Path}; it will be rebuilt on the next open", Path);
        }
    }

    public SegmentScanner Scan(long from, long end) => new(File.Lease(), from, end, ScanBufferSize);

    /// <summary>File position of the first record with an offset at or after <paramref name="offset"/> and its size, or (-1, 0).</summary>
    private (long Position, int Size, long Offset) Seek(long offset, long size)
    {
        var entries = Index.Snapshot();
        var i = SegmentIndex.FindByOffset(entries, offset);
        long start = i < 0 ? HeaderSize : entries[i].Position;
        using var scanner = new SegmentScanner(File.Lease(), start, size, (_indexInterval * 2) + 1024);
        while (true)
        {
            var position = scanner.Position;
            switch (scanner.Next(out var info, out _))
            {
                case ScanStep.Record when info.Offset >= offset:
                    return (position, info.Size, info.Offset);
                case ScanStep.Record:
                    continue;
                case ScanStep.End:
                    return (-1, 0, -1);
                default:
                    throw Damaged(position, offset, "a record fails its checks on read");
            }
        }
    }

    public CorruptLogException Damaged(long position, long offset, string reason)
    {
        if (File.IsRetired)
        {
            throw new FileRetiredException(Path);
        }

        return new CorruptLogException(Path, position, offset, reason);
    }

    /// <summary>Records with offsets in [offset, lastOffset], up to maxBytes (at least one); null when the segment has none.</summary>
    public RecordBatch? Read(long offset, int maxBytes, long lastOffset)
    {
        var size = Size;
        if (LastOffset < offset || offset > lastOffset)
        {
            return null;
        }

        var (position, firstSize, firstOffset) = Seek(offset, size);
        if (position < 0 || firstOffset > lastOffset)
        {
            return null;
        }

        var window = (int)Math.Min(size - position, Math.Max(firstSize, maxBytes));
        var buffer = ArrayPool<byte>.Shared.Rent(window);
        var records = ArrayPool<LogRecord>.Shared.Rent(Math.Clamp(window / 256, 16, 4096));
        var count = 0;
        var taken = 0;
        try
        {
            using (var lease = File.Lease())
            {
                if (SegmentIo.ReadFully(lease.Handle, buffer.AsSpan(0, window), position) < window)
                {
                    throw Damaged(position, firstOffset, "the segment is shorter than its indexed size");
                }
            }

            var p = 0;
            long last = offset - 1;
            while (p < window)
            {
                var status = RecordFormat.TryParse(buffer.AsSpan(p, window - p), out var info);
                if (status == ParseStatus.Incomplete)
                {
                    break;
                }

                if (status == ParseStatus.Corrupt)
                {
                    if (count > 0)
                    {
                        break; // serve the records before the damage; the next read starts at it and throws
                    }

                    throw Damaged(position + p, last + 1, "a record fails its checks on read");
                }

                if (info.Offset > lastOffset || (count > 0 && taken + info.Size > maxBytes))
                {
                    break;
                }

                if (count == records.Length)
                {
                    var grown = ArrayPool<LogRecord>.Shared.Rent(records.Length * 2);
                    records.AsSpan(0, count).CopyTo(grown);
                    ArrayPool<LogRecord>.Shared.Return(records, clearArray: true);
                    records = grown;
                }

                records[count++] = RecordFormat.Decode(buffer.AsMemory(p, info.Size));
                taken += info.Size;
                p += info.Size;
                last = info.Offset;
            }

            return new RecordBatch(buffer, records, count, last + 1, taken);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<LogRecord>.Shared.Return(records, clearArray: true);
            throw;
        }
    }

    /// <summary>Records with offsets at or below <paramref name="startOffset"/>, newest first, up to maxBytes (at least one); null when none.</summary>
    public RecordBatch? ReadReverse(long startOffset, int maxBytes)
    {
        var size = Size;
        var entries = Index.Snapshot();
        var k = SegmentIndex.FindByOffset(entries, startOffset);
        if (k < 0)
        {
            return null;
        }

        long end = k + 1 < entries.Length ? entries[k + 1].Position : size;
        var j = k;
        while (j > 0 && end - entries[j - 1].Position <= maxBytes)
        {
            j--;
        }

        long begin = entries[j].Position;
        var window = (int)(end - begin);
        var buffer = ArrayPool<byte>.Shared.Rent(window);
        var spans = ArrayPool<RecordInfo>.Shared.Rent(64);
        var positions = ArrayPool<int>.Shared.Rent(64);
        LogRecord[]? records = null;
        try
        {
            using (var lease = File.Lease())
            {
                if (SegmentIo.ReadFully(lease.Handle, buffer.AsSpan(0, window), begin) < window)
                {
                    throw Damaged(begin, entries[j].Offset, "the segment is shorter than its indexed size");
                }
            }

            var n = 0;
            var p = 0;
            while (p < window)
            {
                var status = RecordFormat.TryParse(buffer.AsSpan(p, window - p), out var info);
                if (status != ParseStatus.Ok)
                {
                    throw Damaged(begin + p, -1, "a record fails its checks on read");
                }

                if (info.Offset > startOffset)
                {
                    break;
                }

                if (n == spans.Length)
                {
                    Grow(ref spans, n);
                    Grow(ref positions, n);
                }

                spans[n] = info;
                positions[n++] = p;
                p += info.Size;
            }

            // Keep the newest records that fit in maxBytes (at least one).
            var first = n - 1;
            var taken = spans[first].Size;
            while (first > 0 && taken + spans[first - 1].Size <= maxBytes)
            {
                first--;
                taken += spans[first].Size;
            }

            var count = n - first;
            records = ArrayPool<LogRecord>.Shared.Rent(count);
            for (var i = 0; i < count; i++)
            {
                var src = n - 1 - i;
                records[i] = RecordFormat.Decode(buffer.AsMemory(positions[src], spans[src].Size));
            }

            return new RecordBatch(buffer, records, count, spans[first].Offset - 1, taken);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            if (records is not null)
            {
                ArrayPool<LogRecord>.Shared.Return(records, clearArray: true);
            }

            throw;
        }
        finally
        {
            ArrayPool<RecordInfo>.Shared.Return(spans);
            ArrayPool<int>.Shared.Return(positions);
        }
    }

    private static void Grow<T>(ref T[] array, int count)
    {
        var grown = ArrayPool<T>.Shared.Rent(array.Length * 2);
        array.AsSpan(0, count).CopyTo(grown);
        ArrayPool<T>.Shared.Return(array);
        array = grown;
    }

    /// <summary>Offset of the first record with a timestamp at or after <paramref name="timestamp"/>, or -1.</summary>
    public long FindFirstAtOrAfter(long timestamp)
    {
        if (RecordCount == 0 || MaxTimestamp < timestamp)
        {
            return -1;
        }

        var entries = Index.Snapshot();
        var j = SegmentIndex.FindByTimestamp(entries, timestamp);
        long start = j < 0 ? HeaderSize : entries[j].Position;
        using var scanner = Scan(start, Size);
        while (true)
        {
            var position = scanner.Position;
            switch (scanner.Next(out var info, out _))
            {
                case ScanStep.Record when info.Timestamp >= timestamp:
                    return info.Offset;
                case ScanStep.Record:
                    continue;
                case ScanStep.End:
                    return -1;
                default:
                    throw Damaged(position, -1, "a record fails its checks on read");
            }
        }
    }

    /// <summary>
    /// Offset of the last record before the first one with a timestamp above <paramref name="timestamp"/>:
    /// (offset or -1 when the first such record opens the segment, true) or (LastOffset, false) when every record is at or below it.
    /// </summary>
    public (long Offset, bool Bounded) FindLastAtOrBefore(long timestamp)
    {
        if (MaxTimestamp <= timestamp)
        {
            return (LastOffset, false);
        }

        var entries = Index.Snapshot();
        var j = SegmentIndex.FindByTimestamp(entries, timestamp + 1);
        long start = j <= 0 ? HeaderSize : entries[j - 1].Position;
        long previous = -1;
        using var scanner = Scan(start, Size);
        while (true)
        {
            var position = scanner.Position;
            switch (scanner.Next(out var info, out _))
            {
                case ScanStep.Record when info.Timestamp > timestamp:
                    return (previous, true);
                case ScanStep.Record:
                    previous = info.Offset;
                    continue;
                case ScanStep.End:
                    return (previous, previous >= 0);
                default:
                    throw Damaged(position, -1, "a record fails its checks on read");
            }
        }
    }
}
