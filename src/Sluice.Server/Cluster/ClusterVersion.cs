using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Internal;
using Sluice.Storage.Metadata;
using Sluice.Storage.Sql;

namespace Sluice.Server.Cluster;

/// <summary>
/// The version a broker's binary brings to a cluster, and the gate it passes before joining (LXD's upgrade rule):
/// every broker records its version under <c>/sluice/versions/&lt;id&gt;</c> (kept after it stops); a broker ahead
/// of another waits, saying so, until that one is upgraded; a broker behind another refuses to start and says to
/// upgrade it; a mix (ahead on one count, behind on the other) is refused. A release that changes neither count
/// joins at once.
/// </summary>
internal static partial class ClusterVersion
{
    /// <summary>The layout of the cluster's metadata (proto/internal.proto's keys and records). Raise it when a broker of the old layout could not read the new one.</summary>
    public const int Schema = 1;

    /// <summary>
    /// Cluster-visible features, in the order they shipped; append a name when a feature changes what brokers send
    /// each other or keep in the metadata. <see cref="ApiExtensions"/> is their count.
    /// </summary>
    public static readonly IReadOnlyList<string> Extensions =
    [
        "replication_fetch",        // followers fetch from leaders (ReplicationService)
        "publish_forwarding",       // a broker forwards a publish to the partition's leader
        "consumer_groups",          // group coordinators, members and assignments in the metadata
        "replication_traced",       // FetchResponse.traced carries traced contexts to followers
    ];

    public static int ApiExtensions => Extensions.Count;

    public static BrokerVersion Current => new(Schema, ApiExtensions);

    public const string VersionsPrefix = "/sluice/versions/";

    /// <summary>
    /// Records <paramref name="self"/>'s <paramref name="version"/> and compares it with every other broker's, waiting
    /// while some are behind (retrying every <paramref name="interval"/>).
    /// </summary>
    /// <exception cref="SchemaException">This broker is behind another, or the versions are inconsistent.</exception>
    public static async Task EnsureAsync(IMetadataStore store, string self, BrokerVersion version, string release, ILogger logger, TimeSpan interval, CancellationToken cancellationToken)
    {
        var key = KeyRanges.Utf8(VersionsPrefix + self);
        var record = new BrokerVersionRecord { Id = self, Schema = version.Schema, ApiExtensions = version.ApiExtensions, SluiceVersion = release };
        var waiting = false;
        while (true)
        {
            record.RecordedAt = Streams.Partition.NowNanoseconds();
            await store.PutAsync(new PutRequest(key, record.ToByteArray()), cancellationToken).ConfigureAwait(false);
            var all = await store.RangeAsync(RangeRequest.Prefix(VersionsPrefix), cancellationToken).ConfigureAwait(false);
            var behind = version.Judge(
                $"{self}: {version}, Sluice {release}",
                all.Kvs.Select(kv => BrokerVersionRecord.Parser.ParseFrom(kv.Value)).Where(other => other.Id != self).Select(other =>
                {
                    var theirs = new BrokerVersion(other.Schema, other.ApiExtensions);
                    return (other.Id, theirs, $"{theirs}, Sluice {other.SluiceVersion}");
                }),
                " in this cluster");
            if (behind.Count == 0)
            {
                if (waiting)
                {
                    LogCaughtUp(logger, self);
                }

                return;
            }

            waiting = true;
            LogWaiting(logger, self, version.ToString(), string.Join(", ", behind));
            await Task.Delay(interval, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Forgets a broker that left the cluster for good, so the gate stops waiting for it. True when it had a record.</summary>
    public static async Task<bool> ForgetAsync(IMetadataStore store, string brokerId, CancellationToken cancellationToken)
    {
        var deleted = await store.DeleteRangeAsync(new DeleteRangeRequest(KeyRanges.Utf8(VersionsPrefix + brokerId)), cancellationToken).ConfigureAwait(false);
        return deleted.Deleted > 0;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Some brokers are behind this broker ({Self}: {Version}): {Behind}. Waiting for them to be upgraded before joining the cluster; a broker that left the cluster for good is forgotten by deleting its record: etcdctl del /sluice/versions/<id>")]
    private static partial void LogWaiting(ILogger logger, string self, string version, string behind);

    [LoggerMessage(Level = LogLevel.Information, Message = "Every broker is at this broker's ({Self}) version now: joining")]
    private static partial void LogCaughtUp(ILogger logger, string self);
}
