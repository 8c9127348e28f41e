using System.Diagnostics;
using Sluice.Protocol.Api;
using Xunit.Abstractions;

namespace Sluice.Server.Tests.Cluster;

/// <summary>A follower that comes back after the log grew without it catches up without holding the leader back.</summary>
public sealed class CatchUpTests(ITestOutputHelper output)
{
    [Fact]
    public async Task AFollowerBackAfterALongAbsenceCatchesUpWhileTheLeaderKeepsAckingAllAndRejoinsTheIsr()
    {
        // Small fetches (64 KiB) so the backlog takes hundreds of them.
        await using var cluster = await ClusterHarness.StartAsync(3, o => o with { Clustering = o.Clustering with { ReplicationMaxBytes = 64 * 1024 } });
        var request = ClusterHarness.Stream("backlog", replicationFactor: 3);
        request.MinIsr = new NullableInt32 { Value = 2 };
        await cluster.Brokers[0].CreateStreamAsync(request);
        var leadership = cluster.Leadership("backlog");
        var leader = cluster[leadership.Leader];
        var absent = cluster[leadership.Replicas.Last(r => r != leadership.Leader)];

        await absent.StopAsync();
        await ClusterHarness.WaitForAsync(() => cluster.Leadership("backlog").Isr.Count == 2, "the stopped follower leaves the ISR");
        var value = new string('x', 10_000);
        for (var i = 0; i < 2_000; i++)
        {
            await leader.PublishAsync("backlog", value); // ~20 MB while it is away
        }

        // While it catches up, ALL publishes keep being acked by the leader and the follower in sync.
        await absent.StartAgainAsync();
        var catchUp = Stopwatch.StartNew();
        var ackedDuringCatchUp = 0;
        var deadline = DateTime.UtcNow + ClusterHarness.Timeout;
        while (cluster.Leadership("backlog").Isr.Count < 3)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the follower did not rejoin the ISR; its log ends at {ClusterHarness.LogOf(absent, "backlog")?.NewestOffset}");
            Assert.NotNull(await leader.PublishAsync("backlog", "during " + ackedDuringCatchUp, policy: AckPolicy.All));
            ackedDuringCatchUp++;
        }

        output.WriteLine($"back in the ISR after {catchUp.ElapsedMilliseconds} ms; {ackedDuringCatchUp} ALL publishes acked meanwhile");
        Assert.True(ackedDuringCatchUp > 0, "no ALL publish was acked while the follower caught up");
        var end = ClusterHarness.LogOf(leader, "backlog")!.NewestOffset;
        Assert.True(end >= 2_000 + ackedDuringCatchUp - 1);
        await ClusterHarness.WaitForAsync(() => ClusterHarness.LogOf(absent, "backlog")?.NewestOffset == end, "the follower has the whole log");
        Assert.Equal(ClusterHarness.Encoded(ClusterHarness.LogOf(leader, "backlog")!), ClusterHarness.Encoded(ClusterHarness.LogOf(absent, "backlog")!));
        Assert.Equal(end + 1, (await leader.PublishAsync("backlog", "after", policy: AckPolicy.All))!.Offset);
    }
}
