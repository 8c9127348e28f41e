// Failure policy (metadata write-ahead log):
// - An I/O error while appending or syncing faults the store: the batch in flight and every later write fail
//   with MetadataStoreFaultedException; reads keep serving the last durable revision. Nothing is retried,
//   because a failed fsync leaves the page cache in an unknown state.
// - On open, records are read in order and the first one that is short, has an impossible length or a bad
//   CRC-32C ends the log: it and everything after it are truncated (a torn tail from a crash). Records are
//   synced in order, so only the tail can be torn. A bad file header (wrong magic or version) is not
//   repaired: opening fails with MetadataCorruptException.
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
        var path = System.IO.Path.Combine(directory, FileName(sequence));
        var file = new FileStream(path, FileMode.Create, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0);
        try
        {
            file.Write(EncodeHeader(sequence));
            file.Flush(flushToDisk: true);
            DirectorySync.Sync(directory);
            return new WriteAheadLog(file, sequence, path);
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
                return new WriteAheadLog(file, expectedSequence, path);
            }

            ValidateHeader(data, expectedSequence, path);
            var position = HeaderSize;
            while (TryReadRecord(data, position, out var record, out var next))
            {
                records.Add(record!);
                position = next;
            }

            if (position < data.Length)
            {
                logger.LogWarning("Metadata log {Path}: truncating a torn tail of {Bytes} bytes at offset {Offset}", path, data.Length - position, position);
                file.SetLength(position);
                file.Flush(flushToDisk: true);
            }

            file.Position = position;
            return new WriteAheadLog(file, expectedSequence, path);
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

    public void Sync() => _file.Flush(flushToDisk: true);

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
