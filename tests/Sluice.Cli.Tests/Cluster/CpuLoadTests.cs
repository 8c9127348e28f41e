using System.Diagnostics;
using Sluice.Protocol.Api;
using Xunit.Abstractions;

namespace Sluice.Cli.Tests.Cluster;

/// <summary>Real brokers, real etcd, a busy machine: no broker loses its lease and no leadership moves.</summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class CpuLoadTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Under_CPU_load_no_broker_loses_its_lease_and_the_leader_epoch_stays()
    {
        const string stream = "busy";
        await using var cluster = await ProcessCluster.StartAsync(3);
        await using var store = await cluster.ConnectStoreAsync();
        await cluster.Brokers[0].CallAsync("CreateStream", new CreateStreamRequest { Subject = stream, Name = stream, ReplicationFactor = 3 }, CreateStreamResponse.Parser, TimeSpan.FromSeconds(10));
        var leaderId = await cluster.WaitForFullIsrAsync(stream);
        var leases = await ProcessCluster.BrokerLeasesAsync(store);
        Assert.Equal(3, leases.Count);
        var epoch = await ProcessCluster.LeaderEpochAsync(store, stream);

        var burnFor = TimeSpan.FromSeconds(10);
        var burners = Enumerable.Range(0, 4).Select(_ => new Thread(() => Burn(burnFor)) { IsBackground = true, Priority = ThreadPriority.Normal }).ToList();
        burners.ForEach(t => t.Start());
        var acked = new Dictionary<long, string>();
        var load = Stopwatch.StartNew();
        for (var i = 0; load.Elapsed < burnFor; i++)
        {
            acked.Add(await cluster[leaderId].PublishAsync(stream, "busy" + i), "busy" + i);
        }

        burners.ForEach(t => t.Join());
        output.WriteLine($"{acked.Count} ALL publishes acked during {burnFor.TotalSeconds} s of 4 busy threads");
        Assert.Equal(leases, await ProcessCluster.BrokerLeasesAsync(store));
        Assert.Equal(epoch, await ProcessCluster.LeaderEpochAsync(store, stream));
        Assert.Equal(leaderId, await cluster.WaitForFullIsrAsync(stream));
    }

    private static void Burn(TimeSpan duration)
    {
        var until = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var x = 0UL;
        while (Stopwatch.GetTimestamp() < until)
        {
            for (var i = 0; i < 10_000; i++)
            {
                x = (x * 6364136223846793005UL) + 1442695040888963407UL;
            }
        }

        GC.KeepAlive(x);
    }
}
