using Sluice.Client.Grpc;
using Sluice.Client.Tests.Fakes;
using Sluice.Protocol.Api;
using Sluice.TestKit;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>Message ids on every publish, and resends after a broker went away that store nothing twice.</summary>
public sealed class IdempotentPublishTests
{
    private const string IdHeader = "Sluice-Msg-Id";

    [Fact]
    public async Task Every_message_gets_its_own_id_unless_the_caller_set_one()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");

        await client.PublishAsync("foo", Bytes("a"));
        await client.PublishAsync("foo", Bytes("b"), MessageOptions.Default.WithHeader("h", Bytes("v")));
        await client.PublishAsync("foo", Bytes("c"), MessageOptions.Default.WithHeader(IdHeader, Bytes("mine")));
        var callback = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await client.PublishAsync("foo", Bytes("d"), (_, _) => callback.TrySetResult());
        await callback.Task.WaitAsync(WaitLimit);

        var requests = cluster.Requests<PublishRequest>("PublishAsync");
        Assert.Equal(4, requests.Length);
        var ids = requests.Select(r => r.Headers[IdHeader].ToStringUtf8()).ToList();
        Assert.Matches("^[0-9A-Za-z]{22}$", ids[0]);
        Assert.Equal("mine", ids[2]);
        Assert.Equal(4, ids.Distinct().Count());
        Assert.Equal("v", requests[1].Headers["h"].ToStringUtf8());

        await client.PublishToSubjectAsync("foo", Bytes("e"));
        Assert.Matches("^[0-9A-Za-z]{22}$", Assert.Single(cluster.Requests<PublishToSubjectRequest>("PublishToSubject")).Headers[IdHeader].ToStringUtf8());
    }

    [Theory]
    [InlineData("partition 0 of stream foo: " + Sluice.Protocol.Wire.PublishErrors.LeaderFenced)]
    [InlineData(Sluice.Protocol.Wire.PublishErrors.ShuttingDown)]
    [InlineData(Sluice.Protocol.Wire.PublishErrors.LeaderChanged)]
    [InlineData(Sluice.Protocol.Wire.PublishErrors.LeaderStorageFull)]
    [InlineData("partition 0 of stream foo: " + Sluice.Protocol.Wire.PublishErrors.LeaderStorageFull)]
    public async Task A_refusal_that_leaves_a_resend_safe_is_sent_again_with_the_same_id(string refusal)
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        cluster.FailNextPublish(PublishAsyncError.Types.Code.Internal, refusal);

        var ack = await client.PublishAsync("foo", Bytes("a"), new MessageOptions { AckPolicy = AckPolicy.All }).WaitAsync(WaitLimit);
        Assert.Equal(0, ack!.Offset);
        var requests = cluster.Requests<PublishRequest>("PublishAsync");
        Assert.Equal(2, requests.Length);
        Assert.Equal(requests[0].Headers[IdHeader], requests[1].Headers[IdHeader]);
    }

    [Fact]
    public async Task Turned_off_no_id_is_added()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster, FastOptions with { IdempotentPublishing = false });
        await client.CreateStreamAsync("foo", "foo");
        await client.PublishAsync("foo", Bytes("a"));
        Assert.Empty(Assert.Single(cluster.Requests<PublishRequest>("PublishAsync")).Headers);
    }

    /// <summary>
    /// The broker stores messages and dies before their acks reach the client (held in a proxy, then
    /// dropped with the connections); a few more never reach it at all. After a restart on the same port
    /// and data, every pending publish, in both forms, completes with the offset of the one stored copy.
    /// </summary>
    [Fact]
    [SluiceOnly("Liftbridge does not deduplicate by message id: the resends would be stored twice")]
    public async Task Publishes_whose_acks_were_lost_with_the_broker_complete_after_its_restart_and_are_stored_once()
    {
        await using var proxy = TcpProxy.Start();
        await using var server = await RealServer.StartBehindAsync(proxy);
        await using var client = await SluiceClient.ConnectAsync([proxy.Address], FastOptions with { AckWaitTime = WaitLimit });
        await client.CreateStreamAsync("foo", "foo");
        Assert.Equal(0, (await client.PublishAsync("foo", Bytes("before")))!.Offset);
        using var direct = new GrpcChannel(new Uri($"http://{server.Address}"));

        proxy.Pause(ProxyDirection.ServerToClient); // acks stop here
        var awaited = new Dictionary<string, Task<SluiceAck?>>();
        var callbacks = new Dictionary<string, TaskCompletionSource<SluiceAck?>>();
        for (var i = 0; i < 20; i++)
        {
            awaited[$"t{i}"] = client.PublishAsync("foo", Bytes($"t{i}"));
            var done = callbacks[$"c{i}"] = new TaskCompletionSource<SluiceAck?>(TaskCreationOptions.RunContinuationsAsynchronously);
            await client.PublishAsync("foo", Bytes($"c{i}"), (ack, error) =>
            {
                if (error is null)
                {
                    done.TrySetResult(ack);
                }
                else
                {
                    done.TrySetException(error);
                }
            });
        }

        await WaitForNewestOffsetAsync(direct, 40); // all 40 stored: only their acks are missing

        proxy.Pause(ProxyDirection.ClientToServer); // these never reach the broker
        for (var i = 0; i < 5; i++)
        {
            awaited[$"late{i}"] = client.PublishAsync("foo", Bytes($"late{i}"));
        }

        await WaitUntilAsync(() => proxy.HeldBytes(ProxyDirection.ClientToServer) > 0, "the late publishes reach the proxy");
        await server.StopAsync();
        var accepted = proxy.AcceptedCount;
        proxy.DropConnections(); // the held acks and publishes are lost with the connections
        proxy.Resume();
        await WaitUntilAsync(() => proxy.AcceptedCount > accepted, "the client tries to resend while the broker is down");
        Assert.All(awaited.Values, t => Assert.False(t.IsCompleted));
        await server.RestartAsync();

        var offsets = new Dictionary<string, long>();
        foreach (var (value, publish) in awaited)
        {
            offsets[value] = (await publish.WaitAsync(WaitLimit))!.Offset;
        }

        foreach (var (value, publish) in callbacks)
        {
            offsets[value] = (await publish.Task.WaitAsync(WaitLimit))!.Offset;
        }

        var stored = await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest().StopAtLatest()).ToListAsync();
        Assert.Equal(46, stored.Count); // "before" and each of the 45 exactly once
        Assert.Equal(stored.Count, stored.Select(m => m.GetValueAsString()).Distinct().Count());
        foreach (var message in stored.Skip(1))
        {
            Assert.Equal(message.Offset, offsets[message.GetValueAsString()]); // every ack names the one stored copy
        }

        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"late{i}"), stored.TakeLast(5).Select(m => m.GetValueAsString())); // resent in publish order
    }

    [Fact]
    public async Task Turned_off_a_publish_whose_ack_was_lost_with_the_broker_fails_as_before()
    {
        await using var proxy = TcpProxy.Start();
        await using var server = await RealServer.StartBehindAsync(proxy);
        await using var client = await SluiceClient.ConnectAsync([proxy.Address], FastOptions with { AckWaitTime = WaitLimit, IdempotentPublishing = false });
        await client.CreateStreamAsync("foo", "foo");
        await client.PublishAsync("foo", Bytes("before"));
        using var direct = new GrpcChannel(new Uri($"http://{server.Address}"));

        proxy.Pause(ProxyDirection.ServerToClient);
        var publish = client.PublishAsync("foo", Bytes("a"));
        await WaitForNewestOffsetAsync(direct, 1);
        proxy.DropConnections();
        await Assert.ThrowsAsync<BrokerUnavailableException>(() => publish.WaitAsync(WaitLimit));
    }

    private static async Task WaitForNewestOffsetAsync(GrpcChannel direct, long offset)
    {
        var token = TimeoutToken();
        while (true)
        {
            var metadata = await direct.UnaryAsync(
                "/proto.API/FetchPartitionMetadata",
                new FetchPartitionMetadataRequest { Stream = "foo", Partition = 0 },
                FetchPartitionMetadataResponse.Parser,
                WaitLimit,
                token);
            if (metadata.Metadata.NewestOffset >= offset)
            {
                return;
            }

            await Task.Delay(20, token);
        }
    }
}
