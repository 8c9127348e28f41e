using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using static Sluice.Server.Tests.Api.ConsumerGroupTests;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Api;

/// <summary>Subscribe as a group member: the epoch must be current and the partition assigned to the member.</summary>
public sealed class ConsumerGroupSubscribeTests
{
    private static SubscribeRequest Request(string stream, int partition, string group, string consumer, ulong epoch) => new()
    {
        Stream = stream,
        Partition = partition,
        StartPosition = StartPosition.Earliest,
        Consumer = new Consumer { GroupId = group, ConsumerId = consumer, GroupEpoch = epoch },
    };

    private static async Task<GrpcException> RefusedAsync(BrokerHarness h, SubscribeRequest request)
    {
        await using var call = h.Channel.ServerStreaming("/proto.API/Subscribe", request, Message.Parser);
        return await Assert.ThrowsAsync<GrpcException>(async () => await call.MoveNextAsync());
    }

    [Fact]
    public async Task The_assigned_member_with_the_current_epoch_reads_its_partition()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s", partitions: 2);
        var join = await JoinAsync(h, "g", "c1", "s");
        await h.PublishAsync("s", "x", partition: 1);
        await using var sub = await h.SubscribeAsync(Request("s", 1, "g", "c1", join.Epoch));
        Assert.Equal("x", (await ReadAsync(sub, 1))[0].Value.ToStringUtf8());
    }

    [Fact]
    public async Task A_stale_epoch_is_refused_with_FailedPrecondition()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s", partitions: 2);
        var first = await JoinAsync(h, "g", "c1", "s");
        var second = await JoinAsync(h, "g", "c2", "s");
        var c1 = await AssignmentsAsync(h, "g", "c1");

        var ex = await RefusedAsync(h, Request("s", c1["s"][0], "g", "c1", first.Epoch));
        Assert.Equal(GrpcStatusCode.FailedPrecondition, ex.StatusCode);
        Assert.Equal($"Consumer group epoch {first.Epoch} is not the group's current epoch {second.Epoch}", ex.Detail);
    }

    [Fact]
    public async Task A_partition_not_assigned_to_the_member_is_refused_with_Liftbridges_text()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s", partitions: 2);
        await JoinAsync(h, "g", "c1", "s");
        var join = await JoinAsync(h, "g", "c2", "s");
        var notMine = (await AssignmentsAsync(h, "g", "c2"))["s"].Single();

        var ex = await RefusedAsync(h, Request("s", notMine, "g", "c1", join.Epoch));
        Assert.Equal((GrpcStatusCode.FailedPrecondition, "Consumer is not currently assigned this partition"), (ex.StatusCode, ex.Detail));
        var stranger = await RefusedAsync(h, Request("s", 0, "g", "nobody", join.Epoch));
        Assert.Equal((GrpcStatusCode.FailedPrecondition, "Consumer is not currently assigned this partition"), (stranger.StatusCode, stranger.Detail));
        var noGroup = await RefusedAsync(h, Request("s", 0, "other", "c1", 0));
        Assert.Equal((GrpcStatusCode.FailedPrecondition, "consumer group other does not exist"), (noGroup.StatusCode, noGroup.Detail));
    }

    [Fact]
    public async Task A_consumer_id_without_a_group_id_is_a_plain_subscription_as_in_Liftbridge()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s");
        await h.PublishAsync("s", "x");
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "s", StartPosition = StartPosition.Earliest, Consumer = new Consumer { ConsumerId = "c1" } });
        Assert.Equal("x", (await ReadAsync(sub, 1))[0].Value.ToStringUtf8());
    }

    [Fact]
    public async Task Group_subscriptions_cannot_read_from_a_replica()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s");
        var join = await JoinAsync(h, "g", "c1", "s");
        var request = Request("s", 0, "g", "c1", join.Epoch);
        request.ReadISRReplica = true;
        var ex = await RefusedAsync(h, request);
        Assert.Equal((GrpcStatusCode.InvalidArgument, "Consumer groups not compatible with ReadISRReplica"), (ex.StatusCode, ex.Detail));
    }

    [Fact]
    public async Task A_member_losing_its_partition_has_its_subscription_ended_with_status_OK()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s", partitions: 2);
        var join = await JoinAsync(h, "g", "c1", "s");
        await using var sub = await h.SubscribeAsync(Request("s", 1, "g", "c1", join.Epoch));

        await JoinAsync(h, "g", "c2", "s"); // c2 takes partition 1 (c1 keeps 0)
        Assert.Equal(1, (await AssignmentsAsync(h, "g", "c2"))["s"].Single());
        var (_, error) = await ReadToEndAsync(sub);
        Assert.Null(error);
    }

    [Fact]
    public async Task A_second_subscription_of_the_same_member_replaces_the_first()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("s", "s");
        var join = await JoinAsync(h, "g", "c1", "s");
        await using var first = await h.SubscribeAsync(Request("s", 0, "g", "c1", join.Epoch));
        await using var second = await h.SubscribeAsync(Request("s", 0, "g", "c1", join.Epoch));
        var (_, error) = await ReadToEndAsync(first);
        Assert.Null(error);
        await h.PublishAsync("s", "y");
        Assert.Equal("y", (await ReadAsync(second, 1))[0].Value.ToStringUtf8());
    }
}
