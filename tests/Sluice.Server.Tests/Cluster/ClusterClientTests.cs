using Sluice.Client;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using ClientAckPolicy = Sluice.Client.AckPolicy;
using ClientStartPosition = Sluice.Client.StartPosition;

namespace Sluice.Server.Tests.Cluster;

/// <summary>What clients see of a cluster: reading from followers, being sent to the leader, cursors, and carrying on after a leader goes.</summary>
public sealed class ClusterClientTests
{
    [Fact]
    public async Task AFollowerServesReadIsrReplicaAndSendsOthersToTheLeader()
    {
        await using var cluster = await ClusterHarness.StartAsync(3);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("reads", replicationFactor: 3));
        var leadership = cluster.Leadership("reads");
        var leader = cluster[leadership.Leader];
        for (var i = 0; i < 10; i++)
        {
            await leader.PublishAsync("reads", "m" + i, policy: Protocol.Api.AckPolicy.All);
        }

        var follower = cluster[leadership.Replicas.First(r => r != leadership.Leader)];
        await ClusterHarness.WaitForAsync(() => ClusterHarness.LogOf(follower, "reads")?.HighWatermark == 9, "the follower's high watermark reaches 9");

        var error = await Assert.ThrowsAsync<GrpcException>(() => follower.SubscribeAsync(new SubscribeRequest { Stream = "reads", StartPosition = Protocol.Api.StartPosition.Earliest }));
        Assert.Equal(GrpcStatusCode.FailedPrecondition, error.StatusCode);
        Assert.Contains("Server not partition leader", error.Message, StringComparison.Ordinal);

        await using var call = await follower.SubscribeAsync(new SubscribeRequest { Stream = "reads", StartPosition = Protocol.Api.StartPosition.Earliest, ReadISRReplica = true });
        var messages = await BrokerHarness.ReadAsync(call, 10);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => "m" + i), messages.Select(m => m.Value.ToStringUtf8()));

        var partition = await Assert.ThrowsAsync<GrpcException>(() => follower.PartitionMetadataAsync("reads"));
        Assert.Equal(GrpcStatusCode.FailedPrecondition, partition.StatusCode);
    }

    [Fact]
    public async Task CursorsLiveInAReplicatedStreamTheControllerCreates()
    {
        await using var cluster = await ClusterHarness.StartAsync(3, o => o with { Cursors = o.Cursors with { Partitions = 2 } });
        await ClusterHarness.WaitForAsync(() => cluster.Brokers.All(b => b.Server.Broker.TryGetStream("__cursors", out _)), "every broker has the cursors stream");
        Assert.Equal(3, cluster.Leadership("__cursors").Replicas.Count);

        await using var client = await SluiceClient.ConnectAsync(cluster.Brokers.Select(b => $"127.0.0.1:{b.Server.Port}"));
        await client.CreateStreamAsync("events.subject", "events", new StreamOptions { ReplicationFactor = 3 });
        await client.SetCursorAsync("reader-1", "events", 0, 41);
        Assert.Equal(41, await client.FetchCursorAsync("reader-1", "events", 0));
    }

    [Fact]
    public async Task TheControllerPublishesCreateAndDeleteToTheActivityStream()
    {
        await using var cluster = await ClusterHarness.StartAsync(3, o => o with { Activity = o.Activity with { Enabled = true } });
        await ClusterHarness.WaitForAsync(() => cluster.Brokers.All(b => b.Server.Broker.TryGetStream("__activity", out _)), "every broker has the activity stream");
        await cluster.Brokers[2].CreateStreamAsync(ClusterHarness.Stream("watched", replicationFactor: 2));
        await cluster.Brokers[1].DeleteStreamAsync("watched");

        var leader = cluster[cluster.Leadership("__activity").Leader];
        await using var call = await leader.SubscribeAsync(new SubscribeRequest { Stream = "__activity", StartPosition = Protocol.Api.StartPosition.Earliest });
        var events = (await BrokerHarness.ReadAsync(call, 2)).Select(m => ActivityStreamEvent.Parser.ParseFrom(m.Value)).ToList();
        Assert.Equal([ActivityStreamOp.CreateStream, ActivityStreamOp.DeleteStream], events.Select(e => e.Op));
        Assert.Equal("watched", events[0].CreateStreamOp.Stream);
        Assert.True(events[1].Id > events[0].Id);
    }

    [Fact]
    public async Task ClientPublishersAndSubscribersCarryOnAfterTheLeaderStops()
    {
        await using var cluster = await ClusterHarness.StartAsync(3);
        await using var client = await SluiceClient.ConnectAsync(cluster.Brokers.Select(b => $"127.0.0.1:{b.Server.Port}"));
        await client.CreateStreamAsync("carry.subject", "carry", new StreamOptions { ReplicationFactor = 3 });
        var all = new MessageOptions { AckPolicy = ClientAckPolicy.All };
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(i, (await client.PublishAsync("carry", System.Text.Encoding.UTF8.GetBytes("m" + i), all))!.Offset);
        }

        using var stop = new CancellationTokenSource(ClusterHarness.Timeout);
        var received = new List<long>();
        var reader = Task.Run(async () =>
        {
            await foreach (var message in client.SubscribeAsync("carry", new SubscribeOptions { StartPosition = ClientStartPosition.Earliest }, stop.Token))
            {
                received.Add(message.Offset);
                if (received.Count == 40)
                {
                    return;
                }
            }
        });

        await ClusterHarness.WaitForAsync(() => received.Count >= 20, "the subscriber has the first 20");
        await cluster[cluster.Leadership("carry").Leader].StopAsync();
        for (var i = 20; i < 40; i++)
        {
            Assert.Equal(i, (await PublishRetryingAsync(client, "carry", "m" + i, all, stop.Token))!.Offset);
        }

        await reader.WaitAsync(stop.Token);
        Assert.Equal(Enumerable.Range(0, 40).Select(i => (long)i), received);
    }

    [Fact]
    public async Task PublishesCaughtByALeadershipMoveAreResentAndStoredOnce()
    {
        await using var cluster = await ClusterHarness.StartAsync(3);
        await using var client = await SluiceClient.ConnectAsync(cluster.Brokers.Select(b => $"127.0.0.1:{b.Server.Port}"));
        await client.CreateStreamAsync("moves.subject", "moves", new StreamOptions { ReplicationFactor = 3 });
        var preferred = cluster[cluster.Leadership("moves").Leader];
        var all = new MessageOptions { AckPolicy = ClientAckPolicy.All };
        using var stop = new CancellationTokenSource(ClusterHarness.Timeout * 2);
        var acked = 0;
        var publisher = Task.Run(async () =>
        {
            for (var i = 0; i < 300; i++)
            {
                await PublishRetryingAsync(client, "moves", "m" + i, all, stop.Token);
                Interlocked.Increment(ref acked);
            }
        });

        // The preferred leader stops, then comes back and takes the lead again: both moves catch publishes in flight.
        await ClusterHarness.WaitForAsync(() => Volatile.Read(ref acked) >= 50 || publisher.IsCompleted, "50 publishes are acked");
        await preferred.StopAsync();
        await ClusterHarness.WaitForAsync(() => Volatile.Read(ref acked) >= 100 || publisher.IsCompleted, "100 publishes are acked");
        Assert.False(publisher.IsFaulted, publisher.Exception?.ToString());
        await preferred.StartAgainAsync();
        await publisher.WaitAsync(stop.Token);

        await ClusterHarness.WaitForAsync(() => cluster.Leader("moves") == preferred && ClusterHarness.LogOf(preferred, "moves")?.HighWatermark == 299, "the preferred replica leads with all 300");
        await using var call = await preferred.SubscribeAsync(new SubscribeRequest { Stream = "moves", StartPosition = Protocol.Api.StartPosition.Earliest });
        var values = (await BrokerHarness.ReadAsync(call, 300)).Select(m => m.Value.ToStringUtf8()).ToList();
        Assert.Equal(Enumerable.Range(0, 300).Select(i => "m" + i), values);
    }

    /// <summary>
    /// The old leader had fully stopped before these publishes began, so one that fails on its dead connection
    /// was never stored anywhere: trying again is safe here (a real publisher relies on message ids instead).
    /// </summary>
    private static async Task<SluiceAck?> PublishRetryingAsync(SluiceClient client, string stream, string value, MessageOptions options, CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                return await client.PublishAsync(stream, System.Text.Encoding.UTF8.GetBytes(value), options, cancellationToken);
            }
            catch (BrokerUnavailableException)
            {
                // A fenced leader's or a stopping broker's refusal, and LeaderChanged, the client resends by itself.
                await Task.Delay(50, cancellationToken);
            }
        }
    }
}
