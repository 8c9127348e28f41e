using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Storage.Log;

namespace Sluice.Server.Tests.Cluster;

/// <summary>Replicas that hold what the leader never had are cut back by leader epoch; leaders that step down end their readers.</summary>
public sealed class DivergenceTests
{
    [Theory]
    [InlineData(Metadata.Embedded)]
    [InlineData(Metadata.Etcd)]
    public async Task AReplicaWithATailFromAnOldEpochTruncatesItAndTakesTheLeadersRecords(Metadata metadata)
    {
        await using var cluster = await ClusterHarness.StartAsync(3, metadata: metadata);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("fork", replicationFactor: 3));
        var start = cluster.Leadership("fork");
        var (preferred, second, third) = (cluster[start.Replicas[0]], cluster[start.Replicas[1]], cluster[start.Replicas[2]]);
        for (var i = 0; i < 10; i++)
        {
            await preferred.PublishAsync("fork", "m" + i, policy: AckPolicy.All);
        }

        // The third replica stops, and its log gets offsets 10..14 in the current epoch that no leader will ever have.
        await ClusterHarness.WaitForAsync(() => ClusterHarness.LogOf(third, "fork")?.NewestOffset == 9, "the third replica has all 10");
        await third.StopAsync();
        using (var log = CommitLog.Open(Path.Combine(third.DataDir, "streams", "fork", "0")))
        {
            var epoch = log.LastLeaderEpoch;
            var forged = Enumerable.Range(10, 5).Select(o => new LogRecord { Offset = o, Timestamp = 1, LeaderEpoch = epoch, Value = "forged"u8.ToArray() }).ToArray();
            log.AppendReplicated(forged);
        }

        // The leader goes too: the second replica leads in a new epoch and writes its own 10..14.
        await preferred.StopAsync();
        await ClusterHarness.WaitForAsync(() => cluster.Leader("fork") == second, "the second replica leads");
        for (var i = 10; i < 15; i++)
        {
            Assert.Equal(i, (await second.PublishAsync("fork", "m" + i, policy: AckPolicy.All))!.Offset);
        }

        await third.StartAgainAsync();
        await ClusterHarness.WaitForAsync(() => cluster.Leadership("fork").Isr.Count == 2, "the third replica rejoins the ISR");
        var expected = ClusterHarness.Encoded(ClusterHarness.LogOf(second, "fork")!);
        await ClusterHarness.WaitForAsync(() => ClusterHarness.Encoded(ClusterHarness.LogOf(third, "fork")!).AsSpan().SequenceEqual(expected), "the third replica's log equals the leader's");

        // A reader on the interim leader ends with Unavailable when the preferred replica takes over again.
        await using var reader = await second.SubscribeAsync(new SubscribeRequest { Stream = "fork", StartPosition = StartPosition.Earliest });
        Assert.Equal(15, (await BrokerHarness.ReadAsync(reader, 15)).Count);
        await preferred.StartAgainAsync();
        var ended = await Assert.ThrowsAsync<GrpcException>(async () =>
        {
            using var timeout = new CancellationTokenSource(ClusterHarness.Timeout);
            while (await reader.MoveNextAsync().AsTask().WaitAsync(timeout.Token))
            {
            }
        });
        Assert.Equal(GrpcStatusCode.Unavailable, ended.StatusCode);
        await ClusterHarness.WaitForAsync(() => cluster.Leader("fork") == preferred, "the preferred replica leads again");
        using var batch = ClusterHarness.LogOf(preferred, "fork")!.Read(14, 1024);
        Assert.Equal("m14", ByteString.CopyFrom(batch[0].Value!.Value.Span).ToStringUtf8());
    }

    [Fact]
    public async Task AFollowerWithADamagedCopySetsItAsideAndFetchesEverythingAgain()
    {
        await using var cluster = await ClusterHarness.StartAsync(3);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("hurt", replicationFactor: 3));
        var leadership = cluster.Leadership("hurt");
        var leader = cluster[leadership.Leader];
        for (var i = 0; i < 20; i++)
        {
            await leader.PublishAsync("hurt", "m" + i, policy: AckPolicy.All);
        }

        var follower = cluster[leadership.Replicas[2]];
        await ClusterHarness.WaitForAsync(() => ClusterHarness.LogOf(follower, "hurt")?.NewestOffset == 19, "the follower has all 20");
        await follower.StopAsync();
        var directory = Path.Combine(follower.DataDir, "streams", "hurt", "0");
        var segment = Directory.GetFiles(directory, "*.log").Single();
        var bytes = await File.ReadAllBytesAsync(segment);
        bytes[bytes.Length / 2] ^= 0xFF; // a record in the middle fails its CRC: damage, not a torn tail
        await File.WriteAllBytesAsync(segment, bytes);

        await follower.StartAgainAsync();
        await ClusterHarness.WaitForAsync(() => ClusterHarness.LogOf(follower, "hurt")?.NewestOffset == 19, "the follower has fetched all 20 again");
        Assert.Equal(ClusterHarness.Encoded(ClusterHarness.LogOf(leader, "hurt")!), ClusterHarness.Encoded(ClusterHarness.LogOf(follower, "hurt")!));
        Assert.Single(Directory.GetDirectories(Path.Combine(follower.DataDir, "streams", "hurt"), "0.damaged-*"));
        Assert.False(follower.Server.Broker.TryGetStream("hurt", out var stream) && stream.Partitions[0].IsOffline);
    }
}
