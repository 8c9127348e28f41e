using System.Net;
using System.Text.Json;
using Sluice.Protocol.Api;
using Sluice.Server.Tests.Cluster;

namespace Sluice.Server.Tests.Monitoring;

/// <summary>The monitoring port on brokers of an in-process cluster (the cluster tests' harness, embedded metadata).</summary>
public sealed class MonitorClusterTests
{
    [Fact]
    public async Task Each_broker_is_ready_reports_the_cluster_and_counts_only_what_it_leads()
    {
        await using var cluster = await ClusterHarness.StartAsync(3, MonitorTests.WithMonitor);
        using var http = MonitorTests.NewClient();
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("watched", replicationFactor: 3));
        for (var i = 0; i < 4; i++)
        {
            await cluster.Brokers[1].PublishAsync("watched", "m" + i, policy: AckPolicy.All);
        }

        var leader = cluster.Leader("watched")!;
        foreach (var broker in cluster.Brokers)
        {
            var port = broker.Server.MonitorPort!.Value;
            var ready = await MonitorTests.GetAsync(http, $"http://127.0.0.1:{port}/readyz", HttpVersion.Version11);
            Assert.Equal((HttpStatusCode.OK, "ready\n"), (ready.Status, ready.Body));

            var view = JsonDocument.Parse((await MonitorTests.GetAsync(http, $"http://127.0.0.1:{port}/v1/cluster", HttpVersion.Version20)).Body).RootElement;
            Assert.True(view.GetProperty("clustered").GetBoolean());
            Assert.Equal(["b1", "b2", "b3"], view.GetProperty("brokers").EnumerateArray().Select(b => b.GetProperty("id").GetString()!).Order().ToArray());
            Assert.Contains(view.GetProperty("controller").GetString(), new[] { "b1", "b2", "b3" });

            // Each broker's meter is its own, though all three live in this process under one meter name.
            var metrics = await MonitorTests.ScrapeAsync(http, port);
            var stream = ("messaging_destination_name", "watched");
            Assert.Equal(broker == leader ? 4 : 0, metrics.Value("sluice_stream_received_messages_total", stream));
            Assert.Equal(0, metrics.Value("sluice_partitions_under_replicated"));
            if (broker == leader)
            {
                Assert.Equal(3, metrics.Value("sluice_partition_isr_size", stream));
                Assert.Equal(3, metrics.Value("sluice_partition_high_watermark", stream));
            }
        }

        // The leader goes: the brokers left see the partition's leader change.
        await leader.StopAsync();
        await ClusterHarness.WaitForAsync(() => cluster.Leader("watched") is { } l && l != leader, "another broker leads");
        var survivor = cluster.Leader("watched")!;
        var after = await MonitorTests.ScrapeAsync(http, survivor.Server.MonitorPort!.Value);
        Assert.True(after.Value("sluice_partition_leader_changes_total", ("messaging_destination_name", "watched")) >= 1);
    }
}
