using Sluice.TestKit;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>
/// Failure paths against the real in-process broker: acks held up by the network, connections
/// reset under a subscription, partitions deleted/paused/made readonly while read, refused publishes.
/// The fake-server tests cover the same client code with multi-broker leader moves.
/// </summary>
public sealed class RealServerFailureTests
{
    [Fact]
    public async Task Acks_held_up_by_the_network_time_out_in_both_forms_and_publishing_recovers_after()
    {
        await using var proxy = TcpProxy.Start();
        await using var server = await RealServer.StartBehindAsync(proxy);
        await using var client = await SluiceClient.ConnectAsync([proxy.Address], FastOptions with { AckWaitTime = TimeSpan.FromSeconds(1) }); // long enough for a loaded CI machine, short for a test
        await client.CreateStreamAsync("foo", "foo");
        Assert.Equal(0, (await client.PublishAsync("foo", Bytes("before")))!.Offset); // the publish stream is open

        proxy.Pause(ProxyDirection.ServerToClient);
        var ex = await Assert.ThrowsAsync<AckTimeoutException>(() => client.PublishAsync("foo", Bytes("a")));
        Assert.Equal("publish ack timeout", ex.Message);
        var callback = new TaskCompletionSource<(SluiceAck? Ack, Exception? Error)>(TaskCreationOptions.RunContinuationsAsynchronously);
        await client.PublishAsync("foo", Bytes("b"), (ack, error) => callback.TrySetResult((ack, error)));
        var (lateAck, error) = await callback.Task.WaitAsync(WaitLimit);
        Assert.Null(lateAck);
        Assert.IsType<AckTimeoutException>(error);
        // The server did store both and answer: the acks are stuck in the proxy, not lost by the broker.
        await WaitUntilAsync(() => proxy.HeldBytes(ProxyDirection.ServerToClient) > 0, "the server's acks reach the proxy");

        proxy.Resume(ProxyDirection.ServerToClient);
        Assert.Equal(3, (await client.PublishAsync("foo", Bytes("after")))!.Offset); // the late acks of 1 and 2 are ignored
        var stored = await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest().StopAtLatest()).ToListAsync();
        Assert.Equal(["before", "a", "b", "after"], stored.Select(m => m.GetValueAsString()));
    }

    [Fact]
    public async Task Subscription_resumes_after_every_connection_is_reset_without_loss_or_duplicates()
    {
        await using var proxy = TcpProxy.Start();
        await using var server = await RealServer.StartBehindAsync(proxy);
        await using var client = await SluiceClient.ConnectAsync([proxy.Address], FastOptions);
        await client.CreateStreamAsync("foo", "foo");
        for (var i = 0; i < 5; i++)
        {
            await client.PublishAsync("foo", Bytes($"{i}"));
        }

        await using var subscription = await client.SubscribeCoreAsync("foo", SubscribeOptions.Default.StartAtEarliest());
        await using var enumerator = subscription.GetAsyncEnumerator(TimeoutToken());
        var received = new List<SluiceMessage>();
        while (received.Count < 5 && await enumerator.MoveNextAsync())
        {
            received.Add(enumerator.Current);
        }

        var accepted = proxy.AcceptedCount;
        proxy.DropConnections();
        var next = enumerator.MoveNextAsync().AsTask();
        await WaitUntilAsync(() => subscription.ResubscribeCount == 1, "the subscription re-subscribed on a new connection");
        Assert.True(proxy.AcceptedCount > accepted);
        for (var i = 5; i < 10; i++)
        {
            Assert.Equal(i, (await PublishAfterResetAsync(client, "foo", Bytes($"{i}")))!.Offset);
        }

        Assert.True(await next.WaitAsync(WaitLimit));
        received.Add(enumerator.Current);
        while (received.Count < 10 && await enumerator.MoveNextAsync())
        {
            received.Add(enumerator.Current);
        }

        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), received.Select(m => m.Offset));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"{i}"), received.Select(m => m.GetValueAsString()));
        Assert.Equal(1, subscription.ResubscribeCount);
    }

    [Fact]
    public async Task Subscription_gives_up_with_an_error_when_the_server_stays_away_past_the_resubscribe_wait()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions with { ResubscribeWaitTime = TimeSpan.FromMilliseconds(500) });
        await client.CreateStreamAsync("foo", "foo");
        await client.PublishAsync("foo", Bytes("x"));
        await using var subscription = await client.SubscribeCoreAsync("foo", SubscribeOptions.Default.StartAtEarliest());
        await using var enumerator = subscription.GetAsyncEnumerator(TimeoutToken());
        Assert.True(await enumerator.MoveNextAsync());

        await server.StopAsync();
        await Assert.ThrowsAnyAsync<SluiceException>(async () => await enumerator.MoveNextAsync());
        await Assert.ThrowsAnyAsync<SluiceException>(() => subscription.Completion);
        Assert.Equal(0, subscription.ResubscribeCount);
    }

    [Fact]
    public async Task Deleting_pausing_or_making_readonly_ends_active_subscriptions_with_typed_errors()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        foreach (var name in new[] { "del", "pau", "ro" })
        {
            await client.CreateStreamAsync(name, name);
            await client.PublishAsync(name, Bytes("first"));
        }

        await using var deleted = await client.SubscribeCoreAsync("del", SubscribeOptions.Default.StartAtEarliest());
        await using var paused = await client.SubscribeCoreAsync("pau", SubscribeOptions.Default.StartAtEarliest());
        await using var readonlyStream = await client.SubscribeCoreAsync("ro", SubscribeOptions.Default.StartAtEarliest());
        await using var deletedReader = deleted.GetAsyncEnumerator(TimeoutToken());
        await using var pausedReader = paused.GetAsyncEnumerator(TimeoutToken());
        await using var readonlyReader = readonlyStream.GetAsyncEnumerator(TimeoutToken());
        foreach (var reader in new[] { deletedReader, pausedReader, readonlyReader })
        {
            Assert.True(await reader.MoveNextAsync()); // each subscription is active and has read what is there
            Assert.Equal("first", reader.Current.GetValueAsString());
        }

        var afterDelete = deletedReader.MoveNextAsync().AsTask();
        var afterPause = pausedReader.MoveNextAsync().AsTask();
        await client.DeleteStreamAsync("del");
        await client.PauseStreamAsync("pau");
        await client.PublishAsync("ro", Bytes("last"));
        await client.SetStreamReadonlyAsync("ro");

        await Assert.ThrowsAsync<StreamDeletedException>(() => afterDelete.WaitAsync(WaitLimit));
        await Assert.ThrowsAsync<PartitionPausedException>(() => afterPause.WaitAsync(WaitLimit));
        Assert.True(await readonlyReader.MoveNextAsync()); // a readonly partition is still read to its end...
        Assert.Equal("last", readonlyReader.Current.GetValueAsString());
        await Assert.ThrowsAsync<ReadonlyPartitionException>(async () => await readonlyReader.MoveNextAsync()); // ...then ends
        await Assert.ThrowsAsync<StreamDeletedException>(() => deleted.Completion);
        await Assert.ThrowsAsync<PartitionPausedException>(() => paused.Completion);
        await Assert.ThrowsAsync<ReadonlyPartitionException>(() => readonlyStream.Completion);
    }

    [Fact]
    public async Task Refused_publishes_reach_the_callback_form_as_typed_errors()
    {
        // 1 KiB replication limit, so a 4 KiB value is refused with BAD_REQUEST.
        await using var server = await RealServer.StartAsync(o => o with { Clustering = o.Clustering with { ReplicationMaxBytes = 1024 } });
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("occ", "occ", StreamOptions.Default with { OptimisticConcurrencyControl = true });
        await client.CreateStreamAsync("ro", "ro");
        await client.SetStreamReadonlyAsync("ro");
        Assert.Equal(0, (await client.PublishAsync("occ", Bytes("a"), new MessageOptions { ExpectedOffset = 0 }))!.Offset);

        var incorrect = await PublishWithCallbackAsync(client, "occ", Bytes("b"), new MessageOptions { ExpectedOffset = 0 });
        Assert.Equal("incorrect expected offset", Assert.IsType<IncorrectOffsetException>(incorrect).Message);
        Assert.IsType<NoSuchPartitionException>(await PublishWithCallbackAsync(client, "missing", Bytes("x")));
        Assert.IsType<NoSuchPartitionException>(await PublishWithCallbackAsync(client, "occ", Bytes("x"), new MessageOptions { Partition = 5, ExpectedOffset = 1 }));
        Assert.IsType<ReadonlyPartitionException>(await PublishWithCallbackAsync(client, "ro", Bytes("x")));
        var tooLarge = Assert.IsType<PublishFailedException>(await PublishWithCallbackAsync(client, "occ", new byte[4096], new MessageOptions { ExpectedOffset = 1 }));
        Assert.Equal((PublishErrorCode.BadRequest, "message exceeds max replication size"), (tooLarge.Code, tooLarge.Message));

        // The Task form sees the same; nothing refused was stored.
        var taskTooLarge = await Assert.ThrowsAsync<PublishFailedException>(() => client.PublishAsync("occ", new byte[4096], new MessageOptions { ExpectedOffset = 1 }));
        Assert.Equal(PublishErrorCode.BadRequest, taskTooLarge.Code);
        Assert.Equal(1, (await client.PublishAsync("occ", Bytes("b"), new MessageOptions { ExpectedOffset = 1 }))!.Offset);
    }

    /// <summary>The error the callback form reports for one publish (null when it was acked).</summary>
    private static async Task<Exception?> PublishWithCallbackAsync(SluiceClient client, string stream, byte[] value, MessageOptions? options = null)
    {
        var outcome = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        await client.PublishAsync(stream, value, (_, error) => outcome.TrySetResult(error), options);
        return await outcome.Task.WaitAsync(WaitLimit);
    }

    /// <summary>
    /// A publish issued after the connections were reset. The client may not have seen its publish
    /// stream break yet and write into it: that message never left the client (its connection was
    /// already gone) and fails with <see cref="BrokerUnavailableException"/>, so sending it again
    /// cannot store it twice.
    /// </summary>
    private static async Task<SluiceAck?> PublishAfterResetAsync(SluiceClient client, string stream, byte[] value)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await client.PublishAsync(stream, value);
            }
            catch (BrokerUnavailableException) when (attempt < 3)
            {
            }
        }
    }
}
