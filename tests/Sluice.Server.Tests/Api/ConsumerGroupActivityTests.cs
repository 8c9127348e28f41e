using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using static Sluice.Server.Tests.Api.ConsumerGroupTests;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Api;

/// <summary>Consumer-group changes in the activity stream, and the group table a server keeps in memory.</summary>
public sealed class ConsumerGroupActivityTests
{
    private static readonly ActivityStreamOp[] GroupOps = [ActivityStreamOp.JoinConsumerGroup, ActivityStreamOp.LeaveConsumerGroup, ActivityStreamOp.RebalanceConsumerGroup];

    [Fact]
    public async Task Joins_leaves_expiries_and_rebalances_are_published_to_the_activity_stream()
    {
        await using var h = await StartAsync(o => o with
        {
            Activity = o.Activity with { Enabled = true },
            Groups = o.Groups with { ConsumerTimeout = TimeSpan.FromSeconds(5) },
        });
        await h.CreateStreamAsync("s", "s", partitions: 2);
        await h.CreateStreamAsync("t", "t");
        await JoinAsync(h, "g", "c1", "s", "t");
        var second = await JoinAsync(h, "g", "c2", "s");
        await FetchAsync(h, "g", "c1", second.Epoch); // c1's heartbeat: it must outlive the steps before its expiry

        // Deleting t takes it from c1: a rebalance that is neither a join nor a leave.
        await h.DeleteStreamAsync("t");
        await WaitUntilAsync(
            async () =>
            {
                var epoch = await EpochAsync(h, "g");
                await FetchAsync(h, "g", "c1", epoch); // c1's heartbeat again
                return epoch > second.Epoch;
            },
            "the group is rebalanced after the stream's deletion");
        await LeaveAsync(h, "g", "c2");
        await WaitUntilAsync(async () => (await GroupMetadataAsync(h, "g")).Error == ConsumerGroupMetadata.Types.Error.UnknownGroup, "c1 expires and the group goes");

        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "__activity", StartPosition = StartPosition.Earliest });
        var events = new List<ActivityStreamEvent>();
        await Task.Run(async () =>
        {
            while (events.Count < 5 && await sub.MoveNextAsync())
            {
                var e = ActivityStreamEvent.Parser.ParseFrom(sub.Current.Value);
                if (GroupOps.Contains(e.Op))
                {
                    events.Add(e);
                }
            }
        }).WaitAsync(CallTimeout);

        Assert.Equal(
            [ActivityStreamOp.JoinConsumerGroup, ActivityStreamOp.JoinConsumerGroup, ActivityStreamOp.RebalanceConsumerGroup, ActivityStreamOp.LeaveConsumerGroup, ActivityStreamOp.LeaveConsumerGroup],
            events.Select(e => e.Op));
        Assert.Equal(("g", "c1"), (events[0].JoinConsumerGroupOp.GroupId, events[0].JoinConsumerGroupOp.ConsumerId));
        Assert.Equal(["s", "t"], events[0].JoinConsumerGroupOp.Streams);
        Assert.Equal((second.Epoch, "joined", 2), (events[1].ConsumerGroupRebalanceOp.Epoch, events[1].ConsumerGroupRebalanceOp.Reason, events[1].ConsumerGroupRebalanceOp.Members.Count));

        var rebalance = events[2].ConsumerGroupRebalanceOp;
        Assert.Equal(("g", "stream deleted", h.Server.ServerId), (rebalance.GroupId, rebalance.Reason, rebalance.Coordinator));
        Assert.DoesNotContain(rebalance.Members.SelectMany(m => m.Assignments), a => a.Stream == "t");
        Assert.Equal([0, 1], rebalance.Members.SelectMany(m => m.Assignments).SelectMany(a => a.Partitions).Order());

        Assert.Equal(("c2", false, "left"), (events[3].LeaveConsumerGroupOp.ConsumerId, events[3].LeaveConsumerGroupOp.Expired, events[3].ConsumerGroupRebalanceOp.Reason));
        Assert.Equal(("c1", true, true), (events[4].LeaveConsumerGroupOp.ConsumerId, events[4].LeaveConsumerGroupOp.Expired, events[4].ConsumerGroupRebalanceOp.Deleted));
        for (var i = 1; i < events.Count; i++)
        {
            Assert.True(events[i].Id > events[i - 1].Id, "event ids increase");
        }
    }

    [Fact]
    public async Task Deleted_groups_and_lookups_of_unknown_groups_leave_no_entries_behind()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s");
        for (var i = 0; i < 20; i++)
        {
            await JoinAsync(h, $"g{i}", "c", "s");
            await LeaveAsync(h, $"g{i}", "c"); // the last member: the group is deleted
            await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => FetchAsync(h, $"unknown{i}", "c", 0));
        }

        await JoinAsync(h, "kept", "c", "s");
        await WaitUntilAsync(() => Task.FromResult(h.Server.Groups.TrackedGroupCount == 1), "only the live group is kept in memory");
        Assert.Equal("kept", Assert.Single(h.Server.Groups.Snapshot()).Id);
    }
}
