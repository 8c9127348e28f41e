using System.Diagnostics;
using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Xunit.Abstractions;

namespace Sluice.Cli.Tests.Cluster;

/// <summary>Real brokers, real etcd: etcd stops and starts again.</summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class EtcdOutageTests(ITestOutputHelper output)
{
    private static readonly TimeSpan LeaseTtl = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task Etcd_stopped_the_leader_acks_until_its_lease_is_in_doubt_then_fences_and_resumes_without_failover()
    {
        const string stream = "outage";
        await using var cluster = await ProcessCluster.StartAsync(3, $"clustering.broker.lease.ttl: {LeaseTtl.TotalSeconds}s\n");
        await using var store = await cluster.ConnectStoreAsync();
        var admin = cluster.Brokers[0];
        await admin.CallAsync("CreateStream", new CreateStreamRequest { Subject = stream, Name = stream, ReplicationFactor = 3 }, CreateStreamResponse.Parser, TimeSpan.FromSeconds(10));
        var leaderId = await cluster.WaitForFullIsrAsync(stream);
        var leader = cluster[leaderId];
        var epoch = await ProcessCluster.LeaderEpochAsync(store, stream);
        var acked = new Dictionary<long, string>();
        for (var i = 0; i < 5; i++)
        {
            acked.Add(await leader.PublishAsync(stream, "before" + i), "before" + i);
        }

        var stoppedAt = Stopwatch.GetTimestamp();
        await cluster.Etcd.StopAsync();

        // Within the TTL the leader's lease is not in doubt and nothing needs the controller: ALL still acks.
        for (var i = 0; i < 3; i++)
        {
            acked.Add(await leader.PublishAsync(stream, "during" + i), "during" + i);
        }

        output.WriteLine($"3 ALL publishes acked {Stopwatch.GetElapsedTime(stoppedAt).TotalMilliseconds:F0} ms after etcd stopped");
        var create = await StatusAsync(admin, "CreateStream", new CreateStreamRequest { Subject = "x", Name = "during-outage", ReplicationFactor = 1 }, CreateStreamResponse.Parser);
        output.WriteLine($"CreateStream during the outage: {create}");
        Assert.True(create is GrpcStatusCode.Unavailable or GrpcStatusCode.FailedPrecondition or GrpcStatusCode.DeadlineExceeded, $"CreateStream answered {create} while etcd was down");

        // Past one TTL without a renewal the leader stops acknowledging.
        GrpcStatusCode fenced = GrpcStatusCode.OK;
        await cluster.WaitForAsync(
            async () => (fenced = await StatusAsync(leader, "Publish", Publish(stream, "fenced?"), PublishResponse.Parser)) != GrpcStatusCode.OK,
            "the leader refuses publishes",
            LeaseTtl * 3);
        var fencedAfter = Stopwatch.GetElapsedTime(stoppedAt);
        output.WriteLine($"publishes refused with {fenced} {fencedAfter.TotalMilliseconds:F0} ms after etcd stopped");
        Assert.Equal(GrpcStatusCode.Unavailable, fenced);

        await cluster.Etcd.StartAgainAsync();
        var restartedAt = Stopwatch.GetTimestamp();
        await cluster.WaitForAsync(async () => await StatusAsync(leader, "Publish", Publish(stream, "after"), PublishResponse.Parser) == GrpcStatusCode.OK, "the leader acks again");
        output.WriteLine($"publishes acked again {Stopwatch.GetElapsedTime(restartedAt).TotalMilliseconds:F0} ms after etcd restarted");
        acked.Add(await leader.PublishAsync(stream, "after-check"), "after-check");

        Assert.Equal(leaderId, await cluster.WaitForFullIsrAsync(stream));
        Assert.Equal(epoch, await ProcessCluster.LeaderEpochAsync(store, stream));
        var log = await ProcessCluster.ReadLogAsync(leader, stream, acked.Keys.Max());
        foreach (var (offset, payload) in acked)
        {
            Assert.Equal(payload, log[(int)offset].Value.ToStringUtf8());
        }
    }

    private static PublishRequest Publish(string stream, string value) =>
        new() { Stream = stream, Value = ByteString.CopyFromUtf8(value), AckPolicy = Protocol.Api.AckPolicy.All };

    /// <summary>The call's status; fails the test when it outlives its deadline.</summary>
    private static async Task<GrpcStatusCode> StatusAsync<TRequest, TResponse>(BrokerProcess broker, string method, TRequest request, MessageParser<TResponse> parser)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            await broker.CallAsync(method, request, parser, Deadline).WaitAsync(Deadline + Slack);
            return GrpcStatusCode.OK;
        }
        catch (TimeoutException)
        {
            throw new Xunit.Sdk.XunitException($"{method} hung past its {Deadline.TotalSeconds} s deadline");
        }
        catch (GrpcException e)
        {
            Assert.True(Stopwatch.GetElapsedTime(started) < Deadline + Slack, $"{method} took {Stopwatch.GetElapsedTime(started)}");
            return e.StatusCode;
        }
    }

}
