// Failure policy (data directory repair, `sluice repair`):
// - Runs only while no server holds the data directory (it takes the metadata store's lock and keeps it).
// - Deletes nothing: damaged metadata files are renamed aside by MetadataRepair, and a stream directory with no
//   stream in the metadata is moved whole into <data dir>/lost+found/, where its segments stay readable.
using System.Globalization;
using Sluice.Server.Streams;
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;

namespace Sluice.Server.Hosting;

/// <summary>A stream directory that has no stream in the metadata.</summary>
/// <param name="Stream">The directory's name, which is the stream's name.</param>
/// <param name="Path">Where the directory is (before the move).</param>
/// <param name="MovedTo">Where it was moved; null in a dry run.</param>
public sealed record OrphanStreamDirectory(string Stream, string Path, string? MovedTo);

/// <summary>What <see cref="DataDirectoryRepair.RunAsync"/> found and did.</summary>
public sealed record DataDirectoryRepairReport(MetadataRepairReport Metadata, IReadOnlyList<OrphanStreamDirectory> OrphanStreams)
{
    /// <summary>Nothing was damaged and no stream directory was orphaned.</summary>
    public bool Clean => !Metadata.DamageFound && OrphanStreams.Count == 0;
}

/// <summary>
/// Offline repair of a server's data directory: the metadata store first (<see cref="MetadataRepair"/>), then
/// stream directories the metadata no longer knows, which are moved to <c>lost+found</c> so that a stream of that
/// name can be created again without its old data being deleted or mixed in.
/// </summary>
public static class DataDirectoryRepair
{
    /// <summary>Name of the folder under the data directory that receives orphaned stream directories.</summary>
    public const string LostAndFound = "lost+found";

    /// <summary>The metadata store's directory under a data directory (where SluiceServer.StartAsync opens it).</summary>
    public static string MetadataDirectory(string dataDir) => Path.Combine(Path.GetFullPath(dataDir), "metadata");

    /// <summary>Checks and (unless <paramref name="dryRun"/>) repairs <paramref name="dataDir"/>.</summary>
    /// <exception cref="MetadataStoreLockedException">A server is running on the directory.</exception>
    public static async Task<DataDirectoryRepairReport> RunAsync(string dataDir, bool dryRun, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDir);
        dataDir = Path.GetFullPath(dataDir);
        if (!Directory.Exists(dataDir))
        {
            throw new DirectoryNotFoundException($"data directory {dataDir} does not exist");
        }

        var orphans = new List<OrphanStreamDirectory>();
        var metadata = await MetadataRepair.RunAsync(MetadataDirectory(dataDir), dryRun, async store =>
        {
            // Runs with the store's lock still held, so no server starts while directories move.
            var known = new HashSet<string>(StringComparer.Ordinal);
            foreach (var kv in (await store.GetPrefixAsync(StreamCatalog.StreamsPrefix, cancellationToken).ConfigureAwait(false)).Kvs)
            {
                known.Add(kv.KeyString[StreamCatalog.StreamsPrefix.Length..]);
            }

            var streams = Path.Combine(dataDir, "streams");
            if (!Directory.Exists(streams))
            {
                return;
            }

            foreach (var directory in Directory.EnumerateDirectories(streams).Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(directory);
                if (known.Contains(name))
                {
                    continue;
                }

                orphans.Add(new OrphanStreamDirectory(name, directory, dryRun ? null : MoveToLostAndFound(dataDir, directory, name)));
            }
        }, cancellationToken).ConfigureAwait(false);
        return new DataDirectoryRepairReport(metadata, orphans);
    }

    private static string MoveToLostAndFound(string dataDir, string directory, string name)
    {
        var lostAndFound = Path.Combine(dataDir, LostAndFound);
        Directory.CreateDirectory(lostAndFound);
        var target = Path.Combine(lostAndFound, name);
        if (Directory.Exists(target) || File.Exists(target))
        {
            // An earlier repair moved a stream of the same name: keep both.
            var stamped = target + "." + DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
            target = stamped;
            for (var n = 2; Directory.Exists(target) || File.Exists(target); n++)
            {
                target = stamped + "-" + n.ToString(CultureInfo.InvariantCulture);
            }
        }

        Directory.Move(directory, target);
        return target;
    }
}
