using System.CommandLine;
using System.Text.Json.Serialization;
using Sluice.Cli.Output;
using Sluice.Client;
using Sluice.Protocol.Grpc;

namespace Sluice.Cli.Commands;

/// <summary>
/// <c>sluice cluster status</c>: the brokers, the controller, and the partitions that are under-replicated (fewer in-sync
/// replicas than replicas) or have no leader. Exits 0 when every partition is fully replicated and led, 3 otherwise,
/// so a script or a probe can act on it.
/// </summary>
internal static class ClusterStatusCommand
{
    /// <summary>The exit code when some partition is under-replicated or has no leader.</summary>
    public const int Degraded = 3;

    public static Command Create()
    {
        var command = new Command("status", "Show the brokers, the controller and the under-replicated or leaderless partitions (exit code 3 when there are any)");
        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, _) =>
        {
            var metadata = await session.Client.FetchMetadataAsync(null, session.Interrupted).ConfigureAwait(false);
            string? controller = null;
            var clustered = metadata.Brokers.Count > 1;
            long revision = 0;
            try
            {
                var cluster = await session.Client.DescribeClusterAsync(session.Interrupted).ConfigureAwait(false);
                controller = cluster.Controller;
                clustered = cluster.Clustered;
                revision = cluster.MetadataRevision;
            }
            catch (SluiceException e) when (e.StatusCode == GrpcStatusCode.Unimplemented)
            {
                // Liftbridge: no admin service, so the controller (its Raft leader) is not known here.
            }

            var brokers = metadata.Brokers.OrderBy(b => b.Id, StringComparer.Ordinal)
                .Select(b => new ClusterBrokerJson(b.Id, b.Address, b.PartitionCount, b.LeaderCount, b.Id == controller))
                .ToArray();
            var partitions = metadata.Streams.Values.OrderBy(s => s.Name, StringComparer.Ordinal)
                .SelectMany(s => s.Partitions.Values.OrderBy(p => p.Id).Select(p => new ClusterPartitionJson(s.Name, p.Id, p.LeaderId, p.Replicas, p.Isr)))
                .ToArray();
            var offline = partitions.Where(p => p.Leader.Length == 0).ToArray();
            var underReplicated = partitions.Where(p => p.Leader.Length > 0 && p.Isr.Count < p.Replicas.Count).ToArray();
            var status = new ClusterStatusJson(clustered, controller, revision, brokers, metadata.Streams.Count, partitions.Length, underReplicated, offline);
            var code = offline.Length + underReplicated.Length == 0 ? 0 : Degraded;
            if (session.Output.IsJson)
            {
                session.Output.WriteJson(status, ClusterStatusJsonContext.Default.ClusterStatusJson);
                return code;
            }

            var controllerText = controller switch
            {
                null => "controller unknown (the server has no Sluice admin service)",
                "" when clustered => "no controller right now",
                "" => "a single node (no controller)",
                _ => $"controller {controller}",
            };
            session.Output.WriteLine($"{brokers.Length} broker{(brokers.Length == 1 ? "" : "s")}, {controllerText}{(revision > 0 ? $", metadata revision {revision}" : "")}");
            var table = CommandOutput.CreateTable("ID", "ADDRESS", "PARTITIONS", "LEADER OF", "CONTROLLER");
            foreach (var broker in brokers)
            {
                CommandOutput.AddRow(table, broker.Id, broker.Address, StreamCommand.Number(broker.Partitions), StreamCommand.Number(broker.Leaders), broker.Controller ? "yes" : "");
            }

            session.Output.Write(table);
            session.Output.WriteLine($"{status.Streams} streams, {status.Partitions} partitions: {underReplicated.Length} under-replicated, {offline.Length} without a leader");
            if (code != 0)
            {
                var problems = CommandOutput.CreateTable("STREAM", "PARTITION", "LEADER", "REPLICAS", "ISR");
                foreach (var p in offline.Concat(underReplicated))
                {
                    CommandOutput.AddRow(problems, p.Stream, StreamCommand.Number(p.Partition), p.Leader.Length == 0 ? "none" : p.Leader, string.Join(",", p.Replicas), string.Join(",", p.Isr));
                }

                session.Output.Write(problems);
            }

            return code;
        });
        return command;
    }
}

/// <summary><c>sluice cluster status -o json</c> (field names are part of the CLI's interface).</summary>
internal sealed record ClusterStatusJson(
    bool Clustered,
    string? Controller,
    long MetadataRevision,
    IReadOnlyList<ClusterBrokerJson> Brokers,
    int Streams,
    int Partitions,
    IReadOnlyList<ClusterPartitionJson> UnderReplicated,
    IReadOnlyList<ClusterPartitionJson> Offline);

internal sealed record ClusterBrokerJson(string Id, string Address, int Partitions, int Leaders, bool Controller);

internal sealed record ClusterPartitionJson(string Stream, int Partition, string Leader, IReadOnlyList<string> Replicas, IReadOnlyList<string> Isr);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(ClusterStatusJson))]
internal sealed partial class ClusterStatusJsonContext : JsonSerializerContext;
