using System.CommandLine;
using Sluice.Cli.Output;

namespace Sluice.Cli.Commands;

/// <summary>`sluice metadata`: the cluster's brokers and streams.</summary>
internal static class MetadataCommand
{
    public static Command Create()
    {
        var command = new Command("metadata", "Show the cluster's brokers and streams");
        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, _) =>
        {
            var metadata = await session.Client.FetchMetadataAsync(null, session.Interrupted).ConfigureAwait(false);
            var brokers = metadata.Brokers.OrderBy(b => b.Id, StringComparer.Ordinal)
                .Select(b => new BrokerJson(b.Id, b.Host, b.Port, b.Address, b.PartitionCount, b.LeaderCount)).ToArray();
            var streams = metadata.Streams.Values.OrderBy(s => s.Name, StringComparer.Ordinal).Select(StreamCommand.ToJson).ToArray();
            if (session.Output.IsJson)
            {
                session.Output.WriteJson(new MetadataJson(brokers, streams), CliJsonContext.Default.MetadataJson);
                return 0;
            }

            session.Output.WriteLine($"{brokers.Length} broker{(brokers.Length == 1 ? "" : "s")}");
            var table = CommandOutput.CreateTable("ID", "ADDRESS", "PARTITIONS", "LEADER OF");
            foreach (var broker in brokers)
            {
                CommandOutput.AddRow(table, broker.Id, broker.Address, StreamCommand.Number(broker.PartitionCount), StreamCommand.Number(broker.LeaderCount));
            }

            session.Output.Write(table);
            session.Output.WriteLine($"{streams.Length} stream{(streams.Length == 1 ? "" : "s")}");
            if (streams.Length > 0)
            {
                session.Output.Write(StreamCommand.StreamTable(streams));
            }

            return 0;
        });
        return command;
    }
}
