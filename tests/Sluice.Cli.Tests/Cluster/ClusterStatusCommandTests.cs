using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sluice.Cli.Tests.Cluster;

/// <summary><c>sluice cluster status</c> against three real brokers, before and after one of them is SIGKILLed.</summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class ClusterStatusCommandTests
{
    [Fact]
    public async Task Status_names_the_controller_and_reports_partitions_left_under_replicated_by_a_dead_broker()
    {
        await using var cluster = await ProcessCluster.StartAsync(3);
        var servers = string.Join(",", cluster.Addresses);
        var (created, createProcess) = await SluiceProcess.RunAsync("stream", "create", "replicated", "--subject", "replicated", "--replication-factor", "3", "--servers", servers);
        await using (createProcess)
        {
            Assert.True(created == 0, createProcess.Transcript());
        }

        await cluster.WaitForFullIsrAsync("replicated");
        var (code, healthy) = await SluiceProcess.RunAsync("cluster", "status", "-o", "json", "--servers", servers);
        string controller;
        await using (healthy)
        {
            Assert.True(code == 0, healthy.Transcript());
            using var status = JsonDocument.Parse(Assert.Single(healthy.Stdout));
            Assert.True(status.RootElement.GetProperty("clustered").GetBoolean());
            controller = status.RootElement.GetProperty("controller").GetString()!;
            Assert.Contains(controller, new[] { "b1", "b2", "b3" });
            Assert.Equal(3, status.RootElement.GetProperty("brokers").GetArrayLength());
            Assert.Single(status.RootElement.GetProperty("brokers").EnumerateArray(), b => b.GetProperty("controller").GetBoolean());
            Assert.Equal(0, status.RootElement.GetProperty("underReplicated").GetArrayLength());
        }

        // A broker that is not the controller dies: once its lease is gone, the partition is under-replicated.
        var victim = cluster.Brokers.First(b => b.Id != controller);
        await cluster.KillAsync(victim);
        var live = string.Join(",", cluster.Brokers.Where(b => b != victim).Select(b => b.Address));
        IReadOnlyList<string> lines = [];
        await cluster.WaitForAsync(
            async () =>
            {
                var (exit, process) = await SluiceProcess.RunAsync("cluster", "status", "--servers", live);
                await using (process)
                {
                    lines = process.Stdout;
                    return exit == 3;
                }
            },
            "the status reports the partition under-replicated");
        Assert.Contains(lines, l => l.Contains("2 brokers, controller ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("1 under-replicated, 0 without a leader", StringComparison.Ordinal));
        var row = Assert.Single(lines, l => l.TrimStart().StartsWith("replicated ", StringComparison.Ordinal));
        Assert.Single(Regex.Matches(row, victim.Id)); // among the replicas, no longer in the ISR
    }
}
