using Sluice.Client.Tests.Fakes;
using Sluice.Protocol.Api;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>Publishing over the PublishAsync stream, acks, partitioners and publish errors.</summary>
public sealed class PublishTests
{
    [Fact]
    public async Task Publish_returns_the_ack_with_key_headers_and_generated_correlation_id()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");

        var ack = await client.PublishAsync("foo", Bytes("hello"), MessageOptions.Default.WithHeader("h", Bytes("v")) with { Key = Bytes("k"), AckPolicy = AckPolicy.All });
        Assert.NotNull(ack);
        Assert.Equal(("foo", 0L, "foo", AckPolicy.All), (ack.Stream, ack.Offset, ack.MessageSubject, ack.AckPolicy));
        Assert.Matches("^[0-9A-Za-z]{22}$", ack.CorrelationId);
        Assert.True(ack.CommitTimestamp >= ack.ReceptionTimestamp);

        var request = Assert.Single(cluster.Requests<PublishRequest>("PublishAsync"));
        Assert.Equal("k", request.Key.ToStringUtf8());
        Assert.Equal("v", request.Headers["h"].ToStringUtf8());
        Assert.Equal(-1, request.ExpectedOffset);
        Assert.Equal(ack.CorrelationId, request.CorrelationId);

        var stored = cluster.GetStream("foo")!.Partitions[0].Messages[0];
        Assert.Equal("hello", stored.Value.ToStringUtf8());
    }

    [Fact]
    public async Task Given_correlation_id_and_ack_inbox_are_sent_and_ack_policy_none_returns_null()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        var ack = await client.PublishAsync("foo", Bytes("a"), new MessageOptions { CorrelationId = "my-id", AckInbox = "inbox" });
        Assert.Equal("my-id", ack!.CorrelationId);
        Assert.Null(await client.PublishAsync("foo", Bytes("b"), new MessageOptions { AckPolicy = AckPolicy.None }));
        await WaitUntilAsync(() => cluster.GetStream("foo")!.Partitions[0].Messages.Count == 2, "the NONE message is stored");
        var requests = cluster.Requests<PublishRequest>("PublishAsync");
        Assert.Equal("inbox", requests[0].AckInbox);
        Assert.Equal(Sluice.Protocol.Api.AckPolicy.None, requests[1].AckPolicy);
    }

    [Fact]
    public async Task Many_publishes_are_pipelined_over_one_stream_per_broker()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        var acks = await Task.WhenAll(Enumerable.Range(0, 500).Select(i => client.PublishAsync("foo", Bytes(i.ToString()))));
        Assert.Equal(Enumerable.Range(0, 500).Select(i => (long)i), acks.Select(a => a!.Offset).Order());
        Assert.Equal(500, acks.Select(a => a!.CorrelationId).Distinct().Count());
        // One PublishAsync call carried them all.
        Assert.Single(cluster.Calls.Where(c => c.Method == "PublishAsync").Select(c => c.Broker).Distinct());
    }

    [Fact]
    public async Task Callback_form_receives_acks_and_errors()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        var ok = new TaskCompletionSource<SluiceAck?>();
        var failed = new TaskCompletionSource<Exception?>();
        await client.PublishAsync("foo", Bytes("a"), (ack, error) => ok.TrySetResult(ack));
        await client.PublishAsync("missing", Bytes("a"), (ack, error) => failed.TrySetResult(error));
        Assert.Equal(0, (await ok.Task.WaitAsync(WaitLimit))!.Offset);
        Assert.IsType<NoSuchPartitionException>(await failed.Task.WaitAsync(WaitLimit));
    }

    [Fact]
    public async Task Callback_form_with_state_passes_each_message_its_own_state()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with { Partitions = 2 });
        const int count = 300;
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<int, SluiceAck?>();
        var done = new TaskCompletionSource();
        AckHandler<(int Index, int Partition)> onAck = (ack, error, state) =>
        {
            // Sent in order over one stream, message i is offset i / 2 of partition i % 2: the state matches its own message.
            if (error is null && ack!.Offset == state.Index / 2 && state.Partition == state.Index % 2 && seen.TryAdd(state.Index, ack) && seen.Count == count)
            {
                done.TrySetResult();
            }
        };
        for (var i = 0; i < count; i++)
        {
            await client.PublishAsync("foo", Bytes("m" + i), onAck, (i, i % 2), new MessageOptions { Partition = i % 2 });
        }

        await done.Task.WaitAsync(WaitLimit);
        Assert.Equal(Enumerable.Range(0, count), seen.Keys.Order());

        // AckPolicy NONE: the handler is never called; a missing stream reaches it as an error with the state.
        var calls = 0;
        await client.PublishAsync("foo", Bytes("x"), (_, _, _) => Interlocked.Increment(ref calls), 0, new MessageOptions { AckPolicy = AckPolicy.None });
        var failed = new TaskCompletionSource<(Exception? Error, string State)>();
        await client.PublishAsync("missing", Bytes("a"), (_, error, state) => failed.TrySetResult((error, state)), "s1");
        var (missingError, missingState) = await failed.Task.WaitAsync(WaitLimit);
        Assert.IsType<NoSuchPartitionException>(missingError);
        Assert.Equal("s1", missingState);
        Assert.Equal(0, Volatile.Read(ref calls));
    }

    [Fact]
    public async Task Publish_to_a_missing_stream_or_partition_is_NoSuchPartition()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        var ex = await Assert.ThrowsAsync<NoSuchPartitionException>(() => client.PublishAsync("missing", Bytes("a")));
        Assert.Contains("no such stream: missing", ex.Message);

        await client.CreateStreamAsync("foo", "foo");
        await Assert.ThrowsAsync<NoSuchPartitionException>(() => client.PublishAsync("foo", Bytes("a"), new MessageOptions { Partition = 42 }));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.PublishAsync("foo", Bytes("a"), new MessageOptions { Partition = -1 }));
    }

    [Fact]
    public async Task Publish_to_a_readonly_partition_is_ReadonlyPartition()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        await client.SetStreamReadonlyAsync("foo");
        await Assert.ThrowsAsync<ReadonlyPartitionException>(() => client.PublishAsync("foo", Bytes("a")));
    }

    [Fact]
    public async Task Other_async_errors_keep_the_server_text()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        cluster.FailNextPublish(PublishAsyncError.Types.Code.Unknown, "internal error");
        var ex = await Assert.ThrowsAsync<PublishFailedException>(() => client.PublishAsync("foo", Bytes("a")));
        Assert.Equal("internal error", ex.Message);
        Assert.Equal(PublishErrorCode.Unknown, ex.Code);
    }

    [Fact]
    public async Task Optimistic_concurrency_checks_the_expected_offset()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with { OptimisticConcurrencyControl = true });
        Assert.Equal(0, (await client.PublishAsync("foo", Bytes("a"), new MessageOptions { ExpectedOffset = 0 }))!.Offset);
        Assert.Equal(1, (await client.PublishAsync("foo", Bytes("b"), new MessageOptions { ExpectedOffset = 1 }))!.Offset);
        var ex = await Assert.ThrowsAsync<IncorrectOffsetException>(() => client.PublishAsync("foo", Bytes("c"), new MessageOptions { ExpectedOffset = 1 }));
        Assert.Equal("incorrect expected offset", ex.Message);
        var next = (await client.FetchPartitionMetadataAsync("foo", 0)).NewestOffset + 1;
        Assert.Equal(2, (await client.PublishAsync("foo", Bytes("c"), new MessageOptions { ExpectedOffset = next }))!.Offset);
        Assert.Equal(3, (await client.PublishAsync("foo", Bytes("d")))!.Offset); // -1 skips the check
    }

    [Fact]
    public async Task Ack_timeout_fails_with_AckTimeoutException_in_both_forms()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster, FastOptions with { AckWaitTime = TimeSpan.FromMilliseconds(50) });
        await client.CreateStreamAsync("foo", "foo");
        cluster.DropAcks = true;
        var ex = await Assert.ThrowsAsync<AckTimeoutException>(() => client.PublishAsync("foo", Bytes("a")));
        Assert.Equal("publish ack timeout", ex.Message);
        var callback = new TaskCompletionSource<Exception?>();
        await client.PublishAsync("foo", Bytes("b"), (_, error) => callback.TrySetResult(error));
        Assert.IsType<AckTimeoutException>(await callback.Task.WaitAsync(WaitLimit));
    }

    [Fact]
    public async Task Cancelling_a_publish_stops_waiting_for_its_ack()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        cluster.DropAcks = true;
        using var cts = new CancellationTokenSource();
        var publish = client.PublishAsync("foo", Bytes("a"), cancellationToken: cts.Token);
        await WaitUntilAsync(() => cluster.CallCount("PublishAsync") == 1, "the message reached the server");
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => publish);
    }

    [Fact]
    public async Task Partition_by_key_round_robin_custom_and_explicit_partition()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 2);
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with { Partitions = 3 });

        var byKey = await client.PublishAsync("foo", Bytes("v"), new MessageOptions { Key = Bytes("123456789"), Partitioner = Partitioners.ByKey });
        Assert.Equal((int)(0xCBF43926u % 3), cluster.Requests<PublishRequest>("PublishAsync")[^1].Partition);
        Assert.NotNull(byKey);

        var roundRobin = new RoundRobinPartitioner();
        for (var i = 0; i < 3; i++)
        {
            await client.PublishAsync("foo", Bytes("v"), new MessageOptions { Partitioner = roundRobin });
        }

        Assert.Equal([0, 1, 2], cluster.Requests<PublishRequest>("PublishAsync")[^3..].Select(r => r.Partition));

        await client.PublishAsync("foo", Bytes("v"), new MessageOptions { Partitioner = new FixedPartitioner(2) });
        Assert.Equal(2, cluster.Requests<PublishRequest>("PublishAsync")[^1].Partition);

        await client.PublishAsync("foo", Bytes("v"), new MessageOptions { Partition = 1, Partitioner = new FixedPartitioner(2) });
        Assert.Equal(1, cluster.Requests<PublishRequest>("PublishAsync")[^1].Partition);

        await Assert.ThrowsAsync<InvalidOperationException>(() => client.PublishAsync("foo", Bytes("v"), new MessageOptions { Partitioner = new FixedPartitioner(3) }));
    }

    [Fact]
    public async Task Partitioner_on_an_unknown_stream_is_NoSuchStream_after_metadata_refreshes()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        var before = cluster.CallCount("FetchMetadata");
        await Assert.ThrowsAsync<NoSuchStreamException>(() => client.PublishAsync("nope", Bytes("v"), new MessageOptions { Partitioner = Partitioners.ByKey }));
        Assert.Equal(before + 5, cluster.CallCount("FetchMetadata"));
        Assert.Equal(0, cluster.CallCount("PublishAsync"));
    }

    [Fact]
    public async Task Publish_goes_to_the_partition_leader()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 3);
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with { Partitions = 3 });
        await client.FetchMetadataAsync();
        for (var p = 0; p < 3; p++)
        {
            await client.PublishAsync("foo", Bytes("v"), new MessageOptions { Partition = p });
        }

        foreach (var (broker, _, request) in cluster.Calls.Where(c => c.Method == "PublishAsync"))
        {
            Assert.Equal(cluster.GetStream("foo")!.Partitions[((PublishRequest)request).Partition].Leader, broker);
        }
    }

    [Fact]
    public async Task PublishToSubject_returns_the_ack_and_times_out_without_a_stream()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster, FastOptions with { AckWaitTime = TimeSpan.FromMilliseconds(300) });
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with { Partitions = 2 });
        var ack = await client.PublishToSubjectAsync("foo.1", Bytes("hello"), new MessageOptions { Key = Bytes("k"), CorrelationId = "c1" });
        Assert.Equal(("foo", "foo.1", "c1"), (ack!.Stream, ack.MessageSubject, ack.CorrelationId));
        var request = Assert.Single(cluster.Requests<PublishToSubjectRequest>("PublishToSubject"));
        Assert.Equal("k", request.Key.ToStringUtf8());
        Assert.Null(await client.PublishToSubjectAsync("foo", Bytes("x"), new MessageOptions { AckPolicy = AckPolicy.None }));
        await Assert.ThrowsAsync<AckTimeoutException>(() => client.PublishToSubjectAsync("nobody.listens", Bytes("x")));
    }

    private sealed class FixedPartitioner(int partition) : IPartitioner
    {
        public int GetPartition(string stream, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, SluiceMetadata metadata) => partition;
    }
}
