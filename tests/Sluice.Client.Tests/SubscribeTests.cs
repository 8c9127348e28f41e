using Sluice.Client.Tests.Fakes;
using Sluice.Protocol.Api;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>Subscriptions: positions, partitions, replicas, the handler form, and in-stream errors.</summary>
public sealed class SubscribeTests
{
    [Fact]
    public async Task Handshake_frame_is_swallowed_and_new_only_sees_messages_published_after_subscribing()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        cluster.Append("foo", 0, "old");

        await using var subscription = await client.SubscribeCoreAsync("foo");
        for (var i = 0; i < 5; i++)
        {
            await client.PublishAsync("foo", Bytes($"v{i}"), new MessageOptions { Key = Bytes("bar") });
        }

        var messages = await subscription.TakeAsync(5);
        Assert.Equal([1L, 2, 3, 4, 5], messages.Select(m => m.Offset));
        Assert.Equal(["v0", "v1", "v2", "v3", "v4"], messages.Select(m => m.GetValueAsString()));
        Assert.All(messages, m => Assert.Equal(("foo", 0, "bar", "foo"), (m.Stream, m.Partition, Text(m.Key), m.Subject)));
        Assert.Equal("foo", Text(messages[0].Headers["subject"]));
        Assert.Equal(5, subscription.LastOffset);
    }

    [Fact]
    public async Task Start_positions_earliest_latest_offset_time_and_time_delta()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        var acks = new List<SluiceAck>();
        for (var i = 0; i < 5; i++)
        {
            acks.Add((await client.PublishAsync("foo", Bytes($"{i}")))!);
        }

        Assert.Equal(0, await FirstOffset(SubscribeOptions.Default.StartAtEarliest()));
        Assert.Equal(4, await FirstOffset(SubscribeOptions.Default.StartAtLatest()));
        Assert.Equal(3, await FirstOffset(SubscribeOptions.Default.StartAtOffset(3)));
        var time = cluster.GetStream("foo")!.Partitions[0].Messages[2].Timestamp;
        Assert.Equal(2, await FirstOffset(SubscribeOptions.Default.StartAtTime(DateTimeOffset.UnixEpoch.AddTicks(time / 100))));
        Assert.Equal(0, await FirstOffset(SubscribeOptions.Default.StartAtTimeDelta(TimeSpan.FromHours(1))));

        var requests = cluster.Requests<SubscribeRequest>("Subscribe");
        Assert.Equal(Sluice.Protocol.Api.StartPosition.Earliest, requests[0].StartPosition);
        Assert.Equal(Sluice.Protocol.Api.StartPosition.Latest, requests[1].StartPosition);
        Assert.Equal((Sluice.Protocol.Api.StartPosition.Offset, 3L), (requests[2].StartPosition, requests[2].StartOffset));
        Assert.Equal(Sluice.Protocol.Api.StartPosition.Timestamp, requests[3].StartPosition);
        Assert.InRange(requests[3].StartTimestamp, time - 100, time); // ns, to 100 ns precision

        async Task<long> FirstOffset(SubscribeOptions options) => (await client.SubscribeAsync("foo", options).TakeAsync(1))[0].Offset;
    }

    [Fact]
    public async Task Stop_positions_end_the_enumeration_normally()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        for (var i = 0; i < 10; i++)
        {
            cluster.Append("foo", 0, $"{i}");
        }

        var toOffset = await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest().StopAtOffset(3)).ToListAsync();
        Assert.Equal([0L, 1, 2, 3], toOffset.Select(m => m.Offset));

        var toLatest = await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtOffset(7).StopAtLatest()).ToListAsync();
        Assert.Equal([7L, 8, 9], toLatest.Select(m => m.Offset));

        var messages = cluster.GetStream("foo")!.Partitions[0].Messages;
        var start = DateTimeOffset.UnixEpoch.AddTicks(messages[2].Timestamp / 100);
        var stop = DateTimeOffset.UnixEpoch.AddTicks(messages[6].Timestamp / 100);
        var byTime = await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtTime(start).StopAtTime(stop)).ToListAsync();
        Assert.Equal([2L, 3, 4, 5, 6], byTime.Select(m => m.Offset));
    }

    [Fact]
    public async Task A_messages_timestamp_as_stop_time_includes_it_when_the_server_records_nanoseconds()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        const long epoch = 1_700_000_000_000_000_000; // a tick boundary; each message 1 µs apart, 57 ns into its tick, as Liftbridge's Go clock gives
        var messages = cluster.GetStream("foo")!.Partitions[0].Messages;
        for (var i = 0; i < 10; i++)
        {
            cluster.Append("foo", 0, $"{i}");
            messages[i].Timestamp = epoch + (i * 1000) + 57;
        }

        var all = await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest().StopAtLatest()).ToListAsync();
        var window = await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtTime(all[2].Timestamp).StopAtTime(all[6].Timestamp)).ToListAsync();
        Assert.Equal([2L, 3, 4, 5, 6], window.Select(m => m.Offset));
    }

    [Fact]
    public async Task Stop_at_latest_on_an_empty_stream_is_ReadonlyPartition()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        await Assert.ThrowsAsync<ReadonlyPartitionException>(() => client.SubscribeCoreAsync("foo", SubscribeOptions.Default.StopAtLatest()));
    }

    [Fact]
    public async Task Local_validation_errors_throw_before_enumeration_and_send_nothing()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        Assert.Throws<ArgumentOutOfRangeException>(() => client.SubscribeAsync("foo", SubscribeOptions.Default with { Partition = -1 }));
        var future = Assert.Throws<ArgumentOutOfRangeException>(() => client.SubscribeAsync("foo", SubscribeOptions.Default.StopAtTime(DateTimeOffset.UtcNow.AddHours(1))));
        Assert.Contains("stop time cannot be in the future", future.Message);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.SubscribeCoreAsync("foo", SubscribeOptions.Default with { Partition = -1 }));
        Assert.Equal(0, cluster.CallCount("Subscribe"));
    }

    [Fact]
    public async Task Subscribe_to_a_missing_partition_is_NoSuchPartition_and_missing_stream_is_NoSuchStream()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        await Assert.ThrowsAsync<NoSuchPartitionException>(() => client.SubscribeAsync("foo", SubscribeOptions.Default with { Partition = 3 }).TakeAsync(1));
        await Assert.ThrowsAsync<NoSuchStreamException>(() => client.SubscribeCoreAsync("nope"));
    }

    [Fact]
    public async Task Server_NotFound_at_subscribe_is_NoSuchPartition()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        await client.FetchMetadataAsync();
        cluster.FailNext("Subscribe", Sluice.Protocol.Grpc.GrpcStatusCode.NotFound, "No such partition");
        var ex = await Assert.ThrowsAsync<NoSuchPartitionException>(() => client.SubscribeCoreAsync("foo"));
        Assert.Contains("No such partition", ex.Message);
    }

    [Fact]
    public async Task Partition_option_reads_that_partition_from_its_leader()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 3);
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with { Partitions = 3 });
        cluster.Append("foo", 2, "two");
        var message = (await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest() with { Partition = 2 }).TakeAsync(1))[0];
        Assert.Equal((2, "two"), (message.Partition, message.GetValueAsString()));
        var call = Assert.Single(cluster.Calls, c => c.Method == "Subscribe");
        Assert.Equal(cluster.GetStream("foo")!.Partitions[2].Leader, call.Broker);
    }

    [Fact]
    public async Task Read_isr_replica_may_read_from_a_follower()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 3);
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with { ReplicationFactor = 3 });
        cluster.Append("foo", 0, "x");
        var brokers = new HashSet<string>();
        for (var i = 0; i < 12; i++)
        {
            var message = (await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest() with { ReadIsrReplica = true }).TakeAsync(1))[0];
            Assert.Equal("x", message.GetValueAsString());
        }

        Assert.All(cluster.Requests<SubscribeRequest>("Subscribe"), r => Assert.True(r.ReadISRReplica));
        foreach (var call in cluster.Calls.Where(c => c.Method == "Subscribe"))
        {
            brokers.Add(call.Broker);
        }

        Assert.True(brokers.Count > 1, "12 random ISR picks among 3 replicas all hit one broker"); // (1/3)^11 chance of a false failure
    }

    [Fact]
    public async Task Resume_option_resumes_a_paused_partition()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        cluster.Append("foo", 0, "x");
        await client.PauseStreamAsync("foo");
        var refused = await Assert.ThrowsAnyAsync<SluiceException>(() => client.SubscribeCoreAsync("foo", SubscribeOptions.Default.StartAtEarliest()));
        Assert.Equal(Sluice.Protocol.Grpc.GrpcStatusCode.FailedPrecondition, refused.StatusCode);
        var message = (await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest() with { Resume = true }).TakeAsync(1))[0];
        Assert.Equal("x", message.GetValueAsString());
        Assert.False((await client.FetchPartitionMetadataAsync("foo", 0)).Paused);
    }

    [Fact]
    public async Task Handler_form_delivers_in_order_and_completes_at_the_stop_position()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        for (var i = 0; i < 3; i++)
        {
            cluster.Append("foo", 0, $"{i}");
        }

        var received = new List<long>();
        await using var subscription = await client.SubscribeAsync(
            "foo",
            (message, _) =>
            {
                received.Add(message.Offset);
                return ValueTask.CompletedTask;
            },
            SubscribeOptions.Default.StartAtEarliest().StopAtOffset(2));
        await subscription.Completion.WaitAsync(WaitLimit);
        Assert.Equal([0L, 1, 2], received);
    }

    [Fact]
    public async Task Handler_exception_ends_the_subscription_with_that_exception()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        cluster.Append("foo", 0, "x");
        await using var subscription = await client.SubscribeAsync("foo", (_, _) => throw new InvalidOperationException("boom"), SubscribeOptions.Default.StartAtEarliest());
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => subscription.Completion.WaitAsync(WaitLimit));
        Assert.Equal("boom", ex.Message);
    }

    [Fact]
    public async Task Deleting_pausing_or_making_readonly_ends_active_subscriptions_with_typed_errors()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        foreach (var name in new[] { "del", "pau", "ro" })
        {
            await client.CreateStreamAsync(name, name);
        }

        await using var deleted = await client.SubscribeCoreAsync("del");
        await using var paused = await client.SubscribeCoreAsync("pau");
        await using var readonlyStream = await client.SubscribeCoreAsync("ro");
        await client.DeleteStreamAsync("del");
        await client.PauseStreamAsync("pau");
        await client.SetStreamReadonlyAsync("ro");

        await Assert.ThrowsAsync<StreamDeletedException>(() => deleted.TakeAsync(1));
        await Assert.ThrowsAsync<PartitionPausedException>(() => paused.TakeAsync(1));
        await Assert.ThrowsAsync<ReadonlyPartitionException>(() => readonlyStream.TakeAsync(1));
        await Assert.ThrowsAsync<ReadonlyPartitionException>(() => readonlyStream.Completion);
    }

    [Fact]
    public async Task Cancelling_the_enumeration_ends_the_subscription_on_the_server()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        using var cts = new CancellationTokenSource();
        var enumeration = Task.Run(async () =>
        {
            await foreach (var _ in client.SubscribeAsync("foo", cancellationToken: cts.Token))
            {
            }
        });
        await WaitUntilAsync(() => cluster.CallCount("Subscribe") == 1, "the subscription reached the server");
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => enumeration.WaitAsync(WaitLimit));
    }

    [Fact]
    public async Task A_subscription_can_be_enumerated_only_once()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        cluster.Append("foo", 0, "x");
        await using var subscription = await client.SubscribeCoreAsync("foo", SubscribeOptions.Default.StartAtEarliest());
        Assert.Single(await subscription.TakeAsync(1));
        await Assert.ThrowsAsync<InvalidOperationException>(() => subscription.TakeAsync(1));
    }
}
