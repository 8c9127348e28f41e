using System.CommandLine;
using Sluice.Server.Hosting;
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;

namespace Sluice.Cli.Commands;

/// <summary>
/// `sluice repair --data-dir DIR [--dry-run]`: offline repair of a stopped server's data directory. Keeps every
/// metadata record readable before a damage, moves damaged files aside, and moves stream directories that have no
/// stream in the metadata into lost+found; it deletes nothing.
/// </summary>
internal static class RepairCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string>("--data-dir", "-d")
        {
            Description = "The stopped server's data directory (its `data.dir`)",
            Required = true,
        };
        var dryRun = new Option<bool>("--dry-run") { Description = "Report what would be done and change nothing" };
        var command = new Command("repair", "Repair a stopped server's data directory: keep the readable metadata, move damaged files and orphaned stream data aside")
        {
            dataDir,
            dryRun,
        };
        command.SetAction((parsed, ct) => RunAsync(parsed.GetValue(dataDir)!, parsed.GetValue(dryRun), ct));
        return command;
    }

    private static async Task<int> RunAsync(string dataDir, bool dryRun, CancellationToken ct)
    {
        dataDir = Path.GetFullPath(dataDir);
        DataDirectoryRepairReport report;
        try
        {
            report = await DataDirectoryRepair.RunAsync(dataDir, dryRun, ct).ConfigureAwait(false);
        }
        catch (MetadataStoreLockedException)
        {
            await Console.Error.WriteLineAsync($"sluice: the data directory {dataDir} is in use by another Sluice process; stop the server before repairing it").ConfigureAwait(false);
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or MetadataStoreException)
        {
            await Console.Error.WriteLineAsync($"sluice: repair of {dataDir} failed: {e.Message}").ConfigureAwait(false);
            return 1;
        }

        var verb = dryRun ? "would be" : "was";
        var output = Console.Out;
        foreach (var file in report.Metadata.Files)
        {
            var line = file.Condition switch
            {
                MetadataFileCondition.Intact => $"metadata {file.File}: intact ({file.KeptRecords} records)",
                MetadataFileCondition.TornTail => $"metadata {file.File}: {file.KeptRecords} records, then a torn tail of {file.LostBytes} bytes at byte {file.DamagePosition} (left by a crash, not damage; truncated when the store opens)",
                _ when file.File == "snapshot.snap" => $"metadata {file.File}: DAMAGED (fails its checksum); its {file.LostBytes} bytes cannot be trusted and are lost; it {verb} moved to {file.MovedTo ?? file.File + ".damaged-<time>"}",
                _ => $"metadata {file.File}: DAMAGED at byte {file.DamagePosition}; kept the {file.KeptRecords} records before it, lost the {file.LostBytes} bytes after it ({file.LostIntactRecords} still-intact records among them); the damaged file {verb} moved to {file.MovedTo ?? file.File + ".damaged-<time>"}",
            };
            await output.WriteLineAsync(line).ConfigureAwait(false);
        }

        foreach (var orphan in report.OrphanStreams)
        {
            var target = orphan.MovedTo ?? Path.Combine(dataDir, DataDirectoryRepair.LostAndFound, orphan.Stream);
            await output.WriteLineAsync($"stream data {orphan.Path} has no stream in the metadata; it {verb} moved to {target}").ConfigureAwait(false);
        }

        var summary = report.Clean
            ? $"{dataDir}: nothing to repair"
            : dryRun ? $"{dataDir}: dry run, nothing was changed; run without --dry-run to repair" : $"{dataDir}: repaired";
        await output.WriteLineAsync(summary).ConfigureAwait(false);
        return 0;
    }
}
