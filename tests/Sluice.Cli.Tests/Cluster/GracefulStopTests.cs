using Sluice.Client;
using Xunit.Abstractions;

namespace Sluice.Cli.Tests.Cluster;

/// <summary>Real brokers, real etcd: planned stops (SIGTERM) under publish load, as operators restart brokers.</summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class GracefulStopTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_leader_SIGTERMed_under_load_hands_over_and_no_publish_fails()
    {
        const string stream = "handover";
        await using var cluster = await ProcessCluster.StartAsync(3);
        await using var client = await SluiceClient.ConnectAsync(cluster.Addresses); // default settings: message ids, 5 s ack wait
        await client.CreateStreamAsync(stream + ".subject", stream, new StreamOptions { ReplicationFactor = 3 });
        var leader = await cluster.WaitForFullIsrAsync(stream);

        using var load = new ClusterPublishLoad(client, stream, partitions: 1);
        load.Start();
        await load.WaitForMoreAcksAsync(cluster, 300, "before the stop");
        await cluster.TerminateAsync(cluster[leader]);
        await load.WaitForMoreAcksAsync(cluster, 300, "after the stop");
        await load.StopAsync();

        cluster.Restart(cluster[leader]);
        var stored = await load.VerifyAsync(cluster);
        output.WriteLine($"{load.AckCount} acked, {stored} stored; failures: {load.FailureKinds}");
        Assert.True(load.Failures == 0, $"publishes failed: {load.FailureKinds}");
    }

    [Fact]
    public async Task A_rolling_restart_of_every_broker_under_load_fails_no_publish_and_loses_no_acked_message()
    {
        const string stream = "rolling";
        const int partitions = 3;
        await using var cluster = await ProcessCluster.StartAsync(3);
        await using var client = await SluiceClient.ConnectAsync(cluster.Addresses);
        await client.CreateStreamAsync(stream + ".subject", stream, new StreamOptions { ReplicationFactor = 3, Partitions = partitions, MinIsr = 2 });
        for (var p = 0; p < partitions; p++)
        {
            await cluster.WaitForFullIsrAsync(stream, p);
        }

        using var load = new ClusterPublishLoad(client, stream, partitions);
        load.Start();
        await load.WaitForMoreAcksAsync(cluster, 200, "before the restarts");
        foreach (var broker in cluster.Brokers)
        {
            await cluster.TerminateAsync(broker);
            await load.WaitForMoreAcksAsync(cluster, 100, $"while {broker.Id} is down");
            cluster.Restart(broker);
            for (var p = 0; p < partitions; p++)
            {
                await cluster.WaitForFullIsrAsync(stream, p); // back in every ISR (and leading again where preferred)
            }

            await load.WaitForMoreAcksAsync(cluster, 100, $"after {broker.Id} rejoined");
        }

        await load.StopAsync();
        var stored = await load.VerifyAsync(cluster);
        output.WriteLine($"{load.AckCount} acked, {stored} stored; failures: {load.FailureKinds}");
        Assert.True(load.Failures == 0, $"publishes failed: {load.FailureKinds}");
    }
}
