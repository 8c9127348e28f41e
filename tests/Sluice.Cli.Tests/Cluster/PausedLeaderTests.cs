using System.Diagnostics;
using System.Globalization;
using Sluice.Client;

namespace Sluice.Cli.Tests.Cluster;

/// <summary>
/// A leader stopped with SIGSTOP (a long GC pause, a frozen VM) keeps its connections open: nothing fails, and only the
/// metadata shows that the cluster has moved on. The client must notice and go to the new leader.
/// </summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class PausedLeaderTests
{
    private const string Stream = "paused";

    [Fact]
    public async Task Publishers_to_a_paused_leader_move_to_its_successor_before_it_wakes_up()
    {
        await using var cluster = await ProcessCluster.StartAsync(3);
        await using var client = await SluiceClient.ConnectAsync(cluster.Addresses, new SluiceClientOptions { AckWaitTime = TimeSpan.FromSeconds(15) });
        await client.CreateStreamAsync(Stream + ".subject", Stream, new StreamOptions { ReplicationFactor = 3, MinIsr = 2 });
        var leader = cluster[await cluster.WaitForFullIsrAsync(Stream)];
        var all = new MessageOptions { AckPolicy = AckPolicy.All };
        await client.PublishAsync(Stream, "before"u8.ToArray(), all); // the client knows the leader

        Signal(leader, "STOP");
        try
        {
            // The broker lease (3 s) is far shorter than the ack deadline (15 s): the controller elects a successor
            // while the old leader sleeps. Without the client's silence check this publish waits on the sleeping
            // leader's open stream until its deadline and fails.
            var ack = await client.PublishAsync(Stream, "during"u8.ToArray(), all);
            Assert.Equal(1, ack!.Offset);
            var now = await ProcessCluster.TryPartitionAsync(cluster.Brokers.First(b => b != leader), Stream);
            Assert.NotEqual(leader.Id, now?.Leader);
        }
        finally
        {
            Signal(leader, "CONT");
        }
    }

    private static void Signal(BrokerProcess broker, string signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-" + signal, broker.Process!.ProcessId.ToString(CultureInfo.InvariantCulture) } })!;
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }
}
