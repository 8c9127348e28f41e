// Failure policy (metadata snapshot):
// - A snapshot is written to a temporary file, synced, then renamed over the previous one, so a crash leaves
//   either the old or the new snapshot whole. An I/O error while writing leaves the old snapshot and log in
//   place and is logged; the store keeps running on its log.
// - On open, a snapshot with a bad magic, version or CRC-32C fails the open with MetadataCorruptException:
//   the log it replaced is gone, so there is nothing to fall back to and guessing would lose writes.
using System.Buffers;
using System.Buffers.Binary;

namespace Sluice.Storage.Metadata.Persistence;

/// <summary>Everything needed to rebuild the store: revisions, leases and the retained history.</summary>
internal sealed record SnapshotState(
    long CurrentRevision,
    long CompactRevision,
    long LogSequence,
    IReadOnlyList<(long Id, long Ttl)> Leases,
    IReadOnlyList<LogRecord> History);

/// <summary>
/// Snapshot format (little-endian): magic "SLMS", u16 version, u16 header size (16), 8 reserved bytes; then
/// i64 current revision, i64 compact revision, i64 log sequence, i32 lease count and (i64 id, i64 TTL) per lease,
/// i32 record count and one log record payload (i32 length + bytes) per retained revision; then a u32 CRC-32C of
/// every byte before it.
/// </summary>
internal static class SnapshotFile
{
    public const uint Magic = 0x534D4C53; // "SLMS" read as little-endian
    public const ushort FormatVersion = 1;
    public const int HeaderSize = 16;
    public const string FileName = "snapshot.snap";

    public static byte[] Encode(SnapshotState state)
    {
        // 64 KiB start: a small metadata store fits without regrowth.
        var writer = new ArrayBufferWriter<byte>(64 * 1024);
        var header = writer.GetSpan(HeaderSize)[..HeaderSize];
        header.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], FormatVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], HeaderSize);
        writer.Advance(HeaderSize);
        RecordCodec.WriteInt64(writer, state.CurrentRevision);
        RecordCodec.WriteInt64(writer, state.CompactRevision);
        RecordCodec.WriteInt64(writer, state.LogSequence);
        RecordCodec.WriteInt32(writer, state.Leases.Count);
        foreach (var (id, ttl) in state.Leases)
        {
            RecordCodec.WriteInt64(writer, id);
            RecordCodec.WriteInt64(writer, ttl);
        }

        RecordCodec.WriteInt32(writer, state.History.Count);
        var scratch = new ArrayBufferWriter<byte>(256);
        foreach (var record in state.History)
        {
            scratch.ResetWrittenCount();
            RecordCodec.WriteRecordPayload(scratch, record);
            RecordCodec.WriteBytes(writer, scratch.WrittenSpan);
        }

        var crc = Crc32C.Compute(writer.WrittenSpan);
        BinaryPrimitives.WriteUInt32LittleEndian(writer.GetSpan(4), crc);
        writer.Advance(4);
        return writer.WrittenSpan.ToArray();
    }

    public static SnapshotState Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < HeaderSize + 4 || BinaryPrimitives.ReadUInt32LittleEndian(data) != Magic)
        {
            throw new MetadataCorruptException("not a metadata snapshot (bad magic or too short)");
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(data[4..]);
        if (version != FormatVersion)
        {
            throw new MetadataCorruptException($"unsupported metadata snapshot version {version}");
        }

        var body = data[..^4];
        if (Crc32C.Compute(body) != BinaryPrimitives.ReadUInt32LittleEndian(data[^4..]))
        {
            throw new MetadataCorruptException("metadata snapshot CRC-32C mismatch");
        }

        var reader = new SpanReader(body[HeaderSize..]);
        var current = reader.Int64();
        var compact = reader.Int64();
        var sequence = reader.Int64();
        var leaseCount = reader.Int32();
        CheckCount(leaseCount, body.Length);
        var leases = new List<(long, long)>(leaseCount);
        for (var i = 0; i < leaseCount; i++)
        {
            leases.Add((reader.Int64(), reader.Int64()));
        }

        var recordCount = reader.Int32();
        CheckCount(recordCount, body.Length);
        var history = new List<LogRecord>(recordCount);
        for (var i = 0; i < recordCount; i++)
        {
            history.Add(RecordCodec.ReadRecordPayload(reader.Bytes()));
        }

        if (!reader.End)
        {
            throw new MetadataCorruptException("metadata snapshot has trailing bytes");
        }

        return new SnapshotState(current, compact, sequence, leases, history);
    }

    /// <summary>Writes <paramref name="bytes"/> as the directory's snapshot: temp file, fsync, atomic rename.</summary>
    public static void WriteAtomically(string directory, byte[] bytes)
    {
        var temp = Path.Combine(directory, FileName + ".tmp");
        try
        {
            using var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
            file.Write(bytes);
            file.Flush(flushToDisk: true);
        }
        catch
        {
            // A half-written temp file on a full disk would hold on to the space the next write needs.
            File.Delete(temp);
            throw;
        }

        File.Move(temp, Path.Combine(directory, FileName), overwrite: true);
        DirectorySync.Sync(directory);
    }

    private static void CheckCount(int count, int bound)
    {
        if (count < 0 || count > bound)
        {
            throw new MetadataCorruptException($"metadata snapshot has an impossible count {count}");
        }
    }
}
