using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using static Sluice.Server.Tests.Api.ConsumerGroupTests;

namespace Sluice.Server.Tests.Cluster;

/// <summary>Consumer groups in a cluster: state in the shared metadata, one coordinator, failover when it stops.</summary>
public sealed class ClusterConsumerGroupTests
{
    [Fact]
    public async Task Every_broker_sees_the_group_and_only_the_coordinator_answers_assignments()
    {
        await using var cluster = await ClusterHarness.StartAsync(3);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("s", replicationFactor: 3, partitions: 6));
        await ClusterHarness.WaitForAsync(() => cluster.Brokers.All(b => b.Server.Broker.TryGetStream("s", out _)), "every broker has the stream");
        var join = await JoinAsync(cluster.Brokers[1], "g", "c1", "s");
        await JoinAsync(cluster.Brokers[2], "g", "c2", "s");
        var last = await JoinAsync(cluster.Brokers[0], "g", "c3", "s");
        Assert.Contains(join.Coordinator, cluster.Brokers.Select(b => b.Server.ServerId));

        foreach (var broker in cluster.Brokers)
        {
            await BrokerHarness.WaitUntilAsync(async () => (await GroupMetadataAsync(broker, "g")).Epoch == last.Epoch, $"{broker.Server.ServerId} sees the group at its last epoch");
            Assert.Equal(join.Coordinator, (await GroupMetadataAsync(broker, "g")).Coordinator);
        }

        var coordinator = cluster.Brokers.Single(b => b.Server.ServerId == join.Coordinator);
        var other = cluster.Brokers.First(b => b != coordinator);
        var notHere = await BrokerHarness.ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => FetchAsync(other, "g", "c1", last.Epoch));
        Assert.Equal("broker is not the consumer group coordinator", notHere.Detail);

        var all = new List<int>();
        foreach (var c in new[] { "c1", "c2", "c3" })
        {
            var mine = (await FetchAsync(coordinator, "g", c, last.Epoch)).Assignments.Single().Partitions;
            Assert.Equal(2, mine.Count);
            all.AddRange(mine);
        }

        Assert.Equal([0, 1, 2, 3, 4, 5], all.Order());
        await ClusterHarness.WaitForAsync(() => cluster.Brokers.All(b => b.Server.Broker.Cursors.Enabled), "the controller created __cursors for the group");
    }

    [Theory]
    [InlineData(Metadata.Embedded)]
    [InlineData(Metadata.Etcd)]
    public async Task When_the_coordinators_broker_stops_another_broker_coordinates_and_members_fetch_there(Metadata metadata)
    {
        await using var cluster = await ClusterHarness.StartAsync(3, metadata: metadata);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("s", replicationFactor: 3, partitions: 4));
        await ClusterHarness.WaitForAsync(() => cluster.Brokers.All(b => b.Server.Broker.TryGetStream("s", out _)), "every broker has the stream");
        await JoinAsync(cluster.Brokers[0], "g", "c1", "s");
        var join = await JoinAsync(cluster.Brokers[0], "g", "c2", "s");
        var dead = join.Coordinator;

        await cluster.Brokers.Single(b => b.Server.ServerId == dead).StopAsync();
        var survivor = cluster.Running.First();
        ConsumerGroupMetadata group = null!;
        await BrokerHarness.WaitUntilAsync(
            async () => (group = await GroupMetadataAsync(survivor, "g")).Coordinator != dead,
            "the group gets a live coordinator",
            ClusterHarness.Timeout);
        Assert.True(group.Epoch > join.Epoch);
        var coordinator = cluster.Running.Single(b => b.Server.ServerId == group.Coordinator);
        await BrokerHarness.WaitUntilAsync(async () => (await GroupMetadataAsync(coordinator, "g")).Epoch == group.Epoch, "the new coordinator has seen its election");

        var c1 = await FetchAsync(coordinator, "g", "c1", group.Epoch);
        var c2 = await FetchAsync(coordinator, "g", "c2", group.Epoch);
        Assert.Equal([0, 1, 2, 3], c1.Assignments.Single().Partitions.Concat(c2.Assignments.Single().Partitions).Order());
    }
    [Fact]
    public async Task The_partition_leader_fences_group_members_from_the_shared_group_state()
    {
        await using var cluster = await ClusterHarness.StartAsync(3);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("s", replicationFactor: 3, partitions: 2));
        await ClusterHarness.WaitForAsync(() => cluster.Leader("s", 0) is not null && cluster.Leader("s", 1) is not null, "both partitions have an open leader");
        var first = await JoinAsync(cluster.Brokers[1], "g", "c1", "s");
        var leader = cluster.Leader("s", 1)!;
        await using var sub = await leader.SubscribeAsync(new SubscribeRequest
        {
            Stream = "s",
            Partition = 1,
            StartPosition = StartPosition.Earliest,
            Consumer = new Consumer { GroupId = "g", ConsumerId = "c1", GroupEpoch = first.Epoch },
        });

        // c2 joins through another broker and takes partition 1: the leader ends c1's subscription and refuses the old epoch.
        var second = await JoinAsync(cluster.Brokers[2], "g", "c2", "s");
        var (_, error) = await BrokerHarness.ReadToEndAsync(sub);
        Assert.Null(error);
        await using var stale = leader.Channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest
        {
            Stream = "s",
            Partition = 1,
            Consumer = new Consumer { GroupId = "g", ConsumerId = "c1", GroupEpoch = first.Epoch },
        }, Message.Parser);
        var refused = await Assert.ThrowsAsync<GrpcException>(async () => await stale.MoveNextAsync());
        Assert.Equal(GrpcStatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Contains($"is not the group's current epoch {second.Epoch}", refused.Detail, StringComparison.Ordinal);
    }
}
