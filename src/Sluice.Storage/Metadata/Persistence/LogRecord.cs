using System.Buffers;
using System.Buffers.Binary;

namespace Sluice.Storage.Metadata.Persistence;

/// <summary>Kinds of change a log record carries.</summary>
internal enum EntryKind : byte
{
    Put = 1,
    Delete = 2,
    LeaseGrant = 3,
    LeaseRevoke = 4,
    Compact = 5,
}

/// <summary>
/// One change. Put: A = create revision, B = version, C = lease. Delete: key only. LeaseGrant: A = id, B = TTL.
/// LeaseRevoke: A = id. Compact: A = revision.
/// </summary>
internal readonly record struct LogEntry(EntryKind Kind, byte[]? Key, byte[]? Value, long A, long B, long C)
{
    public static LogEntry Put(byte[] key, byte[] value, long createRevision, long version, long lease) => new(EntryKind.Put, key, value, createRevision, version, lease);

    public static LogEntry Delete(byte[] key) => new(EntryKind.Delete, key, null, 0, 0, 0);

    public static LogEntry LeaseGrant(long id, long ttl) => new(EntryKind.LeaseGrant, null, null, id, ttl, 0);

    public static LogEntry LeaseRevoke(long id) => new(EntryKind.LeaseRevoke, null, null, id, 0, 0);

    public static LogEntry Compact(long revision) => new(EntryKind.Compact, null, null, revision, 0, 0);

    public bool IsKv => Kind is EntryKind.Put or EntryKind.Delete;
}

/// <summary>
/// The changes of one write transaction. KV changes share <see cref="Revision"/> (their sub revision is their
/// position); a record without KV changes carries the revision it was written at and does not advance it.
/// </summary>
internal sealed record LogRecord(long Revision, IReadOnlyList<LogEntry> Entries)
{
    public bool HasKvChanges
    {
        get
        {
            foreach (var e in Entries)
            {
                if (e.IsKv)
                {
                    return true;
                }
            }

            return false;
        }
    }
}

/// <summary>Little-endian encoding of log records and entries, shared by the log and the snapshot.</summary>
internal static class RecordCodec
{
    public static void WriteRecordPayload(IBufferWriter<byte> writer, LogRecord record)
    {
        WriteInt64(writer, record.Revision);
        WriteInt32(writer, record.Entries.Count);
        foreach (var entry in record.Entries)
        {
            WriteEntry(writer, entry);
        }
    }

    public static LogRecord ReadRecordPayload(ReadOnlySpan<byte> payload)
    {
        var reader = new SpanReader(payload);
        var revision = reader.Int64();
        var count = reader.Int32();
        if (count < 0 || count > payload.Length)
        {
            throw new MetadataCorruptException($"log record has an impossible entry count {count}");
        }

        var entries = new List<LogEntry>(count);
        for (var i = 0; i < count; i++)
        {
            entries.Add(ReadEntry(ref reader));
        }

        if (!reader.End)
        {
            throw new MetadataCorruptException("log record has trailing bytes");
        }

        return new LogRecord(revision, entries);
    }

    public static void WriteEntry(IBufferWriter<byte> writer, LogEntry entry)
    {
        var kind = writer.GetSpan(1);
        kind[0] = (byte)entry.Kind;
        writer.Advance(1);
        switch (entry.Kind)
        {
            case EntryKind.Put:
                WriteBytes(writer, entry.Key!);
                WriteBytes(writer, entry.Value!);
                WriteInt64(writer, entry.A);
                WriteInt64(writer, entry.B);
                WriteInt64(writer, entry.C);
                break;
            case EntryKind.Delete:
                WriteBytes(writer, entry.Key!);
                break;
            case EntryKind.LeaseGrant:
                WriteInt64(writer, entry.A);
                WriteInt64(writer, entry.B);
                break;
            case EntryKind.LeaseRevoke:
            case EntryKind.Compact:
                WriteInt64(writer, entry.A);
                break;
            default:
                throw new InvalidOperationException($"unknown entry kind {entry.Kind}");
        }
    }

    public static LogEntry ReadEntry(ref SpanReader reader)
    {
        var kind = (EntryKind)reader.Byte();
        return kind switch
        {
            EntryKind.Put => new LogEntry(kind, reader.Bytes(), reader.Bytes(), reader.Int64(), reader.Int64(), reader.Int64()),
            EntryKind.Delete => new LogEntry(kind, reader.Bytes(), null, 0, 0, 0),
            EntryKind.LeaseGrant => new LogEntry(kind, null, null, reader.Int64(), reader.Int64(), 0),
            EntryKind.LeaseRevoke or EntryKind.Compact => new LogEntry(kind, null, null, reader.Int64(), 0, 0),
            _ => throw new MetadataCorruptException($"unknown log entry kind {(byte)kind}"),
        };
    }

    public static void WriteInt64(IBufferWriter<byte> writer, long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(writer.GetSpan(8), value);
        writer.Advance(8);
    }

    public static void WriteInt32(IBufferWriter<byte> writer, int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(writer.GetSpan(4), value);
        writer.Advance(4);
    }

    public static void WriteBytes(IBufferWriter<byte> writer, ReadOnlySpan<byte> bytes)
    {
        WriteInt32(writer, bytes.Length);
        writer.Write(bytes);
    }
}

/// <summary>Bounds-checked little-endian reader; running off the end is corruption.</summary>
internal ref struct SpanReader
{
    private readonly ReadOnlySpan<byte> _data;
    private int _position;

    public SpanReader(ReadOnlySpan<byte> data)
    {
        _data = data;
        _position = 0;
    }

    public readonly bool End => _position == _data.Length;

    public byte Byte() => Take(1)[0];

    public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

    public long Int64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    public byte[] Bytes()
    {
        var length = Int32();
        if (length < 0)
        {
            throw new MetadataCorruptException($"negative length {length}");
        }

        return Take(length).ToArray();
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count > _data.Length - _position)
        {
            throw new MetadataCorruptException("record ends early");
        }

        var span = _data.Slice(_position, count);
        _position += count;
        return span;
    }
}
