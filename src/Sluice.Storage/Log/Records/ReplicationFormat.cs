using Sluice.Storage.Log.Records;

namespace Sluice.Storage.Log;

/// <summary>
/// Records as they travel from a partition leader to its followers: the log's own record format
/// (offset, timestamp, leader epoch, CRC-32C) back to back, so a follower checks every record before it
/// appends it with the leader's offsets (<see cref="CommitLog.AppendReplicated"/>).
/// </summary>
public static class ReplicationFormat
{
    /// <summary>Encodes the records of a batch read from a leader's log.</summary>
    public static byte[] Encode(ReadOnlySpan<LogRecord> records)
    {
        var total = 0L;
        for (var i = 0; i < records.Length; i++)
        {
            total += RecordFormat.SizeOf(records[i]);
        }

        var buffer = new byte[checked((int)total)];
        var p = 0;
        for (var i = 0; i < records.Length; i++)
        {
            var size = RecordFormat.SizeOf(records[i]);
            p += RecordFormat.Write(buffer.AsSpan(p), records[i], records[i].Offset, size);
        }

        return buffer;
    }

    /// <summary>
    /// Decodes what <see cref="Encode"/> wrote. The records point into <paramref name="bytes"/>.
    /// Throws <see cref="InvalidDataException"/> when a record is cut or fails its checks, or offsets do not increase.
    /// </summary>
    public static LogRecord[] Decode(ReadOnlyMemory<byte> bytes)
    {
        var records = new List<LogRecord>();
        var p = 0;
        var last = -1L;
        while (p < bytes.Length)
        {
            var status = RecordFormat.TryParse(bytes.Span[p..], out var info);
            if (status != ParseStatus.Ok)
            {
                throw new InvalidDataException($"replicated record {records.Count} is {(status == ParseStatus.Incomplete ? "cut short" : "damaged (length, CRC or structure)")}");
            }

            if (info.Offset <= last)
            {
                throw new InvalidDataException($"replicated offsets do not increase ({info.Offset} after {last})");
            }

            records.Add(RecordFormat.Decode(bytes.Slice(p, info.Size)));
            last = info.Offset;
            p += info.Size;
        }

        return [.. records];
    }
}
