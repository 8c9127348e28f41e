using Sluice.Client.Grpc;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>The client against the real in-process Sluice broker.</summary>
public sealed class RealServerTests
{
    [Theory]
    [InlineData(GrpcTransport.Native)]
    [InlineData(GrpcTransport.HttpClient)]
    public async Task Admin_calls_and_their_errors(GrpcTransport transport)
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions with { Transport = transport });
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with
        {
            Partitions = 2,
            RetentionMaxAge = TimeSpan.FromHours(1),
            SegmentMaxBytes = 1 << 20,
            CompactEnabled = false,
            AutoPauseTime = TimeSpan.FromMinutes(10),
        });
        await Assert.ThrowsAsync<StreamExistsException>(() => client.CreateStreamAsync("foo", "foo"));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.CreateStreamAsync("foo", "neg", StreamOptions.Default with { Partitions = -1 }));

        var metadata = await client.FetchMetadataAsync();
        var stream = metadata.GetStream("foo")!;
        Assert.Equal(2, stream.Partitions.Count);
        Assert.Equal(server.Address, stream.GetPartition(0)!.Leader!.Address);

        await client.PauseStreamAsync("foo", new PauseStreamOptions { Partitions = [1] });
        Assert.True((await client.FetchMetadataAsync()).GetStream("foo")!.GetPartition(1)!.Paused); // Liftbridge has no partition metadata for a paused partition
        await Assert.ThrowsAsync<NoSuchPartitionException>(() => client.PauseStreamAsync("foo", new PauseStreamOptions { Partitions = [99] }));

        await client.SetStreamReadonlyAsync("foo", new SetStreamReadonlyOptions { Partitions = [0] });
        Assert.True((await client.FetchPartitionMetadataAsync("foo", 0)).Readonly);
        await Assert.ThrowsAsync<ReadonlyPartitionException>(() => client.PublishAsync("foo", Bytes("x")));
        await client.SetStreamReadonlyAsync("foo", new SetStreamReadonlyOptions { Partitions = [0], Readonly = false });
        Assert.NotNull(await client.PublishAsync("foo", Bytes("x")));

        await client.DeleteStreamAsync("foo");
        await Assert.ThrowsAsync<NoSuchStreamException>(() => client.DeleteStreamAsync("foo"));
    }

    [Theory]
    [InlineData(GrpcTransport.Native)]
    [InlineData(GrpcTransport.HttpClient)]
    public async Task Publish_and_subscribe_with_positions_keys_and_headers(GrpcTransport transport)
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions with { Transport = transport });
        await client.CreateStreamAsync("foo", "foo");

        await using var live = await client.SubscribeCoreAsync("foo"); // new only
        var acks = await Task.WhenAll(Enumerable.Range(0, 10).Select(i =>
            client.PublishAsync("foo", Bytes($"{i}"), MessageOptions.Default.WithHeader("h", Bytes("v")) with { Key = Bytes("k") })));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), acks.Select(a => a!.Offset).Order());

        var received = await live.TakeAsync(10);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), received.Select(m => m.Offset));
        Assert.All(received, m => Assert.Equal(("k", "v", "foo"), (Text(m.Key), Text(m.Headers["h"]), m.Stream)));

        var range = await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtOffset(3).StopAtOffset(5)).ToListAsync();
        Assert.Equal([3L, 4, 5], range.Select(m => m.Offset));
        var all = await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest().StopAtLatest()).ToListAsync();
        Assert.Equal(10, all.Count);
        Assert.Equal(9, (await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtLatest()).TakeAsync(1))[0].Offset);
        Assert.Null(await client.PublishAsync("foo", Bytes("none"), new MessageOptions { AckPolicy = AckPolicy.None }));
    }

    [Fact]
    public async Task Every_ack_policy_in_both_publish_forms_and_every_start_and_stop_position()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("pos", "pos");

        // Unary form: LEADER and ALL return the ack with their policy, NONE returns none.
        var leader = await client.PublishAsync("pos", Bytes("0"), new MessageOptions { AckPolicy = AckPolicy.Leader, CorrelationId = "c0" });
        var all = await client.PublishAsync("pos", Bytes("1"), new MessageOptions { AckPolicy = AckPolicy.All });
        Assert.Equal((0L, AckPolicy.Leader, "c0"), (leader!.Offset, leader.AckPolicy, leader.CorrelationId));
        Assert.Equal((1L, AckPolicy.All), (all!.Offset, all.AckPolicy));
        Assert.Null(await client.PublishAsync("pos", Bytes("2"), new MessageOptions { AckPolicy = AckPolicy.None }));

        // Callback form (the PublishAsync stream): LEADER and ALL are acked, NONE never calls the handler.
        var acks = new System.Collections.Concurrent.ConcurrentQueue<SluiceAck>();
        var twoAcks = new TaskCompletionSource();
        void OnAck(SluiceAck? ack, Exception? error)
        {
            Assert.Null(error);
            acks.Enqueue(ack!);
            if (acks.Count == 2)
            {
                twoAcks.TrySetResult();
            }
        }

        await client.PublishAsync("pos", Bytes("3"), OnAck, new MessageOptions { AckPolicy = AckPolicy.Leader });
        await client.PublishAsync("pos", Bytes("4"), OnAck, new MessageOptions { AckPolicy = AckPolicy.None });
        await client.PublishAsync("pos", Bytes("5"), OnAck, new MessageOptions { AckPolicy = AckPolicy.All });
        await twoAcks.Task.WaitAsync(WaitLimit);
        Assert.Equal([(3L, AckPolicy.Leader), (5L, AckPolicy.All)], acks.Select(a => (a.Offset, a.AckPolicy)).Order());
        var times = (await client.SubscribeAsync("pos", SubscribeOptions.Default.StartAtEarliest()).TakeAsync(6)).Select(m => m.Timestamp).ToList();

        // The offsets one subscription delivers, as "0,1,2" (to the stop position, or the first `count`).
        async Task<string> OffsetsAsync(SubscribeOptions options, int count = -1) => string.Join(',', (count < 0
            ? await client.SubscribeAsync("pos", options).ToListAsync()
            : await client.SubscribeAsync("pos", options).TakeAsync(count)).Select(m => m.Offset));

        var start = SubscribeOptions.Default;
        Assert.Equal("0,1,2,3,4,5", await OffsetsAsync(start.StartAtEarliest().StopAtLatest()));
        Assert.Equal("5", await OffsetsAsync(start.StartAtLatest().StopAtLatest()));
        Assert.Equal("2,3", await OffsetsAsync(start.StartAtOffset(2).StopAtOffset(3)));
        // By time: the messages whose Timestamp (100 ns ticks; a server may give a burst one tick) lies in the window.
        string Within(DateTimeOffset from, DateTimeOffset to) => string.Join(',', Enumerable.Range(0, 6).Where(i => times[i] >= from && times[i] <= to));
        Assert.Equal(Within(times[2], times[4]), await OffsetsAsync(start.StartAtTime(times[2]).StopAtTime(times[4])));
        Assert.Equal(Within(times[4], times[5]), await OffsetsAsync(start.StartAtTime(times[4]).StopAtLatest()));
        Assert.Equal("0,1,2", await OffsetsAsync(start.StartAtEarliest(), 3)); // stop on cancel

        // NEW_ONLY (the default) sees only what is published after it subscribed.
        await using var live = await client.SubscribeCoreAsync("pos", start.StartAtNewOnly());
        await client.PublishAsync("pos", Bytes("6"));
        Assert.Equal(6, (await live.TakeAsync(1))[0].Offset);
    }

    [Fact]
    public async Task Publish_errors_map_to_typed_exceptions()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await Assert.ThrowsAsync<NoSuchPartitionException>(() => client.PublishAsync("missing", Bytes("x")));
        await Assert.ThrowsAsync<NoSuchStreamException>(() => client.SubscribeCoreAsync("missing"));

        await client.CreateStreamAsync("occ", "occ", StreamOptions.Default with { OptimisticConcurrencyControl = true });
        Assert.Equal(0, (await client.PublishAsync("occ", Bytes("a"), new MessageOptions { ExpectedOffset = 0 }))!.Offset);
        await Assert.ThrowsAsync<IncorrectOffsetException>(() => client.PublishAsync("occ", Bytes("b"), new MessageOptions { ExpectedOffset = 0 }));
        var next = (await client.FetchPartitionMetadataAsync("occ", 0)).NewestOffset + 1;
        Assert.Equal(1, (await client.PublishAsync("occ", Bytes("b"), new MessageOptions { ExpectedOffset = next }))!.Offset);
    }

    [Fact]
    public async Task Partitioners_and_cursors()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("bar", "bar", StreamOptions.Default with { Partitions = 3 });
        var ack = await client.PublishAsync("bar", Bytes("v"), new MessageOptions { Key = Bytes("123456789"), Partitioner = Partitioners.ByKey });
        var expected = (int)(0xCBF43926u % 3);
        Assert.Equal(expected == 0 ? "bar" : $"bar.{expected}", ack!.MessageSubject);
        var message = (await client.SubscribeAsync("bar", SubscribeOptions.Default.StartAtEarliest() with { Partition = expected }).TakeAsync(1))[0];
        Assert.Equal("v", message.GetValueAsString());

        Assert.Equal(-1, await client.FetchCursorAsync("c1", "bar", 1));
        await client.SetCursorAsync("c1", "bar", 1, 42);
        Assert.Equal(42, await client.FetchCursorAsync("c1", "bar", 1));
    }

    [Fact]
    public async Task Subscription_resumes_after_a_server_restart_without_loss_or_duplicates()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("foo", "foo");
        for (var i = 0; i < 5; i++)
        {
            await client.PublishAsync("foo", Bytes($"{i}"));
        }

        await using var subscription = await client.SubscribeCoreAsync("foo", SubscribeOptions.Default.StartAtEarliest());
        await using var enumerator = subscription.GetAsyncEnumerator(TimeoutToken());
        var received = new List<long>();
        while (received.Count < 5 && await enumerator.MoveNextAsync())
        {
            received.Add(enumerator.Current.Offset);
        }

        await server.StopAsync();
        var next = enumerator.MoveNextAsync().AsTask();
        await server.RestartAsync();
        for (var i = 5; i < 10; i++)
        {
            Assert.Equal(i, (await client.PublishAsync("foo", Bytes($"{i}")))!.Offset);
        }

        Assert.True(await next.WaitAsync(WaitLimit));
        received.Add(enumerator.Current.Offset);
        while (received.Count < 10 && await enumerator.MoveNextAsync())
        {
            received.Add(enumerator.Current.Offset);
        }

        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), received);
        Assert.Equal(1, subscription.ResubscribeCount);
    }
}
