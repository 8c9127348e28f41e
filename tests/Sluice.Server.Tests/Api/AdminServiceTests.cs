using Sluice.Protocol.Admin;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using static Sluice.Server.Tests.Api.ConsumerGroupTests;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Api;

/// <summary>The Sluice-only sluice.admin.v1.Admin service on one node: listing and describing consumer groups.</summary>
public sealed class AdminServiceTests
{
    internal static Task<ListConsumerGroupsResponse> ListGroupsAsync(BrokerHarness h) =>
        h.Channel.UnaryAsync("/sluice.admin.v1.Admin/ListConsumerGroups", new ListConsumerGroupsRequest(), ListConsumerGroupsResponse.Parser, CallTimeout);

    internal static Task<DescribeConsumerGroupResponse> DescribeGroupAsync(BrokerHarness h, string group) =>
        h.Channel.UnaryAsync("/sluice.admin.v1.Admin/DescribeConsumerGroup", new DescribeConsumerGroupRequest { GroupId = group }, DescribeConsumerGroupResponse.Parser, CallTimeout);

    internal static Task SetCursorAsync(BrokerHarness h, string group, string stream, int partition, long offset) =>
        h.CallAsync("SetCursor", new SetCursorRequest { CursorId = "__group:" + group, Stream = stream, Partition = partition, Offset = offset }, SetCursorResponse.Parser);

    [Fact]
    public async Task List_names_every_group_with_its_coordinator_epoch_members_and_streams()
    {
        await using var h = await StartAsync();
        Assert.Empty((await ListGroupsAsync(h)).Groups);
        await h.CreateStreamAsync("a", "a", partitions: 2);
        await h.CreateStreamAsync("b", "b");
        await JoinAsync(h, "g2", "c1", "b");
        await JoinAsync(h, "g1", "c1", "a");
        var last = await JoinAsync(h, "g1", "c2", "a", "b");

        var groups = (await ListGroupsAsync(h)).Groups;
        Assert.Equal(["g1", "g2"], groups.Select(g => g.GroupId));
        var g1 = groups[0];
        Assert.Equal((h.Server.ServerId, last.Epoch, 2), (g1.Coordinator, g1.Epoch, g1.Members));
        Assert.Equal(["a", "b"], g1.Streams);
        Assert.Equal(1, groups[1].Members);

        await LeaveAsync(h, "g2", "c1");
        Assert.Equal(["g1"], (await ListGroupsAsync(h)).Groups.Select(g => g.GroupId));
    }

    [Fact]
    public async Task Describe_gives_members_heartbeats_assignments_cursors_offsets_and_lag()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s", partitions: 2);
        await h.PublishManyAsync("s", 5, partition: 0);
        await h.PublishManyAsync("s", 3, partition: 1);
        await JoinAsync(h, "g", "c1", "s");
        var join = await JoinAsync(h, "g", "c2", "s");
        await SetCursorAsync(h, "g", "s", 0, 1); // offsets 0 and 1 processed: 2, 3 and 4 left

        var described = await DescribeGroupAsync(h, "g");
        Assert.Equal(("g", h.Server.ServerId, join.Epoch), (described.GroupId, described.Coordinator, described.Epoch));
        Assert.Equal(["c1", "c2"], described.Members.Select(m => m.ConsumerId));
        foreach (var member in described.Members)
        {
            Assert.Equal(["s"], member.Streams);
            Assert.True(member.HasLastHeartbeatAgeMs, $"{member.ConsumerId} has a heartbeat age");
            Assert.InRange(member.LastHeartbeatAgeMs, 0, CallTimeout.TotalMilliseconds * 3);
            Assert.Single(Assert.Single(member.Assignments).Partitions);
        }

        Assert.Equal([("s", 0), ("s", 1)], described.Partitions.Select(p => (p.Stream, p.Partition)));
        var p0 = described.Partitions[0];
        Assert.Equal((true, 1L, 4L, 4L, true, 3L, ""), (p0.HasCommittedOffset, p0.CommittedOffset, p0.HighWatermark, p0.NewestOffset, p0.HasLag, p0.Lag, p0.Error));
        var owner = described.Members.Single(m => m.Assignments.Single().Partitions.Contains(0)).ConsumerId;
        Assert.Equal(owner, p0.ConsumerId);

        // No cursor yet: Kafka shows no committed offset and no lag, and so does Sluice.
        var p1 = described.Partitions[1];
        Assert.Equal((false, 2L, false, ""), (p1.HasCommittedOffset, p1.HighWatermark, p1.HasLag, p1.Error));

        // Processed everything: lag 0.
        await SetCursorAsync(h, "g", "s", 1, 2);
        p1 = (await DescribeGroupAsync(h, "g")).Partitions[1];
        Assert.Equal((2L, 0L), (p1.CommittedOffset, p1.Lag));
    }

    [Fact]
    public async Task Describe_refuses_an_empty_id_and_an_unknown_group()
    {
        await using var h = await StartAsync();
        Assert.Equal("No groupId provided", (await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => DescribeGroupAsync(h, ""))).Detail);
        Assert.Equal("consumer group does not exist", (await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => DescribeGroupAsync(h, "nope"))).Detail);
    }
}
