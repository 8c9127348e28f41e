using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Wire;
using Sluice.TestKit;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Cluster;

/// <summary>
/// A replica whose disk fills: a leader hands its partition to an in-sync replica and gets it back only once there is
/// room; a follower leaves the ISR at once instead of holding every ALL ack for the lag time. Each broker's data
/// directory is its own small tmpfs (needs root, as in CI).
/// </summary>
public sealed class FullDiskFailoverTests
{
    private static readonly string Big = new('x', 256 * 1024); // needs new pages, which a full tmpfs refuses

    [Fact]
    public async Task A_leader_whose_disk_fills_hands_the_partition_over_and_takes_it_back_once_there_is_room()
    {
        var mounts = new[] { "b1", "b2", "b3" }.ToDictionary(id => id, _ => new SmallTmpfs(24 << 20));
        try
        {
            await using var cluster = await ClusterHarness.StartAsync(3, o => o with { DataDir = mounts[o.Clustering.ServerId!].Path });
            var request = ClusterHarness.Stream("full", replicationFactor: 3);
            request.MinIsr = new NullableInt32 { Value = 2 };
            await cluster.Brokers[0].CreateStreamAsync(request);
            var first = cluster.Leadership("full");
            var leader = cluster[first.Leader];
            Assert.NotNull(await leader.PublishAsync("full", "before", policy: AckPolicy.All));

            var filler = mounts[first.Leader].Fill();

            // Refused before anything was stored, with a text that tells a client to send it again to the next leader.
            var ex = await ThrowsGrpcAsync(GrpcStatusCode.Unavailable, () => leader.PublishAsync("full", Big, policy: AckPolicy.All));
            Assert.Equal(PublishErrors.LeaderStorageFull, ex.Detail);
            Assert.True(PublishErrors.AllowsResend(ex.Detail));

            await ClusterHarness.WaitForAsync(
                () => cluster.Leadership("full") is var now && now.Leader != first.Leader && !now.Isr.Contains(first.Leader),
                "another in-sync replica leads, and the full broker is out of the ISR");
            var next = cluster[cluster.Leadership("full").Leader];
            for (var i = 0; i < 5; i++)
            {
                Assert.NotNull(await next.PublishAsync("full", "while full " + i, policy: AckPolicy.All));
            }

            // Its follower has caught up with those small messages, but it says its disk is full: no way back yet.
            Assert.DoesNotContain(first.Leader, cluster.Leadership("full").Isr);
            Assert.NotEqual(first.Leader, cluster.Leadership("full").Leader);

            File.Delete(filler);
            await ClusterHarness.WaitForAsync(() => cluster.Leadership("full").Isr.Contains(first.Leader), "the broker with room again rejoins the ISR");
            if (first.Replicas[0] == first.Leader)
            {
                await ClusterHarness.WaitForAsync(() => cluster.Leadership("full").Leader == first.Leader, "the preferred replica leads again");
            }

            var current = cluster[cluster.Leadership("full").Leader];
            Assert.NotNull(await current.PublishAsync("full", Big, policy: AckPolicy.All));
            Assert.Equal(7, ClusterHarness.LogOf(current, "full")!.NextOffset); // 7 acked, the refused one not stored
        }
        finally
        {
            foreach (var mount in mounts.Values)
            {
                mount.Dispose();
            }
        }
    }

    [Fact]
    public async Task A_follower_whose_disk_fills_leaves_the_isr_at_once_and_acks_all_go_on()
    {
        var mounts = new[] { "b1", "b2", "b3" }.ToDictionary(id => id, _ => new SmallTmpfs(24 << 20));
        try
        {
            // A lag time far longer than the test's waits: only the follower's own report can take it out in time.
            await using var cluster = await ClusterHarness.StartAsync(3, o => o with
            {
                DataDir = mounts[o.Clustering.ServerId!].Path,
                Clustering = o.Clustering with { ReplicaMaxLagTime = TimeSpan.FromMinutes(5) },
            });
            var request = ClusterHarness.Stream("follower-full", replicationFactor: 3);
            request.MinIsr = new NullableInt32 { Value = 2 };
            await cluster.Brokers[0].CreateStreamAsync(request);
            var leadership = cluster.Leadership("follower-full");
            var leader = cluster[leadership.Leader];
            var full = leadership.Replicas.First(r => r != leadership.Leader);
            Assert.NotNull(await leader.PublishAsync("follower-full", "before", policy: AckPolicy.All));

            mounts[full].Fill();
            using var timeout = new CancellationTokenSource(ClusterHarness.Timeout);
            Assert.NotNull(await leader.PublishAsync("follower-full", Big, policy: AckPolicy.All).WaitAsync(timeout.Token));
            // The leader acked without it, so the ISR without it is written; the broker whose view is read may lag.
            await ClusterHarness.WaitForAsync(() => !cluster.Leadership("follower-full").Isr.Contains(full), "the ISR without the full follower");
            Assert.NotNull(await leader.PublishAsync("follower-full", Big, policy: AckPolicy.All).WaitAsync(timeout.Token));
        }
        finally
        {
            foreach (var mount in mounts.Values)
            {
                mount.Dispose();
            }
        }
    }
}
