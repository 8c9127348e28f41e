// Failure policy: a write goes to a temp file that is renamed over the old one, so a crash leaves
// either the old or the new checkpoint, never a mix; a write error throws to the caller with the
// old checkpoint intact. A load that finds a damaged file throws InvalidDataException; the log
// treats checkpoints as derived state and falls back (see CommitLog).
using System.Buffers.Binary;
using Sluice.Storage.Log.Checksums;
using Sluice.Storage.Log.Files;

namespace Sluice.Storage.Log.Checkpoints;

/// <summary>
/// A small file replaced atomically: uint32 magic "SCKP" | uint16 version 1 | uint16 kind |
/// int32 payloadLength | payload | uint32 CRC-32C of everything before it. Little-endian.
/// </summary>
internal static class CheckpointFile
{
    private const uint Magic = 0x504B4353; // "SCKP"
    private const ushort Version = 1;
    private const int HeaderSize = 12;

    public static void Write(string path, ushort kind, ReadOnlySpan<byte> payload, bool sync)
    {
        var bytes = new byte[HeaderSize + payload.Length + 4];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], Version);
        BinaryPrimitives.WriteUInt16LittleEndian(span[6..], kind);
        BinaryPrimitives.WriteInt32LittleEndian(span[8..], payload.Length);
        payload.CopyTo(span[HeaderSize..]);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(HeaderSize + payload.Length)..], Crc32C.Compute(span[..(HeaderSize + payload.Length)]));

        var tmp = path + ".tmp";
        using (var handle = File.OpenHandle(tmp, FileMode.Create, FileAccess.Write))
        {
            RandomAccess.Write(handle, span, 0);
            if (sync)
            {
                FileSync.File(handle);
            }
        }

        File.Move(tmp, path, overwrite: true);
        if (sync)
        {
            FileSync.Directory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        }
    }

    /// <summary>The payload, or null when the file does not exist.</summary>
    public static byte[]? Read(string path, ushort kind)
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
        if (span.Length < HeaderSize + 4
            || BinaryPrimitives.ReadUInt32LittleEndian(span) != Magic
            || BinaryPrimitives.ReadUInt16LittleEndian(span[4..]) != Version
            || BinaryPrimitives.ReadUInt16LittleEndian(span[6..]) != kind)
        {
            throw new InvalidDataException($"Checkpoint '{path}' has a bad header.");
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(span[8..]);
        if (length < 0 || span.Length != HeaderSize + length + 4
            || BinaryPrimitives.ReadUInt32LittleEndian(span[(HeaderSize + length)..]) != Crc32C.Compute(span[..(HeaderSize + length)]))
        {
            throw new InvalidDataException($"Checkpoint '{path}' fails its checksum.");
        }

        return span.Slice(HeaderSize, length).ToArray();
    }
}
