using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Api;

/// <summary>The consumer-group RPCs on one node, as Liftbridge's clients call them (reference §1.3, §3.8).</summary>
public sealed class ConsumerGroupTests
{
    internal static Task<JoinConsumerGroupResponse> JoinAsync(BrokerHarness h, string group, string consumer, params string[] streams) =>
        h.CallAsync("JoinConsumerGroup", new JoinConsumerGroupRequest { GroupId = group, ConsumerId = consumer, Streams = { streams } }, JoinConsumerGroupResponse.Parser);

    internal static Task<LeaveConsumerGroupResponse> LeaveAsync(BrokerHarness h, string group, string consumer) =>
        h.CallAsync("LeaveConsumerGroup", new LeaveConsumerGroupRequest { GroupId = group, ConsumerId = consumer }, LeaveConsumerGroupResponse.Parser);

    internal static Task<FetchConsumerGroupAssignmentsResponse> FetchAsync(BrokerHarness h, string group, string consumer, ulong epoch) =>
        h.CallAsync("FetchConsumerGroupAssignments", new FetchConsumerGroupAssignmentsRequest { GroupId = group, ConsumerId = consumer, Epoch = epoch }, FetchConsumerGroupAssignmentsResponse.Parser);

    internal static async Task<ConsumerGroupMetadata> GroupMetadataAsync(BrokerHarness h, string group) =>
        (await h.CallAsync("FetchMetadata", new FetchMetadataRequest { Groups = { group } }, FetchMetadataResponse.Parser)).GroupMetadata.Single();

    internal static async Task<ulong> EpochAsync(BrokerHarness h, string group) => (await GroupMetadataAsync(h, group)).Epoch;

    /// <summary>stream → partitions of one member, at the group's current epoch.</summary>
    internal static async Task<Dictionary<string, int[]>> AssignmentsAsync(BrokerHarness h, string group, string consumer)
    {
        var response = await FetchAsync(h, group, consumer, await EpochAsync(h, group));
        return response.Assignments.ToDictionary(a => a.Stream, a => a.Partitions.Order().ToArray());
    }

    [Fact]
    public async Task Join_validates_its_request_with_Liftbridges_codes_and_texts()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s");
        Assert.Equal("No groupId provided", (await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => JoinAsync(h, "", "c", "s"))).Detail);
        Assert.Equal("No consumerId provided", (await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => JoinAsync(h, "g", "", "s"))).Detail);
        Assert.Equal("No streams provided", (await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => JoinAsync(h, "g", "c"))).Detail);
        Assert.Equal("stream does not exist", (await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => JoinAsync(h, "g", "c", "missing"))).Detail);
        Assert.Equal(ConsumerGroupMetadata.Types.Error.UnknownGroup, (await GroupMetadataAsync(h, "g")).Error);
    }

    [Fact]
    public async Task First_join_creates_the_group_at_epoch_0_coordinated_here_with_the_configured_timeouts()
    {
        await using var h = await StartAsync(o => o with { Groups = o.Groups with { ConsumerTimeout = TimeSpan.FromSeconds(7) } });
        await h.CreateStreamAsync("s", "s", partitions: 2);
        var join = await JoinAsync(h, "g", "c1", "s");
        Assert.Equal((h.Server.ServerId, 0UL), (join.Coordinator, join.Epoch));
        Assert.Equal(7_000_000_000L, join.ConsumerTimeout);
        Assert.Equal(15_000_000_000L, join.CoordinatorTimeout); // Liftbridge's default, in nanoseconds
        var metadata = await GroupMetadataAsync(h, "g");
        Assert.Equal((ConsumerGroupMetadata.Types.Error.Ok, h.Server.ServerId, 0UL), (metadata.Error, metadata.Coordinator, metadata.Epoch));
        var assignments = await FetchAsync(h, "g", "c1", 0);
        Assert.Equal(0UL, assignments.Epoch);
        Assert.Equal([0, 1], assignments.Assignments.Single(a => a.Stream == "s").Partitions);
    }

    [Fact]
    public async Task A_second_join_raises_the_epoch_and_a_fetch_with_the_old_epoch_is_refused()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s", partitions: 2);
        await JoinAsync(h, "g", "c1", "s");
        var second = await JoinAsync(h, "g", "c2", "s");
        Assert.True(second.Epoch > 0);
        Assert.Equal(second.Epoch, await EpochAsync(h, "g"));
        var stale = await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => FetchAsync(h, "g", "c1", 0));
        Assert.Equal("client-provided group epoch differs from broker group epoch", stale.Detail);
        Assert.Equal("consumer is already a member of the consumer group", (await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => JoinAsync(h, "g", "c2", "s"))).Detail);
        Assert.Equal("consumer is not a member of the consumer group", (await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => FetchAsync(h, "g", "c3", second.Epoch))).Detail);
        Assert.Equal("consumer group does not exist", (await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => FetchAsync(h, "nope", "c1", 0))).Detail);
    }

    [Fact]
    public async Task Three_members_over_six_partitions_get_two_each_disjoint_and_complete()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s", partitions: 6);
        foreach (var c in new[] { "c1", "c2", "c3" })
        {
            await JoinAsync(h, "g", c, "s");
        }

        var all = new List<int>();
        foreach (var c in new[] { "c1", "c2", "c3" })
        {
            var mine = (await AssignmentsAsync(h, "g", c))["s"];
            Assert.Equal(2, mine.Length);
            all.AddRange(mine);
        }

        Assert.Equal([0, 1, 2, 3, 4, 5], all.Order());
    }

    [Fact]
    public async Task Leave_rebalances_and_the_last_leave_deletes_the_group()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s", partitions: 4);
        await JoinAsync(h, "g", "c1", "s");
        await JoinAsync(h, "g", "c2", "s");
        Assert.Equal(2, (await AssignmentsAsync(h, "g", "c1"))["s"].Length);
        Assert.Equal("consumer group does not exist", (await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => LeaveAsync(h, "nope", "c1"))).Detail);
        Assert.Equal("consumer is not a member of the consumer group", (await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => LeaveAsync(h, "g", "c9"))).Detail);
        Assert.Equal("No consumerId provided", (await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => LeaveAsync(h, "g", ""))).Detail);

        var before = await EpochAsync(h, "g");
        await LeaveAsync(h, "g", "c2");
        Assert.True(await EpochAsync(h, "g") > before);
        int[] everything = [0, 1, 2, 3];
        Assert.Equal(everything, (await AssignmentsAsync(h, "g", "c1"))["s"]);

        await LeaveAsync(h, "g", "c1");
        Assert.Equal(ConsumerGroupMetadata.Types.Error.UnknownGroup, (await GroupMetadataAsync(h, "g")).Error);
    }

    [Fact]
    public async Task A_member_that_stops_fetching_expires_and_its_partitions_move_to_the_others()
    {
        await using var h = await StartAsync(o => o with { Groups = o.Groups with { ConsumerTimeout = TimeSpan.FromSeconds(2) } });
        await h.CreateStreamAsync("s", "s", partitions: 6);
        foreach (var c in new[] { "c1", "c2", "c3" })
        {
            await JoinAsync(h, "g", c, "s");
        }

        // c1 and c2 keep fetching (their heartbeat); c3 falls silent.
        await WaitUntilAsync(
            async () =>
            {
                try
                {
                    var epoch = await EpochAsync(h, "g");
                    var c1 = await FetchAsync(h, "g", "c1", epoch);
                    var c2 = await FetchAsync(h, "g", "c2", epoch);
                    return c1.Assignments.Sum(a => a.Partitions.Count) + c2.Assignments.Sum(a => a.Partitions.Count) == 6;
                }
                catch (GrpcException ex) when (ex.StatusCode == GrpcStatusCode.FailedPrecondition)
                {
                    return false; // the epoch changed between the two fetches (the expiry): read it again
                }
            },
            "the silent member's partitions move to the two live ones",
            TimeSpan.FromSeconds(20));
        var epoch = await EpochAsync(h, "g");
        Assert.Equal("consumer is not a member of the consumer group", (await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => FetchAsync(h, "g", "c3", epoch))).Detail);
        var c1Parts = (await AssignmentsAsync(h, "g", "c1"))["s"];
        var c2Parts = (await AssignmentsAsync(h, "g", "c2"))["s"];
        Assert.Equal([0, 1, 2, 3, 4, 5], c1Parts.Concat(c2Parts).Order());
    }

    [Fact]
    public async Task Deleting_a_stream_drops_it_from_the_group_and_raises_the_epoch()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("a", "a", partitions: 2);
        await h.CreateStreamAsync("b", "b", partitions: 2);
        await JoinAsync(h, "g", "c1", "a", "b");
        Assert.Equal(["a", "b"], (await AssignmentsAsync(h, "g", "c1")).Keys.Order());
        var before = await EpochAsync(h, "g");

        await h.DeleteStreamAsync("b");
        await WaitUntilAsync(async () => await EpochAsync(h, "g") > before, "the group changes after the delete");
        Assert.Equal(["a"], (await AssignmentsAsync(h, "g", "c1")).Keys);
    }

    [Fact]
    public async Task Report_checks_group_generation_and_membership()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s");
        await JoinAsync(h, "g", "c1", "s");
        Task Report(string group, string consumer, string coordinator, ulong epoch) =>
            h.CallAsync("ReportConsumerGroupCoordinator", new ReportConsumerGroupCoordinatorRequest { GroupId = group, ConsumerId = consumer, Coordinator = coordinator, Epoch = epoch }, ReportConsumerGroupCoordinatorResponse.Parser);

        Assert.Equal("No coordinator provided", (await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => Report("g", "c1", "", 0))).Detail);
        Assert.Equal("No such consumer group x", (await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => Report("x", "c1", "b", 0))).Detail);
        Assert.Equal(
            $"Coordinator generation mismatch, current coordinator: {h.Server.ServerId} epoch: 0, got coordinator: other epoch: 0",
            (await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => Report("g", "c1", "other", 0))).Detail);
        Assert.Equal("Consumer c9 is not a member of consumer group g", (await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => Report("g", "c9", h.Server.ServerId, 0))).Detail);
        await Report("g", "c1", h.Server.ServerId, 0); // a live coordinator stays
        Assert.Equal(h.Server.ServerId, (await GroupMetadataAsync(h, "g")).Coordinator);
    }

    [Fact]
    public async Task A_restart_keeps_groups_assignments_and_epoch_and_later_epochs_are_higher()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s", partitions: 4);
        await JoinAsync(h, "g", "c1", "s");
        var join = await JoinAsync(h, "g", "c2", "s");
        var c1 = await AssignmentsAsync(h, "g", "c1");

        await h.RestartAsync();
        Assert.Equal(join.Epoch, await EpochAsync(h, "g"));
        Assert.Equal(c1["s"], (await FetchAsync(h, "g", "c1", join.Epoch)).Assignments.Single().Partitions);
        var third = await JoinAsync(h, "g", "c3", "s");
        Assert.True(third.Epoch > join.Epoch);
    }

    [Fact]
    public async Task Joining_turns_cursors_on_and_group_positions_survive_a_restart()
    {
        await using var h = await StartAsync(); // cursors.stream.partitions = 0: cursors off
        await h.CreateStreamAsync("s", "s", partitions: 2);
        var off = await ThrowsGrpcAsync(GrpcStatusCode.Internal, () => h.CallAsync("FetchCursor", new FetchCursorRequest { Stream = "s", Partition = 1, CursorId = "__group:g" }, FetchCursorResponse.Parser));
        Assert.Equal("Cursors stream does not exist", off.Detail);

        await JoinAsync(h, "g", "c1", "s");
        Assert.Contains((await h.MetadataAsync()).StreamMetadata, s => s.Name == "__cursors");
        await h.CallAsync("SetCursor", new SetCursorRequest { Stream = "s", Partition = 1, CursorId = "__group:g", Offset = 41 }, SetCursorResponse.Parser);

        await h.RestartAsync();
        var fetched = await h.CallAsync("FetchCursor", new FetchCursorRequest { Stream = "s", Partition = 1, CursorId = "__group:g" }, FetchCursorResponse.Parser);
        Assert.Equal(41, fetched.Offset);
    }
}
