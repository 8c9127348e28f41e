using System.CommandLine;
using System.Globalization;
using Sluice.Cli.Output;
using Sluice.Client;

namespace Sluice.Cli.Commands;

/// <summary>`sluice stream create|delete|list|describe|pause|readonly`: stream administration.</summary>
internal static class StreamCommand
{
    public static Command Create()
    {
        var command = new Command("stream", "Create, inspect, pause, make readonly and delete streams");
        command.Subcommands.Add(CreateCommand());
        command.Subcommands.Add(DeleteCommand());
        command.Subcommands.Add(ListCommand());
        command.Subcommands.Add(DescribeCommand());
        command.Subcommands.Add(PauseCommand());
        command.Subcommands.Add(ReadonlyCommand());
        return command;
    }

    private static Argument<string> StreamName() => new("name") { Description = "The stream name" };

    private static Command CreateCommand()
    {
        var name = StreamName();
        var subject = new Option<string>("--subject") { Description = "NATS subject the stream records", Required = true };
        var partitions = new Option<int>("--partitions") { Description = "Number of partitions (default 1)", DefaultValueFactory = _ => 1 }.NotNegative();
        var group = new Option<string>("--group") { Description = "Load-balance group: streams in one group share the subject's messages" };
        var replication = new Option<int>("--replication-factor") { Description = "Replicas per partition (default 1; -1 means every broker)", DefaultValueFactory = _ => 1 };
        var maxReplication = new Option<bool>("--max-replication") { Description = "Replicate to every broker in the cluster (replication factor -1)" };
        var retentionBytes = new Option<long>("--retention-max-bytes") { Description = "Delete the oldest segments beyond this many bytes per partition" }.NotNegative();
        var retentionMessages = new Option<long>("--retention-max-messages") { Description = "Delete the oldest segments beyond this many messages per partition" }.NotNegative();
        var retentionAge = FlagParsers.Duration("--retention-max-age", "Delete segments older than this (e.g. 24h)");
        var cleanerInterval = FlagParsers.Duration("--cleaner-interval", "How often retention and compaction run");
        var segmentBytes = new Option<long>("--segment-max-bytes") { Description = "Roll a new segment beyond this many bytes" }.NotNegative();
        var segmentAge = FlagParsers.Duration("--segment-max-age", "Roll a new segment after this long");
        var compact = new Option<bool>("--compact") { Description = "Keep only the newest message per key (--compact=false to turn off)" };
        var compactGoroutines = new Option<int>("--compact-max-goroutines") { Description = "Concurrency of compaction" }.NotNegative();
        var autoPause = FlagParsers.Duration("--auto-pause-time", "Pause a partition after it has been idle this long");
        var autoPauseSubscribers = new Option<bool>("--auto-pause-disable-if-subscribers") { Description = "Do not auto-pause partitions that have subscribers" };
        var minIsr = new Option<int>("--min-isr") { Description = "Replicas that must be in sync to accept a publish with ack policy all" }.NotNegative();
        var optimistic = new Option<bool>("--optimistic-concurrency") { Description = "Enforce the expected offset that publishers send" };
        var encryption = new Option<bool>("--encryption") { Description = "Encrypt the stream's data at rest" };

        var command = new Command("create", "Create a stream") { name, subject, partitions, group, replication, maxReplication, retentionBytes, retentionMessages, retentionAge, cleanerInterval, segmentBytes, segmentAge, compact, compactGoroutines, autoPause, autoPauseSubscribers, minIsr, optimistic, encryption };
        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, parsed) =>
        {
            var stream = parsed.GetRequiredValue(name);
            var options = new StreamOptions
            {
                Partitions = parsed.GetValue(partitions),
                Group = parsed.GetValue(group),
                ReplicationFactor = parsed.GetValue(maxReplication) ? StreamOptions.MaxReplicationFactor : parsed.GetValue(replication),
                RetentionMaxBytes = Given(parsed, retentionBytes),
                RetentionMaxMessages = Given(parsed, retentionMessages),
                RetentionMaxAge = parsed.GetValue(retentionAge),
                CleanerInterval = parsed.GetValue(cleanerInterval),
                SegmentMaxBytes = Given(parsed, segmentBytes),
                SegmentMaxAge = parsed.GetValue(segmentAge),
                CompactEnabled = Given(parsed, compact),
                CompactMaxGoroutines = Given(parsed, compactGoroutines),
                AutoPauseTime = parsed.GetValue(autoPause),
                AutoPauseDisableIfSubscribers = Given(parsed, autoPauseSubscribers),
                MinIsr = Given(parsed, minIsr),
                OptimisticConcurrencyControl = Given(parsed, optimistic),
                Encryption = Given(parsed, encryption),
            };
            try
            {
                await session.Client.CreateStreamAsync(parsed.GetRequiredValue(subject), stream, options, session.Interrupted).ConfigureAwait(false);
            }
            catch (StreamExistsException)
            {
                throw new CommandException($"stream {stream} already exists");
            }

            var count = Math.Max(1, options.Partitions);
            Report(session.Output, new StreamChangeJson(stream, "created", Enumerable.Range(0, count).ToArray()),
                $"created stream {stream} (subject {parsed.GetRequiredValue(subject)}, {Plural(count, "partition")})");
            return 0;
        });
        return command;
    }

    private static Command DeleteCommand()
    {
        var name = StreamName();
        var command = new Command("delete", "Delete a stream and all its data") { name };
        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, parsed) =>
        {
            var stream = parsed.GetRequiredValue(name);
            try
            {
                await session.Client.DeleteStreamAsync(stream, session.Interrupted).ConfigureAwait(false);
            }
            catch (NoSuchStreamException)
            {
                throw new CommandException($"stream {stream} does not exist");
            }

            Report(session.Output, new StreamChangeJson(stream, "deleted", null), $"deleted stream {stream}");
            return 0;
        });
        return command;
    }

    private static Command ListCommand()
    {
        var command = new Command("list", "List the streams");
        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, _) =>
        {
            var metadata = await session.Client.FetchMetadataAsync(null, session.Interrupted).ConfigureAwait(false);
            var streams = metadata.Streams.Values.OrderBy(s => s.Name, StringComparer.Ordinal).Select(ToJson).ToArray();
            if (session.Output.IsJson)
            {
                session.Output.WriteJson<IReadOnlyList<StreamJson>>(streams, CliJsonContext.Default.IReadOnlyListStreamJson);
            }
            else if (streams.Length == 0)
            {
                session.Output.WriteLine("no streams");
            }
            else
            {
                session.Output.Write(StreamTable(streams));
            }

            return 0;
        });
        return command;
    }

    private static Command DescribeCommand()
    {
        var name = StreamName();
        var command = new Command("describe", "Show a stream's partitions: leader, replicas, ISR, high watermark, newest offset, paused, readonly, and the consumer groups reading each with their lag") { name };
        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, parsed) =>
        {
            var stream = await session.GetStreamAsync(parsed.GetRequiredValue(name)).ConfigureAwait(false);
            var groups = await GroupCommand.GroupsReadingAsync(session, stream.Name).ConfigureAwait(false);
            var partitions = new List<PartitionJson>();
            foreach (var id in stream.Partitions.Keys.Order())
            {
                // The leader's view: cluster metadata does not carry offsets and states.
                var partition = await session.Client.FetchPartitionMetadataAsync(stream.Name, id, session.Interrupted).ConfigureAwait(false);
                partitions.Add(new PartitionJson(id, partition.LeaderId, partition.Replicas, partition.Isr, partition.HighWatermark, partition.NewestOffset,
                    partition.Paused, partition.Readonly, Timestamps.FormatOrNull(partition.MessagesReceivedTimestamps.Latest), groups.GetValueOrDefault(id) ?? []));
            }

            var description = new StreamDescriptionJson(stream.Name, stream.Subject, Timestamps.FormatOrNull(stream.CreationTime), partitions);
            if (session.Output.IsJson)
            {
                session.Output.WriteJson(description, CliJsonContext.Default.StreamDescriptionJson);
                return 0;
            }

            session.Output.WriteLine($"stream {stream.Name}, subject {stream.Subject}, {Plural(partitions.Count, "partition")}, created {description.CreationTime ?? "-"}");
            var table = CommandOutput.CreateTable("PARTITION", "LEADER", "REPLICAS", "ISR", "HIGH WATERMARK", "NEWEST OFFSET", "PAUSED", "READONLY", "LAST MESSAGE");
            foreach (var p in partitions)
            {
                CommandOutput.AddRow(table, Number(p.Id), p.Leader, string.Join(",", p.Replicas), string.Join(",", p.Isr),
                    Number(p.HighWatermark), Number(p.NewestOffset), YesNo(p.Paused), YesNo(p.Readonly), p.LatestMessageTime ?? "-");
            }

            session.Output.Write(table);

            // Groups get a table of their own: one row per group and partition keeps the partition table narrow.
            if (partitions.Any(p => p.Groups.Count > 0))
            {
                var lag = CommandOutput.CreateTable("PARTITION", "GROUP", "MEMBER", "COMMITTED", "LAG");
                foreach (var p in partitions)
                {
                    foreach (var g in p.Groups)
                    {
                        CommandOutput.AddRow(lag, Number(p.Id), g.Group, g.Member, g.CommittedOffset is { } c ? Number(c) : "-", g.Lag is { } l ? Number(l) : "-");
                    }
                }

                session.Output.Write(lag);
            }

            return 0;
        });
        return command;
    }

    private static Command PauseCommand()
    {
        var name = StreamName();
        var partitions = FlagParsers.PartitionList("Pause only these partitions (default: all)");
        var resumeAll = new Option<bool>("--resume-all") { Description = "When a publish resumes one paused partition, resume all of them" };
        var command = new Command("pause", "Pause a stream's partitions (they release their resources and resume on the next publish)") { name, partitions, resumeAll };
        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, parsed) =>
        {
            var stream = await session.GetStreamAsync(parsed.GetRequiredValue(name)).ConfigureAwait(false);
            var chosen = parsed.GetValue(partitions) ?? [];
            ClientSession.CheckPartitions(stream, chosen);
            await session.Client.PauseStreamAsync(stream.Name, new PauseStreamOptions { Partitions = chosen, ResumeAll = parsed.GetValue(resumeAll) }, session.Interrupted)
                .ConfigureAwait(false);
            var affected = Affected(stream, chosen);
            Report(session.Output, new StreamChangeJson(stream.Name, "paused", affected), $"paused stream {stream.Name} ({Describe(stream, chosen)})");
            return 0;
        });
        return command;
    }

    private static Command ReadonlyCommand()
    {
        var name = StreamName();
        var partitions = FlagParsers.PartitionList("Change only these partitions (default: all)");
        var off = new Option<bool>("--off") { Description = "Make the partitions writable again" };
        var command = new Command("readonly", "Make a stream's partitions readonly (publishes fail, subscribers reach the end), or writable with --off") { name, partitions, off };
        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, parsed) =>
        {
            var stream = await session.GetStreamAsync(parsed.GetRequiredValue(name)).ConfigureAwait(false);
            var chosen = parsed.GetValue(partitions) ?? [];
            ClientSession.CheckPartitions(stream, chosen);
            var readOnly = !parsed.GetValue(off);
            await session.Client.SetStreamReadonlyAsync(stream.Name, new SetStreamReadonlyOptions { Partitions = chosen, Readonly = readOnly }, session.Interrupted)
                .ConfigureAwait(false);
            var affected = Affected(stream, chosen);
            Report(session.Output, new StreamChangeJson(stream.Name, readOnly ? "readonly" : "writable", affected),
                $"stream {stream.Name} is {(readOnly ? "readonly" : "writable")} ({Describe(stream, chosen)})");
            return 0;
        });
        return command;
    }

    internal static StreamJson ToJson(StreamInfo stream) =>
        new(stream.Name, stream.Subject, stream.Partitions.Count, Timestamps.FormatOrNull(stream.CreationTime));

    internal static Spectre.Console.Table StreamTable(IEnumerable<StreamJson> streams)
    {
        var table = CommandOutput.CreateTable("NAME", "SUBJECT", "PARTITIONS", "CREATED");
        foreach (var stream in streams)
        {
            CommandOutput.AddRow(table, stream.Name, stream.Subject, Number(stream.Partitions), stream.CreationTime ?? "-");
        }

        return table;
    }

    internal static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static int[] Affected(StreamInfo stream, int[] chosen) => chosen.Length > 0 ? [.. chosen.Order()] : [.. stream.Partitions.Keys.Order()];

    private static string Describe(StreamInfo stream, int[] chosen) =>
        chosen.Length == 0 ? $"all {Plural(stream.Partitions.Count, "partition")}" : (chosen.Length == 1 ? "partition " : "partitions ") + string.Join(",", chosen.Order());

    private static void Report(CommandOutput output, StreamChangeJson change, string text)
    {
        if (output.IsJson)
        {
            output.WriteJson(change, CliJsonContext.Default.StreamChangeJson);
        }
        else
        {
            output.WriteLine(text);
        }
    }

    private static string Plural(int count, string noun) => $"{count} {noun}{(count == 1 ? "" : "s")}";

    private static string YesNo(bool value) => value ? "yes" : "no";

    private static T? Given<T>(ParseResult parsed, Option<T> option)
        where T : struct =>
        parsed.IsGiven(option) ? parsed.GetValue(option) : null;
}
