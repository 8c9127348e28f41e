using static Sluice.Server.Tests.Api.AdminServiceTests;
using static Sluice.Server.Tests.Api.ConsumerGroupTests;

namespace Sluice.Server.Tests.Cluster;

/// <summary>sluice.admin.v1.Admin in a cluster: any broker lists and describes a group with the coordinator's and the leaders' figures.</summary>
public sealed class ClusterAdminServiceTests
{
    [Theory]
    [InlineData(Metadata.Embedded)]
    [InlineData(Metadata.Etcd)]
    public async Task Every_broker_describes_a_group_with_heartbeats_offsets_from_each_leader_and_cursors_from_theirs(Metadata metadata)
    {
        await using var cluster = await ClusterHarness.StartAsync(3, metadata: metadata);
        // One replica per partition: a broker knows a partition's offsets only where it leads it.
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("s", replicationFactor: 1, partitions: 3));
        await ClusterHarness.WaitForAsync(() => Enumerable.Range(0, 3).All(p => cluster.Leader("s", p) is not null), "every partition has an open leader");
        Assert.True(Enumerable.Range(0, 3).Select(p => cluster.Leader("s", p)!).Distinct().Count() > 1, "the partitions are led by more than one broker");
        for (var p = 0; p < 3; p++)
        {
            await cluster.Leader("s", p)!.PublishManyAsync("s", p + 2, partition: p); // newest offsets 1, 2, 3
        }

        await JoinAsync(cluster.Brokers[1], "g", "c1", "s");
        var join = await JoinAsync(cluster.Brokers[2], "g", "c2", "s");
        await ClusterHarness.WaitForAsync(() => cluster.Leader("__cursors") is not null, "__cursors has an open leader");
        for (var p = 0; p < 3; p++)
        {
            await SetCursorAsync(cluster.Leader("__cursors")!, "g", "s", p, 0);
        }

        foreach (var broker in cluster.Brokers)
        {
            var listed = Assert.Single((await ListGroupsAsync(broker)).Groups);
            Assert.Equal(("g", join.Coordinator, 2), (listed.GroupId, listed.Coordinator, listed.Members));

            var described = await DescribeGroupAsync(broker, "g");
            Assert.Equal((join.Coordinator, join.Epoch), (described.Coordinator, described.Epoch));
            Assert.All(described.Members, m => Assert.True(m.HasLastHeartbeatAgeMs, $"{broker.Server.ServerId}: {m.ConsumerId} has the coordinator's heartbeat age"));
            Assert.Equal([0, 1, 2], described.Partitions.Select(p => p.Partition));
            foreach (var p in described.Partitions)
            {
                Assert.Equal(("", p.Partition + 1L, 0L, (long)p.Partition + 1), (p.Error, p.HighWatermark, p.CommittedOffset, p.Lag));
            }
        }
    }

    [Fact]
    public async Task A_broker_that_is_not_the_coordinator_describes_the_group_from_the_metadata_without_heartbeats_when_asked_locally()
    {
        await using var cluster = await ClusterHarness.StartAsync(3);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("s", replicationFactor: 3, partitions: 2));
        await ClusterHarness.WaitForAsync(() => cluster.Leader("s", 0) is not null && cluster.Leader("s", 1) is not null, "both partitions have an open leader");
        var join = await JoinAsync(cluster.Brokers[0], "g", "c1", "s");
        var other = cluster.Brokers.First(b => b.Server.ServerId != join.Coordinator);

        // What a broker answers when the coordinator cannot be asked (or when it is the coordinator's forward): the
        // group's state from the metadata store, without the heartbeats only the coordinator measures.
        var local = await other.Channel.UnaryAsync(
            "/sluice.admin.v1.Admin/DescribeConsumerGroup",
            new Sluice.Protocol.Admin.DescribeConsumerGroupRequest { GroupId = "g", Local = true },
            Sluice.Protocol.Admin.DescribeConsumerGroupResponse.Parser,
            BrokerHarness.CallTimeout);
        Assert.Equal(join.Coordinator, local.Coordinator);
        Assert.False(Assert.Single(local.Members).HasLastHeartbeatAgeMs);
        Assert.Equal(2, local.Partitions.Count);
    }
}
