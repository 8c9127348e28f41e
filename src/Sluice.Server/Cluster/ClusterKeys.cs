using System.Globalization;
using Sluice.Storage.Metadata;

namespace Sluice.Server.Cluster;

/// <summary>
/// Where the cluster keeps its decisions in the metadata store (layout in proto/internal.proto). Only
/// decisions live there: membership, the controller, stream definitions with their replicas, and each
/// partition's leader, ISR and epoch. Offsets, high watermarks and heartbeats never do.
/// </summary>
internal static class ClusterKeys
{
    public const string Root = "/sluice/";
    public const string BrokersPrefix = "/sluice/brokers/";
    public const string Controller = "/sluice/controller";
    public const string LeadersPrefix = "/sluice/leaders/";

    public static byte[] Broker(string id) => KeyRanges.Utf8(BrokersPrefix + id);

    public static byte[] ControllerKey { get; } = KeyRanges.Utf8(Controller);

    public static byte[] Leader(string stream, int partition) =>
        KeyRanges.Utf8(string.Concat(LeadersPrefix, stream, "/", partition.ToString(CultureInfo.InvariantCulture)));

    public static byte[] LeadersOf(string stream) => KeyRanges.Utf8(LeadersPrefix + stream + "/");

    /// <summary>Splits "/sluice/leaders/&lt;stream&gt;/&lt;id&gt;"; false for anything else.</summary>
    public static bool TryParseLeader(string key, out string stream, out int partition) =>
        Streams.StreamCatalog.TryParsePerPartitionKey(LeadersPrefix, key, out stream, out partition);
}
