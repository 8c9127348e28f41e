using System.CommandLine;
using Sluice.Cli.Output;
using Sluice.Client;
using Sluice.Protocol.Admin;
using Sluice.Protocol.Grpc;
using static Sluice.Cli.Commands.StreamCommand;

namespace Sluice.Cli.Commands;

/// <summary>`sluice group list|describe`: consumer groups, their members, committed positions and lag (Sluice servers only).</summary>
internal static class GroupCommand
{
    public static Command Create()
    {
        var command = new Command("group", "List consumer groups and show their members, positions and lag (Sluice servers only)");
        command.Subcommands.Add(ListCommand());
        command.Subcommands.Add(DescribeCommand());
        return command;
    }

    private static Command ListCommand()
    {
        var command = new Command("list", "List the consumer groups: coordinator, epoch, members, streams");
        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, _) =>
        {
            var response = await Admin(() => session.Client.ListConsumerGroupsAsync(session.Interrupted)).ConfigureAwait(false);
            var groups = response.Groups.Select(g => new GroupJson(g.GroupId, g.Coordinator, g.Epoch, g.Members, [.. g.Streams])).ToArray();
            if (session.Output.IsJson)
            {
                session.Output.WriteJson<IReadOnlyList<GroupJson>>(groups, CliJsonContext.Default.IReadOnlyListGroupJson);
            }
            else if (groups.Length == 0)
            {
                session.Output.WriteLine("no consumer groups");
            }
            else
            {
                var table = CommandOutput.CreateTable("GROUP", "COORDINATOR", "EPOCH", "MEMBERS", "STREAMS");
                foreach (var g in groups)
                {
                    CommandOutput.AddRow(table, g.GroupId, g.Coordinator, Number((long)g.Epoch), Number(g.Members), string.Join(",", g.Streams));
                }

                session.Output.Write(table);
            }

            return 0;
        });
        return command;
    }

    private static Command DescribeCommand()
    {
        var name = new Argument<string>("group") { Description = "The consumer group id" };
        var command = new Command("describe", "Show a consumer group: members with their last heartbeat and partitions, and per partition the committed offset, high watermark and lag") { name };
        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, parsed) =>
        {
            var group = parsed.GetRequiredValue(name);
            var described = await Admin(() => session.Client.DescribeConsumerGroupAsync(group, session.Interrupted), group).ConfigureAwait(false);
            var json = ToJson(described);
            if (session.Output.IsJson)
            {
                session.Output.WriteJson(json, CliJsonContext.Default.GroupDescriptionJson);
                return 0;
            }

            var lag = json.TotalLag is { } total ? Number(total) : "unknown";
            session.Output.WriteLine($"group {json.GroupId}, coordinator {json.Coordinator}, epoch {json.Epoch}, {json.Members.Count} member{(json.Members.Count == 1 ? "" : "s")}, total lag {lag}");
            var members = CommandOutput.CreateTable("MEMBER", "STREAMS", "LAST HEARTBEAT", "PARTITIONS");
            foreach (var m in json.Members)
            {
                CommandOutput.AddRow(members, m.ConsumerId, string.Join(",", m.Streams), m.LastHeartbeatAgeMs is { } age ? $"{age / 1000.0:0.0}s ago" : "unknown",
                    string.Join(" ", m.Assignments.Select(a => $"{a.Stream}:{string.Join(",", a.Partitions)}")));
            }

            session.Output.Write(members);
            var withErrors = json.Partitions.Any(p => p.Error is not null);
            var partitions = withErrors
                ? CommandOutput.CreateTable("STREAM", "PARTITION", "MEMBER", "COMMITTED", "HIGH WATERMARK", "NEWEST OFFSET", "LAG", "NOTE")
                : CommandOutput.CreateTable("STREAM", "PARTITION", "MEMBER", "COMMITTED", "HIGH WATERMARK", "NEWEST OFFSET", "LAG");
            foreach (var p in json.Partitions)
            {
                string[] cells = [p.Stream, Number(p.Partition), p.ConsumerId, Optional(p.CommittedOffset), Number(p.HighWatermark), Number(p.NewestOffset), Optional(p.Lag)];
                CommandOutput.AddRow(partitions, withErrors ? [.. cells, p.Error ?? ""] : cells);
            }

            session.Output.Write(partitions);
            return 0;
        });
        return command;
    }

    /// <summary>The groups reading <paramref name="stream"/>, per partition (for `stream describe`); empty from a server without the admin service.</summary>
    internal static async Task<Dictionary<int, List<PartitionGroupJson>>> GroupsReadingAsync(ClientSession session, string stream)
    {
        var byPartition = new Dictionary<int, List<PartitionGroupJson>>();
        ListConsumerGroupsResponse groups;
        try
        {
            groups = await session.Client.ListConsumerGroupsAsync(session.Interrupted).ConfigureAwait(false);
        }
        catch (SluiceException e) when (e.StatusCode == GrpcStatusCode.Unimplemented)
        {
            return byPartition; // a Liftbridge server: it has groups, but no way to list them
        }

        foreach (var group in groups.Groups.Where(g => g.Streams.Contains(stream)))
        {
            DescribeConsumerGroupResponse described;
            try
            {
                described = await session.Client.DescribeConsumerGroupAsync(group.GroupId, session.Interrupted).ConfigureAwait(false);
            }
            catch (SluiceException e) when (e.StatusCode == GrpcStatusCode.NotFound)
            {
                continue; // its last member left meanwhile
            }

            foreach (var p in described.Partitions.Where(p => p.Stream == stream))
            {
                if (!byPartition.TryGetValue(p.Partition, out var list))
                {
                    byPartition[p.Partition] = list = [];
                }

                list.Add(new PartitionGroupJson(described.GroupId, p.ConsumerId, p.HasCommittedOffset ? p.CommittedOffset : null, p.HasLag ? p.Lag : null));
            }
        }

        return byPartition;
    }

    internal static GroupDescriptionJson ToJson(DescribeConsumerGroupResponse d)
    {
        var partitions = d.Partitions.Select(p => new GroupPartitionJson(
            p.Stream, p.Partition, p.ConsumerId, p.HasCommittedOffset ? p.CommittedOffset : null, p.HighWatermark, p.NewestOffset, p.HasLag ? p.Lag : null,
            p.Error.Length > 0 ? p.Error : null)).ToArray();
        var members = d.Members.Select(m => new GroupMemberJson(
            m.ConsumerId, [.. m.Streams], m.HasLastHeartbeatAgeMs ? m.LastHeartbeatAgeMs : null,
            [.. m.Assignments.Select(a => new GroupAssignmentJson(a.Stream, [.. a.Partitions]))])).ToArray();
        // The group's total is known only when every partition's lag is (a partition without a cursor has no lag).
        long? total = partitions.All(p => p.Lag is not null) ? partitions.Sum(p => p.Lag!.Value) : null;
        return new GroupDescriptionJson(d.GroupId, d.Coordinator, d.Epoch, total, members, partitions);
    }

    /// <summary>Runs an admin call, wording the answers a user can act on.</summary>
    private static async Task<T> Admin<T>(Func<Task<T>> call, string? group = null)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (SluiceException e) when (e.StatusCode == GrpcStatusCode.Unimplemented)
        {
            throw new CommandException("the server does not serve consumer-group administration (sluice.admin.v1; Liftbridge servers have no such API)");
        }
        catch (SluiceException e) when (e.StatusCode == GrpcStatusCode.NotFound && group is not null)
        {
            throw new CommandException($"consumer group {group} does not exist");
        }
    }

    private static string Optional(long? value) => value is { } v ? Number(v) : "-";
}
