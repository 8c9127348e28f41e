using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Api;

public sealed class SubscribeTests
{
    [Fact]
    public async Task Behaviour09_subscribe_to_missing_stream_is_NotFound_No_such_partition()
    {
        await using var h = await StartAsync();
        await using var call = h.Channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "foo" }, Message.Parser);
        var ex = await Assert.ThrowsAsync<GrpcException>(async () => await call.MoveNextAsync());
        Assert.Equal(GrpcStatusCode.NotFound, ex.StatusCode);
        Assert.Contains("No such partition", ex.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Behaviour11_new_only_subscriber_receives_offsets_0_to_4_then_offset_replay_from_5()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("bar", "foo");
        await using (var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "bar" }))
        {
            for (var i = 0; i < 5; i++)
            {
                await h.PublishAsync("bar", i.ToString(System.Globalization.CultureInfo.InvariantCulture), key: "bar");
            }

            var messages = await ReadAsync(sub, 5);
            for (var i = 0; i < 5; i++)
            {
                Assert.Equal(i, messages[i].Offset);
                Assert.Equal("bar", messages[i].Key.ToStringUtf8());
                Assert.Equal(i.ToString(System.Globalization.CultureInfo.InvariantCulture), messages[i].Value.ToStringUtf8());
                Assert.Equal("bar", messages[i].Stream);
                Assert.Equal("foo", messages[i].Subject);
            }
        }

        await h.PublishManyAsync("bar", 5, prefix: "x");
        await using var replay = await h.SubscribeAsync(new SubscribeRequest { Stream = "bar", StartPosition = StartPosition.Offset, StartOffset = 5 });
        Assert.Equal([5L, 6, 7, 8, 9], (await ReadAsync(replay, 5)).Select(m => m.Offset));
    }

    [Fact]
    public async Task Behaviour15_Quirk07_start_offset_past_the_HW_delivers_from_HW_plus_one()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishManyAsync("foo", 5);
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Offset, StartOffset = 100 });
        var next = sub.MoveNextAsync().AsTask();
        Assert.False(next.IsCompleted);
        await h.PublishAsync("foo", "later");
        Assert.True(await next.WaitAsync(CallTimeout));
        Assert.Equal(5, sub.Current.Offset);
    }

    [Fact]
    public async Task Behaviour16_default_subscription_on_empty_stream_gets_offset_0()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo" });
        await h.PublishAsync("foo", "x");
        Assert.Equal(0, (await ReadAsync(sub, 1))[0].Offset);
    }

    [Fact]
    public async Task Behaviour19_latest_starts_at_the_last_message_and_new_only_waits()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishManyAsync("foo", 3);
        await using (var latest = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Latest }))
        {
            Assert.Equal(2, (await ReadAsync(latest, 1))[0].Offset);
        }

        await h.PublishManyAsync("foo", 2);
        await using var newOnly = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.NewOnly });
        var next = newOnly.MoveNextAsync().AsTask();
        Assert.False(next.IsCompleted);
        await h.PublishAsync("foo", "fresh");
        Assert.True(await next.WaitAsync(CallTimeout));
        Assert.Equal(5, newOnly.Current.Offset);
    }

    [Fact]
    public async Task Behaviour20_timestamp_start_finds_the_first_message_at_or_after_it()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        var acks = await h.PublishManyAsync("foo", 5);
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Timestamp, StartTimestamp = acks[3].ReceptionTimestamp });
        Assert.Equal(3, (await ReadAsync(sub, 1))[0].Offset);
        await using var past = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Timestamp, StartTimestamp = acks[4].ReceptionTimestamp + 1 });
        var next = past.MoveNextAsync().AsTask();
        await h.PublishAsync("foo", "after");
        Assert.True(await next.WaitAsync(CallTimeout));
        Assert.Equal(5, past.Current.Offset); // past the end: the next offset
    }

    [Fact]
    public async Task Behaviour21_stop_positions_end_with_ResourceExhausted()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await using (var empty = h.Channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "foo", StopPosition = StopPosition.StopLatest }, Message.Parser))
        {
            var ex = await Assert.ThrowsAsync<GrpcException>(async () => await empty.MoveNextAsync());
            Assert.Equal((GrpcStatusCode.ResourceExhausted, "Stream is empty"), (ex.StatusCode, ex.Detail));
        }

        var acks = await h.PublishManyAsync("foo", 10);
        await using (var all = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Earliest, StopPosition = StopPosition.StopLatest }))
        {
            var (messages, error) = await ReadToEndAsync(all);
            Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), messages.Select(m => m.Offset));
            Assert.Equal((GrpcStatusCode.ResourceExhausted, "Stop offset reached"), (error!.StatusCode, error.Detail));
        }

        await using var window = await h.SubscribeAsync(new SubscribeRequest
        {
            Stream = "foo",
            StartPosition = StartPosition.Timestamp,
            StartTimestamp = acks[2].ReceptionTimestamp,
            StopPosition = StopPosition.StopTimestamp,
            StopTimestamp = acks[6].ReceptionTimestamp,
        });
        var result = await ReadToEndAsync(window);
        Assert.Equal([2L, 3, 4, 5, 6], result.Messages.Select(m => m.Offset));
        Assert.Equal(GrpcStatusCode.ResourceExhausted, result.Error!.StatusCode);
    }

    [Fact]
    public async Task Behaviour21_stop_offset_ends_after_that_message()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishManyAsync("foo", 5);
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Offset, StartOffset = 1, StopPosition = StopPosition.StopOffset, StopOffset = 3 });
        var (messages, error) = await ReadToEndAsync(sub);
        Assert.Equal([1L, 2, 3], messages.Select(m => m.Offset));
        Assert.Equal("Stop offset reached", error!.Detail);
    }

    [Fact]
    public async Task Behaviour22_stop_offset_before_start_offset_is_InvalidArgument()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishManyAsync("foo", 5);
        await using var call = h.Channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Offset, StartOffset = 3, StopPosition = StopPosition.StopOffset, StopOffset = 1 }, Message.Parser);
        var ex = await Assert.ThrowsAsync<GrpcException>(async () => await call.MoveNextAsync());
        Assert.Equal((GrpcStatusCode.InvalidArgument, "Stop offset is before start offset: 1 < 3"), (ex.StatusCode, ex.Detail));
    }

    [Fact]
    public async Task A_stop_timestamp_before_the_first_message_fails_with_Liftbridges_text_and_no_server_path()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishManyAsync("foo", 3);
        await using var call = h.Channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Earliest, StopPosition = StopPosition.StopTimestamp, StopTimestamp = 1 }, Message.Parser);
        var ex = await Assert.ThrowsAsync<GrpcException>(async () => await call.MoveNextAsync());
        Assert.Equal((GrpcStatusCode.Internal, "Failed to lookup offset for timestamp: timestamp is before the beginning of the log"), (ex.StatusCode, ex.Detail));
    }

    [Fact]
    public async Task Start_and_stop_timestamps_are_ignored_unless_the_position_is_TIMESTAMP()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishManyAsync("foo", 3);
        const long goZeroTime = -6795364578871345152; // time.Time{}.UnixNano(), what the Go client sends when unset
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Earliest, StartTimestamp = goZeroTime, StopTimestamp = goZeroTime });
        Assert.Equal([0L, 1, 2], (await ReadAsync(sub, 3)).Select(m => m.Offset));
    }

    [Fact]
    public async Task Behaviour34_readonly_partition_ends_subscriptions_after_the_last_message()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishAsync("foo", "only");
        await h.SetReadonlyAsync("foo", true);
        await using (var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Earliest }))
        {
            var (messages, error) = await ReadToEndAsync(sub);
            Assert.Equal("only", Assert.Single(messages).Value.ToStringUtf8());
            Assert.Equal(GrpcStatusCode.ResourceExhausted, error!.StatusCode);
        }

        await h.SetReadonlyAsync("foo", false);
        Assert.Equal(1, (await h.PublishAsync("foo", "again"))!.Offset);
    }

    [Fact]
    public async Task Behaviour34_setting_readonly_ends_a_waiting_subscription()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishAsync("foo", "a");
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Earliest });
        Assert.Single(await ReadAsync(sub, 1));
        await h.SetReadonlyAsync("foo", true);
        var (_, error) = await ReadToEndAsync(sub);
        Assert.Equal((GrpcStatusCode.ResourceExhausted, "End of readonly partition"), (error!.StatusCode, error.Detail));
    }

    [Fact]
    public async Task Behaviour35_deleting_the_stream_ends_the_subscription_with_NotFound()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo" });
        await h.DeleteStreamAsync("foo");
        var (_, error) = await ReadToEndAsync(sub);
        Assert.Equal((GrpcStatusCode.NotFound, "commit log was deleted"), (error!.StatusCode, error.Detail)); // Liftbridge's text
    }

    [Fact]
    public async Task Behaviour35_pausing_the_stream_ends_the_subscription_with_FailedPrecondition()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo" });
        await h.PauseAsync("foo");
        var (_, error) = await ReadToEndAsync(sub);
        Assert.Equal((GrpcStatusCode.FailedPrecondition, "commit log was closed"), (error!.StatusCode, error.Detail)); // Liftbridge's text
    }

    [Fact]
    public async Task Behaviour35_stopping_the_server_ends_the_subscription_with_Internal()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo" });
        var read = ReadToEndAsync(sub);
        await h.Server.DisposeAsync();
        var (_, error) = await read;
        Assert.Equal(GrpcStatusCode.Internal, error!.StatusCode);
    }

    [Fact]
    public async Task Quirk06_subscribers_see_the_server_injected_subject_and_reply_headers()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo.bar", partitions: 2);
        await h.CallAsync("Publish", new PublishRequest
        {
            Stream = "foo",
            Partition = 1,
            Value = ByteString.CopyFromUtf8("v"),
            Headers = { ["user"] = ByteString.CopyFromUtf8("u"), ["subject"] = ByteString.CopyFromUtf8("spoofed") },
        }, PublishResponse.Parser);
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", Partition = 1, StartPosition = StartPosition.Earliest });
        var message = (await ReadAsync(sub, 1))[0];
        Assert.Equal("u", message.Headers["user"].ToStringUtf8());
        Assert.Equal("foo.bar.1", message.Headers["subject"].ToStringUtf8());
        Assert.True(message.Headers.ContainsKey("reply"));
        Assert.Equal("foo.bar.1", message.Subject);
        Assert.Equal(1, message.Partition);
        Assert.Equal(string.Empty, message.AckInbox);
    }

    [Fact]
    public async Task Quirk08_reverse_subscription_walks_from_the_HW_to_zero_and_ends_OK()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishManyAsync("foo", 5);
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", Reverse = true });
        var (messages, error) = await ReadToEndAsync(sub);
        Assert.Null(error);
        Assert.Equal([4L, 3, 2, 1, 0], messages.Select(m => m.Offset));
    }

    [Fact]
    public async Task Quirk15_the_first_frame_is_an_all_default_message()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishAsync("foo", "x");
        await using var call = h.Channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Earliest }, Message.Parser);
        Assert.True(await call.MoveNextAsync());
        Assert.Equal(new Message(), call.Current);
        Assert.True(await call.MoveNextAsync());
        Assert.Equal("x", call.Current.Value.ToStringUtf8());
    }

    [Fact]
    public async Task Consumer_with_empty_consumer_id_is_InvalidArgument()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await using var call = h.Channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "foo", Consumer = new Consumer { GroupId = "g" } }, Message.Parser);
        var ex = await Assert.ThrowsAsync<GrpcException>(async () => await call.MoveNextAsync());
        Assert.Equal((GrpcStatusCode.InvalidArgument, "Consumer id cannot be empty when group id is provided"), (ex.StatusCode, ex.Detail));
    }

    [Fact]
    public async Task Subscribe_with_resume_resumes_a_paused_partition_and_without_it_fails()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishAsync("foo", "x");
        await h.PauseAsync("foo");
        await using (var refused = h.Channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "foo" }, Message.Parser))
        {
            var ex = await Assert.ThrowsAsync<GrpcException>(async () => await refused.MoveNextAsync());
            Assert.Equal(GrpcStatusCode.FailedPrecondition, ex.StatusCode);
        }

        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", Resume = true, StartPosition = StartPosition.Earliest });
        Assert.Equal("x", (await ReadAsync(sub, 1))[0].Value.ToStringUtf8());
        Assert.False((await h.PartitionMetadataAsync("foo")).Paused);
    }

    [Fact]
    public async Task ReadIsrReplica_is_served_locally_on_a_single_node()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishAsync("foo", "x");
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", ReadISRReplica = true, StartPosition = StartPosition.Earliest });
        Assert.Equal(0, (await ReadAsync(sub, 1))[0].Offset);
    }

    [Fact]
    public async Task A_subscriber_receives_a_large_backlog_in_order()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await using (var call = h.Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser))
        {
            for (var i = 0; i < 20_000; i++)
            {
                await call.WriteAsync(new PublishRequest { Stream = "foo", Value = ByteString.CopyFromUtf8("m" + i), AckPolicy = AckPolicy.None });
            }

            await call.CompleteRequestsAsync();
            await foreach (var _ in call.ReadAllAsync())
            {
                Assert.Fail("AckPolicy NONE publishes get no response");
            }
        }

        await WaitUntilAsync(async () => (await h.PartitionMetadataAsync("foo")).HighWatermark == 19_999, "all messages committed");
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Earliest });
        var messages = await ReadAsync(sub, 20_000);
        Assert.True(messages.Select(m => m.Offset).SequenceEqual(Enumerable.Range(0, 20_000).Select(i => (long)i)));
    }
}
