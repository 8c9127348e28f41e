using Sluice.Client.Tests.Fakes;
using Sluice.Protocol.Api;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>Brokers going away, coming back, and leaders moving.</summary>
public sealed class FailoverTests
{
    [Fact]
    public async Task Subscription_resumes_after_the_broker_restarts_without_loss_or_duplicates()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        for (var i = 0; i < 5; i++)
        {
            cluster.Append("foo", 0, $"{i}");
        }

        await using var subscription = await client.SubscribeCoreAsync("foo", SubscribeOptions.Default.StartAtEarliest());
        var received = new List<long>();
        await using var enumerator = subscription.GetAsyncEnumerator(TimeoutToken());
        while (received.Count < 5 && await enumerator.MoveNextAsync())
        {
            received.Add(enumerator.Current.Offset);
        }

        await cluster[0].StopAsync();
        for (var i = 5; i < 10; i++)
        {
            cluster.Append("foo", 0, $"{i}"); // written while the client cannot reach the broker
        }

        var next = enumerator.MoveNextAsync().AsTask(); // waits through the outage
        await WaitUntilAsync(() => cluster.CallCount("FetchMetadata") > 1 || next.IsCompleted, "the client noticed the outage");
        await cluster[0].StartAsync();
        Assert.True(await next.WaitAsync(WaitLimit));
        received.Add(enumerator.Current.Offset);
        while (received.Count < 10 && await enumerator.MoveNextAsync())
        {
            received.Add(enumerator.Current.Offset);
        }

        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), received);
        Assert.Equal(1, subscription.ResubscribeCount);
        var resubscribe = cluster.Requests<SubscribeRequest>("Subscribe")[^1];
        Assert.Equal((Sluice.Protocol.Api.StartPosition.Offset, 5L), (resubscribe.StartPosition, resubscribe.StartOffset));
    }

    [Fact]
    public async Task Subscription_fails_with_the_last_error_after_the_resubscribe_wait_time()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster, FastOptions with { ResubscribeWaitTime = TimeSpan.FromMilliseconds(300) });
        await client.CreateStreamAsync("foo", "foo");
        await using var subscription = await client.SubscribeCoreAsync("foo");
        var read = subscription.TakeAsync(1);
        await cluster[0].StopAsync();
        await Assert.ThrowsAsync<BrokerUnavailableException>(() => read);
    }

    [Fact]
    public async Task Subscription_moves_to_the_new_leader()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 2);
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        Assert.Equal("broker-0", cluster.GetStream("foo")!.Partitions[0].Leader);
        cluster.Append("foo", 0, "a");
        await using var subscription = await client.SubscribeCoreAsync("foo", SubscribeOptions.Default.StartAtEarliest());
        await using var enumerator = subscription.GetAsyncEnumerator(TimeoutToken());
        Assert.True(await enumerator.MoveNextAsync());

        // The leader fails over to broker-1 and broker-0 goes away.
        cluster.SetLeader("foo", 0, "broker-1");
        await cluster[0].StopAsync();
        cluster.Append("foo", 0, "b");
        Assert.True(await enumerator.MoveNextAsync());
        Assert.Equal((1L, "b"), (enumerator.Current.Offset, enumerator.Current.GetValueAsString()));
        Assert.Equal("broker-1", cluster.Calls.Last(c => c.Method == "Subscribe").Broker);
    }

    [Fact]
    public async Task Leader_rpcs_refresh_metadata_when_the_leader_moved()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 2);
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        await client.FetchMetadataAsync();
        Assert.Equal("broker-0", client.Metadata.GetStream("foo")!.GetPartition(0)!.LeaderId);

        cluster.SetLeader("foo", 0, "broker-1"); // the client's cache is now stale
        var metadataCalls = cluster.CallCount("FetchMetadata");
        var info = await client.FetchPartitionMetadataAsync("foo", 0);
        Assert.Equal("broker-1", info.LeaderId);
        Assert.Equal(1, cluster.CallCount("FetchPartitionMetadata", "broker-0")); // refused: not the leader
        Assert.Equal(1, cluster.CallCount("FetchPartitionMetadata", "broker-1"));
        Assert.Equal(metadataCalls + 1, cluster.CallCount("FetchMetadata"));
        Assert.Equal("broker-1", client.Metadata.GetStream("foo")!.GetPartition(0)!.LeaderId);

        // A subscription refused by the old leader (FAILED_PRECONDITION) also refreshes and moves on.
        cluster.SetLeader("foo", 0, "broker-0");
        cluster.Append("foo", 0, "x");
        var message = (await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest()).TakeAsync(1))[0];
        Assert.Equal("x", message.GetValueAsString());
        Assert.Equal(["broker-1", "broker-0"], cluster.Calls.Where(c => c.Method == "Subscribe").Select(c => c.Broker));
    }

    [Fact]
    public async Task One_seed_is_enough_to_reach_every_broker()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 3);
        await using var client = await SluiceClient.ConnectAsync([cluster[0].Address], FastOptions);
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with { Partitions = 3 });
        await client.FetchMetadataAsync();
        await cluster[0].StopAsync(); // the seed goes away; partitions 1 and 2 are led elsewhere
        for (var p = 1; p < 3; p++)
        {
            cluster.Append("foo", p, $"p{p}");
            var message = (await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest() with { Partition = p }).TakeAsync(1))[0];
            Assert.Equal($"p{p}", message.GetValueAsString());
            Assert.NotNull(await client.PublishAsync("foo", Bytes("x"), new MessageOptions { Partition = p }));
        }

        await client.CreateStreamAsync("bar", "bar"); // resilient RPCs go to the learnt brokers
    }

    [Fact]
    public async Task Publishing_works_again_after_the_broker_restarts()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        Assert.Equal(0, (await client.PublishAsync("foo", Bytes("a")))!.Offset);
        await cluster[0].StopAsync();
        await Assert.ThrowsAsync<BrokerUnavailableException>(() => client.PublishAsync("foo", Bytes("lost")));
        await cluster[0].StartAsync();

        // The first publish after the restart may still meet the old connection's end (its GOAWAY or
        // FIN can be read after the publish picked it); it fails as unavailable, and a retry succeeds.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            try
            {
                Assert.Equal(1, (await client.PublishAsync("foo", Bytes("b")))!.Offset);
                break;
            }
            catch (BrokerUnavailableException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    [Fact]
    public async Task In_flight_publishes_fail_when_the_connection_breaks()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster, FastOptions with { AckWaitTime = TimeSpan.FromSeconds(30), IdempotentPublishing = false });
        await client.CreateStreamAsync("foo", "foo");
        cluster.DropAcks = true;
        var publish = client.PublishAsync("foo", Bytes("a"));
        await WaitUntilAsync(() => cluster.CallCount("PublishAsync") == 1, "the message reached the server");
        await cluster[0].StopAsync();
        await Assert.ThrowsAsync<BrokerUnavailableException>(() => publish.WaitAsync(WaitLimit));
    }

    [Fact]
    public async Task In_flight_publishes_with_ids_are_resent_until_their_ack_wait_passes_then_fail()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster, FastOptions with { AckWaitTime = TimeSpan.FromSeconds(1) });
        await client.CreateStreamAsync("foo", "foo");
        cluster.DropAcks = true;
        var publish = client.PublishAsync("foo", Bytes("a"));
        await WaitUntilAsync(() => cluster.CallCount("PublishAsync") == 1, "the message reached the server");
        await cluster[0].StopAsync();

        // Down for good: the resends find no broker, and the wait ends with the broker's error (or the ack
        // timeout, when the deadline passes while a resend sits on a stream that has not failed yet).
        var ex = await Assert.ThrowsAnyAsync<SluiceException>(() => publish.WaitAsync(WaitLimit));
        Assert.True(ex is BrokerUnavailableException or AckTimeoutException, ex.ToString());
    }
}
