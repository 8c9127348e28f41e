// Failure policy: pure encoding/decoding, no I/O. A record that fails its length, CRC or
// structure check is reported as Corrupt (or Incomplete when the bytes end early); callers decide
// whether that is a torn tail to truncate or damage to report.
using System.Buffers.Binary;
using System.Text;
using Sluice.Storage.Log.Checksums;

namespace Sluice.Storage.Log.Records;

/// <summary>
/// On-disk record layout, version 1, little-endian:
/// <code>
///  0 int32  length       bytes after this field
///  4 uint32 crc          CRC-32C of bytes [8, 4 + length)
///  8 int64  offset
/// 16 int64  timestamp    Unix nanoseconds
/// 24 int64  leaderEpoch
/// 32 int32  keyLength    -1 = null key
///    key
///    int32  valueLength  -1 = null value
///    value
///    uint16 headerCount
///    { uint16 nameLength | name (UTF-8) | int32 valueLength | value } * headerCount
/// </code>
/// </summary>
internal static class RecordFormat
{
    /// <summary>Bytes of a record with no key, value or headers.</summary>
    public const int MinSize = 4 + 4 + 8 + 8 + 8 + 4 + 4 + 2;

    /// <summary>Lengths above this are treated as damage, never as a record to wait for.</summary>
    public const int MaxPlausibleSize = 256 * 1024 * 1024 + 1024;

    private const int CrcStart = 8;

    public static int SizeOf(in LogRecord record)
    {
        long size = MinSize;
        if (record.Key is { } key)
        {
            size += key.Length;
        }

        if (record.Value is { } value)
        {
            size += value.Length;
        }

        if (record.Headers is { Count: > 0 } headers)
        {
            if (headers.Count > ushort.MaxValue)
            {
                throw new ArgumentException($"A record can carry at most {ushort.MaxValue} headers.", nameof(record));
            }

            for (var i = 0; i < headers.Count; i++)
            {
                var h = headers[i];
                if (h.Name is null)
                {
                    throw new ArgumentException("A header name cannot be null.", nameof(record));
                }

                var nameBytes = Encoding.UTF8.GetByteCount(h.Name);
                if (nameBytes > ushort.MaxValue)
                {
                    throw new ArgumentException($"Header name '{h.Name[..32]}...' is longer than {ushort.MaxValue} UTF-8 bytes.", nameof(record));
                }

                size += 2 + nameBytes + 4 + h.Value.Length;
            }
        }

        return size > int.MaxValue ? int.MaxValue : (int)size;
    }

    /// <summary>Encodes <paramref name="record"/> with <paramref name="offset"/>; returns the bytes written (= <see cref="SizeOf"/>).</summary>
    public static int Write(Span<byte> dest, in LogRecord record, long offset, int size)
    {
        BinaryPrimitives.WriteInt32LittleEndian(dest, size - 4);
        BinaryPrimitives.WriteInt64LittleEndian(dest[8..], offset);
        BinaryPrimitives.WriteInt64LittleEndian(dest[16..], record.Timestamp);
        BinaryPrimitives.WriteInt64LittleEndian(dest[24..], record.LeaderEpoch);
        var p = 32;
        p = WriteBytes(dest, p, record.Key);
        p = WriteBytes(dest, p, record.Value);
        var headers = record.Headers;
        var count = headers?.Count ?? 0;
        BinaryPrimitives.WriteUInt16LittleEndian(dest[p..], (ushort)count);
        p += 2;
        for (var i = 0; i < count; i++)
        {
            var h = headers![i];
            var n = Encoding.UTF8.GetBytes(h.Name, dest[(p + 2)..]);
            BinaryPrimitives.WriteUInt16LittleEndian(dest[p..], (ushort)n);
            p += 2 + n;
            BinaryPrimitives.WriteInt32LittleEndian(dest[p..], h.Value.Length);
            h.Value.Span.CopyTo(dest[(p + 4)..]);
            p += 4 + h.Value.Length;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(dest[4..], Crc32C.Compute(dest[CrcStart..p]));
        return p;
    }

    private static int WriteBytes(Span<byte> dest, int p, ReadOnlyMemory<byte>? bytes)
    {
        if (bytes is { } b)
        {
            BinaryPrimitives.WriteInt32LittleEndian(dest[p..], b.Length);
            b.Span.CopyTo(dest[(p + 4)..]);
            return p + 4 + b.Length;
        }

        BinaryPrimitives.WriteInt32LittleEndian(dest[p..], -1);
        return p + 4;
    }

    /// <summary>
    /// Checks the record at the start of <paramref name="buffer"/>: length, CRC and structure.
    /// On <see cref="ParseStatus.Incomplete"/>, <paramref name="info"/>.Size is the bytes needed
    /// (or 0 when even the length field is cut).
    /// </summary>
    public static ParseStatus TryParse(ReadOnlySpan<byte> buffer, out RecordInfo info)
    {
        info = default;
        if (buffer.Length < 4)
        {
            return ParseStatus.Incomplete;
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(buffer);
        if (length < MinSize - 4 || length > MaxPlausibleSize)
        {
            return ParseStatus.Corrupt;
        }

        var size = length + 4;
        info = new RecordInfo(size, 0, 0);
        if (buffer.Length < size)
        {
            return ParseStatus.Incomplete;
        }

        var record = buffer[..size];
        if (BinaryPrimitives.ReadUInt32LittleEndian(record[4..]) != Crc32C.Compute(record[CrcStart..]))
        {
            return ParseStatus.Corrupt;
        }

        if (!StructureIsValid(record))
        {
            return ParseStatus.Corrupt;
        }

        info = new RecordInfo(size, BinaryPrimitives.ReadInt64LittleEndian(record[8..]), BinaryPrimitives.ReadInt64LittleEndian(record[16..]));
        return ParseStatus.Ok;
    }

    private static bool StructureIsValid(ReadOnlySpan<byte> record)
    {
        var p = 32;
        for (var i = 0; i < 2; i++)
        {
            if (p + 4 > record.Length)
            {
                return false;
            }

            var n = BinaryPrimitives.ReadInt32LittleEndian(record[p..]);
            if (n < -1 || n > record.Length - p - 4)
            {
                return false;
            }

            p += 4 + Math.Max(n, 0);
        }

        if (p + 2 > record.Length)
        {
            return false;
        }

        int count = BinaryPrimitives.ReadUInt16LittleEndian(record[p..]);
        p += 2;
        for (var i = 0; i < count; i++)
        {
            if (p + 2 > record.Length)
            {
                return false;
            }

            p += 2 + BinaryPrimitives.ReadUInt16LittleEndian(record[p..]);
            if (p + 4 > record.Length)
            {
                return false;
            }

            var n = BinaryPrimitives.ReadInt32LittleEndian(record[p..]);
            if (n < 0 || n > record.Length - p - 4)
            {
                return false;
            }

            p += 4 + n;
        }

        return p == record.Length;
    }

    /// <summary>
    /// A header name as a string. The names the broker puts on every record ("subject", "reply")
    /// are shared instances instead of two new strings per record read.
    /// </summary>
    private static string HeaderName(ReadOnlySpan<byte> utf8) =>
        utf8.SequenceEqual("subject"u8) ? "subject"
        : utf8.SequenceEqual("reply"u8) ? "reply"
        : Encoding.UTF8.GetString(utf8);

    /// <summary>Builds a <see cref="LogRecord"/> whose bytes point into <paramref name="record"/> (already checked by <see cref="TryParse"/>).</summary>
    public static LogRecord Decode(ReadOnlyMemory<byte> record)
    {
        var span = record.Span;
        var p = 32;
        var key = ReadBytes(record, span, ref p);
        var value = ReadBytes(record, span, ref p);
        int count = BinaryPrimitives.ReadUInt16LittleEndian(span[p..]);
        p += 2;
        IReadOnlyList<RecordHeader> headers = [];
        if (count > 0)
        {
            var array = new RecordHeader[count];
            for (var i = 0; i < count; i++)
            {
                int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(span[p..]);
                var name = HeaderName(span.Slice(p + 2, nameLength));
                p += 2 + nameLength;
                var n = BinaryPrimitives.ReadInt32LittleEndian(span[p..]);
                array[i] = new RecordHeader(name, record.Slice(p + 4, n));
                p += 4 + n;
            }

            headers = array;
        }

        return new LogRecord
        {
            Offset = BinaryPrimitives.ReadInt64LittleEndian(span[8..]),
            Timestamp = BinaryPrimitives.ReadInt64LittleEndian(span[16..]),
            LeaderEpoch = BinaryPrimitives.ReadInt64LittleEndian(span[24..]),
            Key = key,
            Value = value,
            Headers = headers,
        };
    }

    /// <summary>The key bytes of a checked record, or false when the key is null.</summary>
    public static bool TryGetKey(ReadOnlySpan<byte> record, out ReadOnlySpan<byte> key)
    {
        var n = BinaryPrimitives.ReadInt32LittleEndian(record[32..]);
        key = n < 0 ? default : record.Slice(36, n);
        return n >= 0;
    }

    private static ReadOnlyMemory<byte>? ReadBytes(ReadOnlyMemory<byte> record, ReadOnlySpan<byte> span, ref int p)
    {
        var n = BinaryPrimitives.ReadInt32LittleEndian(span[p..]);
        p += 4;
        if (n < 0)
        {
            return null;
        }

        var slice = record.Slice(p, n);
        p += n;
        return slice;
    }
}

/// <summary>Result of <see cref="RecordFormat.TryParse"/>.</summary>
internal enum ParseStatus
{
    Ok,
    Incomplete,
    Corrupt,
}

/// <summary>Size (with the length prefix), offset and timestamp of a checked record.</summary>
internal readonly record struct RecordInfo(int Size, long Offset, long Timestamp);
