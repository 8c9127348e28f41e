using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;

namespace Sluice.Server.Tests.Cluster;

/// <summary>Pause, resume and readonly decided by the controller and applied by every broker.</summary>
public sealed class ClusterAdminTests
{
    [Fact]
    public async Task APausedStreamStopsEverywhereAndAPublishThroughAnyBrokerResumesIt()
    {
        await using var cluster = await ClusterHarness.StartAsync(3);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("nap", replicationFactor: 3, partitions: 2));
        await cluster.Brokers[0].PublishAsync("nap", "before", policy: AckPolicy.All);

        await cluster.Brokers[1].PauseAsync("nap", resumeAll: true);
        foreach (var broker in cluster.Brokers)
        {
            await ClusterHarness.WaitForAsync(() => broker.Server.Broker.TryGetStream("nap", out var s) && s.Partitions.All(p => p.IsPaused && p.Log is null), $"{broker.Options.Clustering.ServerId} has closed both partitions");
            var metadata = await broker.MetadataAsync("nap");
            Assert.All(metadata.StreamMetadata[0].Partitions.Values, p => Assert.True(p.Paused));
        }

        // A publish to partition 1 through any broker resumes it, and with resumeAll partition 0 too.
        var ack = await cluster.Brokers[2].PublishAsync("nap", "after", partition: 1, policy: AckPolicy.All);
        Assert.Equal(0, ack!.Offset);
        foreach (var broker in cluster.Brokers)
        {
            await ClusterHarness.WaitForAsync(() => broker.Server.Broker.TryGetStream("nap", out var s) && s.Partitions.All(p => !p.IsPaused), $"{broker.Options.Clustering.ServerId} has resumed both partitions");
        }

        Assert.Equal(1, (await cluster.Brokers[1].PublishAsync("nap", "again", policy: AckPolicy.All))!.Offset);
    }

    [Fact]
    public async Task AnIdlePartitionIsPausedByItsLeaderOnEveryBrokerAndAPublishResumesIt()
    {
        await using var cluster = await ClusterHarness.StartAsync(3);
        var request = ClusterHarness.Stream("idle", replicationFactor: 3);
        request.AutoPauseTime = new NullableInt64 { Value = 300 };
        await cluster.Brokers[0].CreateStreamAsync(request);
        await cluster.Brokers[0].PublishAsync("idle", "only", policy: AckPolicy.All);

        foreach (var broker in cluster.Brokers)
        {
            await ClusterHarness.WaitForAsync(() => broker.Server.Broker.TryGetStream("idle", out var s) && s.Partitions.All(p => p.IsPaused && p.Log is null), $"{broker.Options.Clustering.ServerId} has closed the idle partition");
        }

        Assert.True((await cluster.Brokers[1].MetadataAsync("idle")).StreamMetadata[0].Partitions[0].Paused);
        Assert.Equal(1, (await cluster.Brokers[2].PublishAsync("idle", "again", policy: AckPolicy.All))!.Offset);
    }

    [Fact]
    public async Task AReadonlyPartitionRefusesPublishesOnEveryBrokerUntilItIsWritableAgain()
    {
        await using var cluster = await ClusterHarness.StartAsync(3);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("frozen", replicationFactor: 2));
        await cluster.Brokers[0].PublishAsync("frozen", "m0", policy: AckPolicy.All);
        await cluster.Brokers[2].SetReadonlyAsync("frozen", true);

        foreach (var broker in cluster.Brokers)
        {
            var error = await Assert.ThrowsAsync<GrpcException>(() => broker.PublishAsync("frozen", "no", policy: AckPolicy.All));
            Assert.Equal(GrpcStatusCode.FailedPrecondition, error.StatusCode);
        }

        var leader = cluster[cluster.Leadership("frozen").Leader];
        await using (var call = await leader.SubscribeAsync(new SubscribeRequest { Stream = "frozen", StartPosition = StartPosition.Earliest }))
        {
            Assert.Single(await BrokerHarness.ReadAsync(call, 1));
            var end = await Assert.ThrowsAsync<GrpcException>(async () => await call.MoveNextAsync());
            Assert.Equal(GrpcStatusCode.ResourceExhausted, end.StatusCode);
        }

        await cluster.Brokers[1].SetReadonlyAsync("frozen", false);
        Assert.Equal(1, (await cluster.Brokers[1].PublishAsync("frozen", "m1", policy: AckPolicy.All))!.Offset);
        var partition = (await leader.MetadataAsync("frozen")).StreamMetadata[0].Partitions[0];
        Assert.False(partition.Readonly);
        Assert.True(partition.ReadonlyTimestamps.LatestTimestamp > partition.ReadonlyTimestamps.FirstTimestamp);
    }

    [Fact]
    public async Task PausingAnUnknownStreamOrPartitionIsRefusedAsLiftbridgeRefusesIt()
    {
        await using var cluster = await ClusterHarness.StartAsync(2);
        var stream = await Assert.ThrowsAsync<GrpcException>(() => cluster.Brokers[1].PauseAsync("nothing"));
        Assert.Equal(GrpcStatusCode.NotFound, stream.StatusCode);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("one", replicationFactor: 1));
        var partition = await Assert.ThrowsAsync<GrpcException>(() => cluster.Brokers[1].PauseAsync("one", false, 5));
        Assert.Equal(GrpcStatusCode.NotFound, partition.StatusCode);
        Assert.Contains("partition does not exist", partition.Message, StringComparison.Ordinal);
    }
}
