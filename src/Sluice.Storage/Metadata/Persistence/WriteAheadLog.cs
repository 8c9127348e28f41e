// Failure policy (metadata write-ahead log):
// - An I/O error while appending or syncing (a full disk, say) fails the batch in flight; the store then cuts the
//   log back to the end of the last synced batch (RollBack) and rebuilds its memory from disk, so the next
//   write starts from a consistent log. Only if that cut fails too does the store stay faulted.
// - On open, records are read in order until the first one that is short, has an impossible length or a bad
//   CRC-32C. If no intact record follows it, it is a torn tail (a crash mid-write, or a zero-filled remainder):
//   it is truncated. If an intact record follows it, the damage is not a torn write but corruption inside the
//   log: opening fails with MetadataLogDamagedException naming the file and byte offset, and the file is left
//   untouched (`sluice repair` keeps the records before the damage). A bad file header (wrong magic or
//   version) is not repaired either: opening fails with MetadataCorruptException.
using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Sluice.Storage.Metadata.Persistence;

/// <summary>
/// Append-only log of committed transactions. File header (16 bytes, little-endian): magic "SLMW", u16 format
/// version, u16 header size, u64 log sequence. Each record: u32 payload length, u32 CRC-32C of the payload, payload.
/// </summary>
internal sealed class WriteAheadLog : IDisposable
{
    public const uint Magic = 0x574D4C53; // "SLMW" read as little-endian
    public const ushort FormatVersion = 1;
    public const int HeaderSize = 16;
    public const int RecordHeaderSize = 8;

    // One record is one transaction; 256 MiB bounds a sane record and rejects garbage lengths in a torn tail.
    private const int MaxRecordBytes = 256 * 1024 * 1024;

    private readonly FileStream _file;
    private long _syncedLength;

    private WriteAheadLog(FileStream file, long sequence, string path)
    {
        _file = file;
        Sequence = sequence;
        Path = path;
    }

    public long Sequence { get; }

    public string Path { get; }

    public long Length => _file.Length;

    public static string FileName(long sequence) => $"wal-{sequence.ToString("D20", CultureInfo.InvariantCulture)}.log";

    public static bool TryParseSequence(string fileName, out long sequence)
    {
        sequence = 0;
        return fileName.StartsWith("wal-", StringComparison.Ordinal)
            && fileName.EndsWith(".log", StringComparison.Ordinal)
            && long.TryParse(fileName.AsSpan(4, fileName.Length - 8), NumberStyles.None, CultureInfo.InvariantCulture, out sequence);
    }

    /// <summary>Creates an empty log (header only), synced.</summary>
    public static WriteAheadLog Create(string directory, long sequence)
    {
        var log = CreateAt(System.IO.Path.Combine(directory, FileName(sequence)), sequence);
        try
        {
            DirectorySync.Sync(directory);
            return log;
        }
        catch
        {
            log.Dispose();
            throw;
        }
    }

    /// <summary>Creates an empty log (header only) at <paramref name="path"/>, synced; the caller syncs the directory.</summary>
    public static WriteAheadLog CreateAt(string path, long sequence)
    {
        var file = new FileStream(path, FileMode.Create, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0);
        try
        {
            file.Write(EncodeHeader(sequence));
            file.Flush(flushToDisk: true);
            return new WriteAheadLog(file, sequence, path) { _syncedLength = HeaderSize };
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Opens an existing log, returns its intact records and truncates a torn tail.</summary>
    public static WriteAheadLog OpenAndRecover(string path, long expectedSequence, List<LogRecord> records, ILogger logger)
    {
        var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0);
        try
        {
            var data = new byte[file.Length];
            file.ReadExactly(data);
            if (data.Length < HeaderSize)
            {
                // Crashed while creating the file: nothing was ever acknowledged from it.
                logger.LogWarning("Metadata log {Path} has a torn header ({Length} bytes); rewriting it empty", path, data.Length);
                file.SetLength(0);
                file.Position = 0;
                file.Write(EncodeHeader(expectedSequence));
                file.Flush(flushToDisk: true);
                return new WriteAheadLog(file, expectedSequence, path) { _syncedLength = HeaderSize };
            }

            ValidateHeader(data, expectedSequence, path);
            var scan = Scan(data, records);
            if (scan.IsDamaged)
            {
                throw new MetadataLogDamagedException(path, scan.IntactEnd, records.Count, scan.NextIntact);
            }

            var position = scan.IntactEnd;
            if (position < data.Length)
            {
                logger.LogWarning("Metadata log {Path}: truncating a torn tail of {Bytes} bytes at offset {Offset}", path, data.Length - position, position);
                file.SetLength(position);
                file.Flush(flushToDisk: true);
            }

            file.Position = position;
            return new WriteAheadLog(file, expectedSequence, path) { _syncedLength = position };
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Appends one framed record (header and payload) to <paramref name="target"/>.</summary>
    public static void Frame(ArrayBufferWriter<byte> target, LogRecord record, ArrayBufferWriter<byte> scratch)
    {
        scratch.ResetWrittenCount();
        RecordCodec.WriteRecordPayload(scratch, record);
        var payload = scratch.WrittenSpan;
        var header = target.GetSpan(RecordHeaderSize);
        BinaryPrimitives.WriteInt32LittleEndian(header, payload.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], Crc32C.Compute(payload));
        target.Advance(RecordHeaderSize);
        target.Write(payload);
    }

    public void Append(ReadOnlySpan<byte> framedRecords) => _file.Write(framedRecords);

    public void Sync()
    {
        _file.Flush(flushToDisk: true);
        _syncedLength = _file.Position;
    }

    /// <summary>
    /// Cuts off whatever was appended after the last successful <see cref="Sync"/> (a batch that failed half
    /// written), so the next append continues a log of whole records. Truncation needs no free space.
    /// </summary>
    public void RollBack()
    {
        _file.SetLength(_syncedLength);
        _file.Position = _syncedLength;
        _file.Flush(flushToDisk: true);
    }

    /// <summary>Reads this log's records back through its own handle (after a <see cref="RollBack"/>).</summary>
    public List<LogRecord> ReadSyncedRecords()
    {
        var data = new byte[_syncedLength];
        var read = 0;
        while (read < data.Length)
        {
            var n = RandomAccess.Read(_file.SafeFileHandle, data.AsSpan(read), read);
            if (n == 0)
            {
                throw new IOException($"{Path} ended at {read} bytes while reading {data.Length} synced bytes back");
            }

            read += n;
        }

        var records = new List<LogRecord>();
        var scan = Scan(data, records);
        if (scan.IntactEnd != data.Length)
        {
            throw new MetadataLogDamagedException(Path, scan.IntactEnd, records.Count, scan.NextIntact);
        }

        return records;
    }

    /// <summary>
    /// Reads the records after the header into <paramref name="records"/>, up to the first one that is not intact.
    /// Past that point it searches for any intact record, byte by byte, to tell a torn tail (none) from damage.
    /// </summary>
    internal static LogScan Scan(ReadOnlySpan<byte> data, List<LogRecord> records)
    {
        var position = HeaderSize;
        while (TryReadRecord(data, position, out var record, out var next))
        {
            records.Add(record!);
            position = next;
        }

        for (var candidate = position + 1; candidate <= data.Length - RecordHeaderSize; candidate++)
        {
            if (TryReadRecord(data, candidate, out _, out _))
            {
                return new LogScan(position, candidate, data.Length);
            }
        }

        return new LogScan(position, -1, data.Length);
    }

    public void Dispose() => _file.Dispose();

    internal static bool TryReadRecord(ReadOnlySpan<byte> data, int position, out LogRecord? record, out int next)
    {
        record = null;
        next = position;
        if (data.Length - position < RecordHeaderSize)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(data[position..]);
        var crc = BinaryPrimitives.ReadUInt32LittleEndian(data[(position + 4)..]);
        if (length <= 0 || length > MaxRecordBytes || length > data.Length - position - RecordHeaderSize)
        {
            return false;
        }

        var payload = data.Slice(position + RecordHeaderSize, length);
        if (Crc32C.Compute(payload) != crc)
        {
            return false;
        }

        try
        {
            record = RecordCodec.ReadRecordPayload(payload);
        }
        catch (MetadataCorruptException)
        {
            // A CRC match on a malformed payload means a bug, not a torn write; still, stop here rather than guess.
            return false;
        }

        next = position + RecordHeaderSize + length;
        return true;
    }

    private static byte[] EncodeHeader(long sequence)
    {
        var header = new byte[HeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), FormatVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), HeaderSize);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(8), sequence);
        return header;
    }

    private static void ValidateHeader(ReadOnlySpan<byte> data, long expectedSequence, string path)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(data) != Magic)
        {
            throw new MetadataCorruptException($"{path} is not a metadata log (bad magic)");
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(data[4..]);
        if (version != FormatVersion || BinaryPrimitives.ReadUInt16LittleEndian(data[6..]) != HeaderSize)
        {
            throw new MetadataCorruptException($"{path} has unsupported format version {version}");
        }

        var sequence = BinaryPrimitives.ReadInt64LittleEndian(data[8..]);
        if (sequence != expectedSequence)
        {
            throw new MetadataCorruptException($"{path} holds log sequence {sequence}, expected {expectedSequence}");
        }
    }
}

/// <summary>Where a log's intact prefix ends and, if the log is damaged rather than torn, where intact records resume.</summary>
internal readonly record struct LogScan(int IntactEnd, int NextIntact, int Length)
{
    /// <summary>An intact record follows the first bad one: corruption, not a torn write.</summary>
    public bool IsDamaged => NextIntact >= 0;
}
