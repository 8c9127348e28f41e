// Failure policy: written with CheckpointFile (temp + rename), so a crash leaves the old or the
// new list. The log writes it after a roll creates a segment and before retention, compaction or
// truncation delete one, so a listed segment that is missing on open was lost, not removed by the
// log. A damaged file is reported by CheckpointFile; the log then skips the check once (with a
// warning) and writes a fresh list from the files it found.
using System.Buffers.Binary;

namespace Sluice.Storage.Log.Checkpoints;

/// <summary>
/// The segments a log holds, oldest first: base offset and, for a sealed segment, its size in bytes
/// when sealed (-1 for the active one). Lets open tell a deleted or cut segment from one that
/// retention or compaction removed on purpose.
/// </summary>
internal static class SegmentManifest
{
    public const string FileName = "segments";
    private const ushort Kind = 3;

    public readonly record struct Entry(long BaseOffset, long SealedSize);

    /// <summary>The entries, or null when the file does not exist (a log written before the manifest existed).</summary>
    /// <exception cref="InvalidDataException">The file is damaged.</exception>
    public static List<Entry>? Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        var payload = CheckpointFile.Read(path, Kind);
        if (payload is null)
        {
            return null;
        }

        var count = payload.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(payload) : -1;
        if (count < 0 || payload.Length != 4 + (count * 16))
        {
            throw new InvalidDataException($"Segment manifest '{path}' has an invalid entry count.");
        }

        var entries = new List<Entry>(count);
        for (var i = 0; i < count; i++)
        {
            entries.Add(new Entry(BinaryPrimitives.ReadInt64LittleEndian(payload.AsSpan(4 + (i * 16))), BinaryPrimitives.ReadInt64LittleEndian(payload.AsSpan(12 + (i * 16)))));
        }

        return entries;
    }

    public static void Write(string directory, IReadOnlyList<Entry> entries, bool sync)
    {
        var payload = new byte[4 + (entries.Count * 16)];
        BinaryPrimitives.WriteInt32LittleEndian(payload, entries.Count);
        for (var i = 0; i < entries.Count; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(4 + (i * 16)), entries[i].BaseOffset);
            BinaryPrimitives.WriteInt64LittleEndian(payload.AsSpan(12 + (i * 16)), entries[i].SealedSize);
        }

        CheckpointFile.Write(Path.Combine(directory, FileName), Kind, payload, sync);
    }
}
