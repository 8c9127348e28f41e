// Failure policy (metadata repair):
// - Runs only with the directory's lock held, so never under a live store.
// - Never deletes a file: a damaged log or snapshot is renamed to "<name>.damaged-<UTC timestamp>" and the new log
//   (the intact records before the damage) is written to a temporary file, synced, then renamed into place, so a
//   crash during repair leaves either the damaged file or the repaired one, and the damaged bytes stay on disk.
// - A dry run works on a copy in a temporary directory and changes nothing in the real one.
using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Storage.Metadata.Persistence;

namespace Sluice.Storage.Metadata.Embedded;

/// <summary>What a repair found in one metadata file, and what it kept.</summary>
/// <param name="File">The file's name in the metadata directory.</param>
/// <param name="Condition">What the file looked like.</param>
/// <param name="KeptRecords">Intact records kept (of a log; 0 for a damaged snapshot).</param>
/// <param name="DamagePosition">Byte offset of the first bad record (-1 when intact).</param>
/// <param name="LostBytes">Bytes from the damage to the end of the file, which the repaired log does not hold.</param>
/// <param name="LostIntactRecords">Records after the damage that were still intact but are dropped, since the ones between are lost.</param>
/// <param name="MovedTo">Where the damaged file was moved (its name; null when nothing was moved).</param>
public sealed record MetadataFileCheck(
    string File,
    MetadataFileCondition Condition,
    int KeptRecords,
    long DamagePosition,
    long LostBytes,
    int LostIntactRecords,
    string? MovedTo);

/// <summary>How a metadata file was found.</summary>
public enum MetadataFileCondition
{
    /// <summary>Every record is intact.</summary>
    Intact,

    /// <summary>The log ends in an incomplete record with nothing intact after it (a crash); the next start truncates it.</summary>
    TornTail,

    /// <summary>A bad record with intact records after it, a bad header, or a snapshot failing its checksum.</summary>
    Damaged,
}

/// <summary>The outcome of <see cref="MetadataRepair.RunAsync"/>.</summary>
public sealed record MetadataRepairReport(string Directory, bool DryRun, IReadOnlyList<MetadataFileCheck> Files)
{
    /// <summary>Some file was damaged (and, unless <see cref="DryRun"/>, has been moved aside).</summary>
    public bool DamageFound => Files.Any(f => f.Condition == MetadataFileCondition.Damaged);
}

/// <summary>
/// Offline repair of an embedded metadata directory (what `sluice repair` runs): keeps every record readable
/// before the first damage, moves damaged files aside, then opens the repaired store for a caller's own checks.
/// </summary>
public static class MetadataRepair
{
    private const string RepairSuffix = ".repair";

    /// <summary>
    /// Checks and, unless <paramref name="dryRun"/>, repairs the store in <paramref name="directory"/>, then runs
    /// <paramref name="inspect"/> on the repaired store (on a repaired copy in a dry run) while still holding the
    /// directory's lock, so no server can start meanwhile.
    /// </summary>
    /// <exception cref="MetadataStoreLockedException">A running server (or another repair) holds the directory.</exception>
    public static Task<MetadataRepairReport> RunAsync(
        string directory,
        bool dryRun,
        Func<IMetadataStore, Task>? inspect = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        return Task.Run(() => RunCoreAsync(Path.GetFullPath(directory), dryRun, inspect), cancellationToken);
    }

    private static async Task<MetadataRepairReport> RunCoreAsync(string directory, bool dryRun, Func<IMetadataStore, Task>? inspect)
    {
        // No metadata at all: an empty store, so the caller still sees every stream directory as orphaned.
        var exists = Directory.Exists(directory);
        if (!exists && !dryRun)
        {
            Directory.CreateDirectory(directory);
        }

        var lockFile = exists || !dryRun ? DirectoryLock.Acquire(directory) : null;
        string? copy = null;
        try
        {
            var work = directory;
            if (dryRun)
            {
                copy = Directory.CreateTempSubdirectory("sluice-repair-").FullName;
                foreach (var file in exists ? Directory.EnumerateFiles(directory).Where(IsStoreFile) : [])
                {
                    File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
                }

                work = copy;
            }

            var checks = Repair(work, DateTime.UtcNow);
            if (inspect is not null)
            {
                var options = MetadataStoreOptions.Default;
                var store = dryRun
                    ? await EmbeddedMetadataStore.OpenAsync(work, options).ConfigureAwait(false)
                    : await Task.Run(() => EmbeddedMetadataStore.Open(work, options, lockFile!)).ConfigureAwait(false);
                lockFile = null; // the store owns it now and releases it when disposed
                await using (store.ConfigureAwait(false))
                {
                    await inspect(store).ConfigureAwait(false);
                }
            }

            return new MetadataRepairReport(directory, dryRun, checks);
        }
        finally
        {
            lockFile?.Dispose();
            if (copy is not null)
            {
                Directory.Delete(copy, recursive: true);
            }
        }
    }

    private static bool IsStoreFile(string path)
    {
        var name = Path.GetFileName(path);
        return name == SnapshotFile.FileName || WriteAheadLog.TryParseSequence(name, out _);
    }

    /// <summary>Checks the snapshot and the logs in <paramref name="directory"/> and repairs them in place.</summary>
    private static List<MetadataFileCheck> Repair(string directory, DateTime now)
    {
        var checks = new List<MetadataFileCheck>();
        var suffix = ".damaged-" + now.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        foreach (var leftover in Directory.EnumerateFiles(directory, "*" + RepairSuffix))
        {
            File.Delete(leftover); // an unfinished earlier repair: the damaged original is still in place
        }

        SnapshotState? snapshot = null;
        var snapshotPath = Path.Combine(directory, SnapshotFile.FileName);
        var snapshotLost = false;
        if (File.Exists(snapshotPath))
        {
            try
            {
                snapshot = SnapshotFile.Decode(File.ReadAllBytes(snapshotPath));
                checks.Add(new MetadataFileCheck(SnapshotFile.FileName, MetadataFileCondition.Intact, snapshot.History.Count, -1, 0, 0, null));
            }
            catch (MetadataCorruptException)
            {
                // One checksum covers the whole snapshot: none of it can be trusted, so it is moved aside whole.
                snapshotLost = true;
                var moved = MoveAside(snapshotPath, suffix);
                checks.Add(new MetadataFileCheck(SnapshotFile.FileName, MetadataFileCondition.Damaged, 0, 0, new FileInfo(moved).Length, 0, Path.GetFileName(moved)));
            }
        }

        var logs = Directory.EnumerateFiles(directory, "wal-*.log")
            .Select(p => (Path: p, Ok: WriteAheadLog.TryParseSequence(Path.GetFileName(p), out var s), Sequence: s))
            .Where(l => l.Ok)
            .OrderBy(l => l.Sequence)
            .ToList();
        if (!snapshotLost)
        {
            var sequence = snapshot?.LogSequence ?? 1;
            var current = logs.FirstOrDefault(l => l.Sequence == sequence);
            if (current.Path is not null)
            {
                var (check, kept) = CheckLog(current.Path, sequence);
                if (check.Condition == MetadataFileCondition.Damaged)
                {
                    check = check with { MovedTo = Path.GetFileName(Replace(current.Path, sequence, kept, suffix)) };
                }

                checks.Add(check);
            }

            return checks;
        }

        // Without the snapshot the store starts from log sequence 1: every log's intact records go into that one,
        // in order, and the old logs are moved aside (an open would otherwise delete them as obsolete).
        var all = new List<LogRecord>();
        foreach (var log in logs)
        {
            var (check, kept) = CheckLog(log.Path, log.Sequence);
            all.AddRange(kept);
            var moved = MoveAside(log.Path, suffix);
            checks.Add(check with { MovedTo = Path.GetFileName(moved) });
            if (check.Condition == MetadataFileCondition.Damaged)
            {
                break; // later logs continue from records that are lost
            }
        }

        Write(directory, 1, all);
        return checks;
    }

    private static (MetadataFileCheck Check, List<LogRecord> Kept) CheckLog(string path, long sequence)
    {
        var name = Path.GetFileName(path);
        var data = File.ReadAllBytes(path);
        var records = new List<LogRecord>();
        if (data.Length < WriteAheadLog.HeaderSize)
        {
            return (new MetadataFileCheck(name, MetadataFileCondition.TornTail, 0, 0, data.Length, 0, null), records);
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(data) != WriteAheadLog.Magic
            || BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(4)) != WriteAheadLog.FormatVersion
            || BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(8)) != sequence)
        {
            return (new MetadataFileCheck(name, MetadataFileCondition.Damaged, 0, 0, data.Length, CountIntact(data, WriteAheadLog.HeaderSize), null), records);
        }

        var scan = WriteAheadLog.Scan(data, records);
        var lost = data.Length - scan.IntactEnd;
        if (scan.IsDamaged)
        {
            return (new MetadataFileCheck(name, MetadataFileCondition.Damaged, records.Count, scan.IntactEnd, lost, CountIntact(data, scan.NextIntact), null), records);
        }

        var condition = lost > 0 ? MetadataFileCondition.TornTail : MetadataFileCondition.Intact;
        return (new MetadataFileCheck(name, condition, records.Count, lost > 0 ? scan.IntactEnd : -1, lost, 0, null), records);
    }

    /// <summary>Counts intact records from <paramref name="position"/> on, skipping over bad bytes.</summary>
    private static int CountIntact(byte[] data, int position)
    {
        var count = 0;
        while (position <= data.Length - WriteAheadLog.RecordHeaderSize)
        {
            if (WriteAheadLog.TryReadRecord(data, position, out _, out var next))
            {
                count++;
                position = next;
            }
            else
            {
                position++;
            }
        }

        return count;
    }

    /// <summary>Writes the kept records as the new log of <paramref name="sequence"/> and moves the damaged one aside.</summary>
    private static string Replace(string path, long sequence, List<LogRecord> kept, string suffix)
    {
        var directory = Path.GetDirectoryName(path)!;
        var temp = WriteTemp(directory, sequence, kept);
        var moved = MoveAside(path, suffix);
        File.Move(temp, path);
        DirectorySync.Sync(directory);
        return moved;
    }

    private static void Write(string directory, long sequence, List<LogRecord> records)
    {
        var temp = WriteTemp(directory, sequence, records);
        File.Move(temp, Path.Combine(directory, WriteAheadLog.FileName(sequence)));
        DirectorySync.Sync(directory);
    }

    private static string WriteTemp(string directory, long sequence, List<LogRecord> records)
    {
        var temp = Path.Combine(directory, WriteAheadLog.FileName(sequence) + RepairSuffix);
        using (var wal = WriteAheadLog.CreateAt(temp, sequence))
        {
            var framed = new ArrayBufferWriter<byte>();
            var scratch = new ArrayBufferWriter<byte>();
            foreach (var record in records)
            {
                WriteAheadLog.Frame(framed, record, scratch);
            }

            wal.Append(framed.WrittenSpan);
            wal.Sync();
        }

        // Proves the new log reads back whole before the damaged one is moved out of the way.
        var check = new List<LogRecord>();
        WriteAheadLog.OpenAndRecover(temp, sequence, check, NullLogger.Instance).Dispose();
        return check.Count == records.Count ? temp : throw new IOException($"the repaired log {temp} did not read back whole");
    }

    private static string MoveAside(string path, string suffix)
    {
        var target = path + suffix;
        for (var n = 2; File.Exists(target); n++)
        {
            target = path + suffix + "-" + n.ToString(CultureInfo.InvariantCulture);
        }

        File.Move(path, target);
        return target;
    }
}
