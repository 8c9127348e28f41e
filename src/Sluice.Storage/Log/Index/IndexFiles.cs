// Failure policy: index files are derived data. A write failure is logged by the caller and the
// file is left missing or stale; a load that finds a missing, damaged or inconsistent file
// returns false and the caller rebuilds the index by scanning the segment. Index files are never
// fsynced for the same reason: recovery checks them against the segment before trusting them.
using System.Buffers;
using System.Buffers.Binary;
using Sluice.Storage.Log.Checksums;

namespace Sluice.Storage.Log.Index;

/// <summary>
/// The two index files of a segment, version 1, little-endian. Both start with a 64-byte header:
/// <code>
///  0 uint32 magic "SIDX"   4 uint16 version   6 uint16 kind (1 = offset, 2 = time)
///  8 int64 baseOffset     16 int64 coveredBytes (segment length the index describes)
/// 24 int64 recordCount    32 int64 lastOffset    40 int64 maxTimestamp
/// 48 int32 entryCount     52..59 reserved        60 uint32 CRC-32C of bytes [0, 60) and the entries
/// </code>
/// Offset entries (<c>.index</c>): int32 relativeOffset | int32 position.
/// Time entries (<c>.timeindex</c>): int64 maxTimestampBefore | int32 relativeOffset.
/// </summary>
internal static class IndexFiles
{
    public const string OffsetExtension = ".index";
    public const string TimeExtension = ".timeindex";
    private const uint Magic = 0x58444953; // "SIDX"
    private const ushort Version = 1;
    private const int HeaderSize = 64;
    private const int OffsetEntrySize = 8;
    private const int TimeEntrySize = 12;

    public static string OffsetPath(string logPath) => Path.ChangeExtension(logPath, OffsetExtension);

    public static string TimePath(string logPath) => Path.ChangeExtension(logPath, TimeExtension);

    public static void Delete(string logPath)
    {
        File.Delete(OffsetPath(logPath));
        File.Delete(TimePath(logPath));
    }

    public static void Write(string logPath, long baseOffset, in SegmentSummary summary, ReadOnlySpan<IndexEntry> entries)
    {
        WriteOne(OffsetPath(logPath), 1, baseOffset, summary, entries);
        WriteOne(TimePath(logPath), 2, baseOffset, summary, entries);
    }

    private static void WriteOne(string path, ushort kind, long baseOffset, in SegmentSummary summary, ReadOnlySpan<IndexEntry> entries)
    {
        var entrySize = kind == 1 ? OffsetEntrySize : TimeEntrySize;
        var size = HeaderSize + (entries.Length * entrySize);
        var buffer = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            var span = buffer.AsSpan(0, size);
            span[..HeaderSize].Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(span, Magic);
            BinaryPrimitives.WriteUInt16LittleEndian(span[4..], Version);
            BinaryPrimitives.WriteUInt16LittleEndian(span[6..], kind);
            BinaryPrimitives.WriteInt64LittleEndian(span[8..], baseOffset);
            BinaryPrimitives.WriteInt64LittleEndian(span[16..], summary.CoveredBytes);
            BinaryPrimitives.WriteInt64LittleEndian(span[24..], summary.RecordCount);
            BinaryPrimitives.WriteInt64LittleEndian(span[32..], summary.LastOffset);
            BinaryPrimitives.WriteInt64LittleEndian(span[40..], summary.MaxTimestamp);
            BinaryPrimitives.WriteInt32LittleEndian(span[48..], entries.Length);
            var p = HeaderSize;
            foreach (var e in entries)
            {
                var rel = (int)(e.Offset - baseOffset);
                if (kind == 1)
                {
                    BinaryPrimitives.WriteInt32LittleEndian(span[p..], rel);
                    BinaryPrimitives.WriteInt32LittleEndian(span[(p + 4)..], e.Position);
                }
                else
                {
                    BinaryPrimitives.WriteInt64LittleEndian(span[p..], e.MaxTimestampBefore);
                    BinaryPrimitives.WriteInt32LittleEndian(span[(p + 8)..], rel);
                }

                p += entrySize;
            }

            var crc = Crc32C.Update(0xFFFFFFFFu, span[..60]);
            crc = ~Crc32C.Update(crc, span[HeaderSize..]);
            BinaryPrimitives.WriteUInt32LittleEndian(span[60..], crc);

            var tmp = path + ".tmp";
            using (var handle = File.OpenHandle(tmp, FileMode.Create, FileAccess.Write))
            {
                RandomAccess.Write(handle, span, 0);
            }

            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Loads both files; false when either is missing, damaged or disagrees with the other.</summary>
    public static bool TryLoad(string logPath, long baseOffset, out SegmentSummary summary, out SegmentIndex index)
    {
        summary = default;
        index = null!;
        var offsets = TryReadFile(OffsetPath(logPath), 1, baseOffset);
        var times = offsets is null ? null : TryReadFile(TimePath(logPath), 2, baseOffset);
        if (offsets is null || times is null)
        {
            return false;
        }

        var o = offsets.AsSpan();
        var t = times.AsSpan();
        if (!o[16..52].SequenceEqual(t[16..52]))
        {
            return false;
        }

        summary = new SegmentSummary(
            BinaryPrimitives.ReadInt64LittleEndian(o[16..]),
            BinaryPrimitives.ReadInt64LittleEndian(o[24..]),
            BinaryPrimitives.ReadInt64LittleEndian(o[32..]),
            BinaryPrimitives.ReadInt64LittleEndian(o[40..]));
        var count = BinaryPrimitives.ReadInt32LittleEndian(o[48..]);
        if (count < 0 || o.Length != HeaderSize + (count * OffsetEntrySize) || t.Length != HeaderSize + (count * TimeEntrySize))
        {
            return false;
        }

        if (summary.RecordCount < 0 || summary.CoveredBytes < 0 || (count == 0) != (summary.RecordCount == 0))
        {
            return false;
        }

        index = new SegmentIndex(count + 4);
        long lastOffset = baseOffset - 1;
        var lastPosition = -1;
        for (var i = 0; i < count; i++)
        {
            var rel = BinaryPrimitives.ReadInt32LittleEndian(o[(HeaderSize + (i * OffsetEntrySize))..]);
            var position = BinaryPrimitives.ReadInt32LittleEndian(o[(HeaderSize + (i * OffsetEntrySize) + 4)..]);
            var maxBefore = BinaryPrimitives.ReadInt64LittleEndian(t[(HeaderSize + (i * TimeEntrySize))..]);
            var relT = BinaryPrimitives.ReadInt32LittleEndian(t[(HeaderSize + (i * TimeEntrySize) + 8)..]);
            var offset = baseOffset + rel;
            if (rel != relT || offset <= lastOffset || position <= lastPosition || position >= summary.CoveredBytes || offset > summary.LastOffset)
            {
                return false;
            }

            index.Add(new IndexEntry(offset, position, maxBefore));
            lastOffset = offset;
            lastPosition = position;
        }

        return true;
    }

    private static byte[]? TryReadFile(string path, ushort kind, long baseOffset)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            return null;
        }

        var span = bytes.AsSpan();
        if (span.Length < HeaderSize
            || BinaryPrimitives.ReadUInt32LittleEndian(span) != Magic
            || BinaryPrimitives.ReadUInt16LittleEndian(span[4..]) != Version
            || BinaryPrimitives.ReadUInt16LittleEndian(span[6..]) != kind
            || BinaryPrimitives.ReadInt64LittleEndian(span[8..]) != baseOffset)
        {
            return null;
        }

        var crc = Crc32C.Update(0xFFFFFFFFu, span[..60]);
        crc = ~Crc32C.Update(crc, span[HeaderSize..]);
        return crc == BinaryPrimitives.ReadUInt32LittleEndian(span[60..]) ? bytes : null;
    }
}

/// <summary>What a segment holds, as far as <see cref="CoveredBytes"/> of it.</summary>
internal readonly record struct SegmentSummary(long CoveredBytes, long RecordCount, long LastOffset, long MaxTimestamp);
