using System.Diagnostics;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Xunit.Abstractions;

namespace Sluice.Cli.Tests.Cluster;

/// <summary>Real brokers, real etcd: the controller's broker is SIGKILLed while admin calls run through another broker.</summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class ControllerKillTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(5);

    /// <summary>What a call may take beyond its deadline before it counts as hanging (a loaded 2-core machine).</summary>
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(2);

    private static TimeSpan _longest;

    [Fact]
    public async Task Controller_SIGKILLed_during_admin_calls_every_OK_create_is_on_every_live_broker()
    {
        await using var cluster = await ProcessCluster.StartAsync(3);
        await using var store = await cluster.ConnectStoreAsync();
        string? controller = null;
        await cluster.WaitForAsync(async () => (controller = await ProcessCluster.ControllerAsync(store)) is not null, "a controller");
        var via = cluster.Brokers.First(b => b.Id != controller);
        output.WriteLine($"controller {controller}; admin calls through {via.Id}");

        var created = new List<string>();
        var deleted = new List<string>();
        var statuses = new Dictionary<string, int>();
        string? newController = null;
        var killed = false;
        var killedAt = 0L;
        var createdSinceNewController = 0;
        var run = Stopwatch.StartNew();
        for (var i = 0; createdSinceNewController < 5; i++)
        {
            Assert.True(run.Elapsed < TimeSpan.FromSeconds(60), "no new controller took over: " + string.Join(", ", statuses));
            if (i == 5)
            {
                await cluster.KillAsync(cluster[controller!]);
                killed = true;
                killedAt = Stopwatch.GetTimestamp();
            }

            var name = "admin" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var status = await CallAsync(via, "CreateStream", new CreateStreamRequest { Subject = name, Name = name, ReplicationFactor = 2 }, CreateStreamResponse.Parser);
            Count(statuses, "create " + status);
            if (status == GrpcStatusCode.OK)
            {
                created.Add(name);
                if (newController is not null)
                {
                    createdSinceNewController++;
                }
            }

            if (i % 2 == 1 && created.Count > 1 && created[^2] is var victim && !deleted.Contains(victim))
            {
                status = await CallAsync(via, "DeleteStream", new DeleteStreamRequest { Name = victim }, DeleteStreamResponse.Parser);
                Count(statuses, "delete " + status);
                if (status == GrpcStatusCode.OK)
                {
                    deleted.Add(victim);
                }
            }

            if (killed && newController is null && await ProcessCluster.ControllerAsync(store) is { } now && now != controller)
            {
                newController = now;
                output.WriteLine($"new controller {now} seen {Stopwatch.GetElapsedTime(killedAt).TotalMilliseconds:F0} ms after the kill");
            }
        }

        output.WriteLine("statuses: " + string.Join(", ", statuses.Select(s => $"{s.Key} x{s.Value}")) + $"; longest call {_longest.TotalMilliseconds:F0} ms");
        var live = cluster.Brokers.Where(b => b.Process is not null).ToList();
        var expected = created.Except(deleted).ToHashSet();
        await cluster.WaitForAsync(
            async () =>
            {
                foreach (var broker in live)
                {
                    var names = (await ProcessCluster.TryMetadataAsync(broker))?.StreamMetadata.Select(s => s.Name).ToHashSet();
                    if (names is null || !expected.IsSubsetOf(names) || names.Overlaps(deleted))
                    {
                        return false;
                    }
                }

                return true;
            },
            $"every live broker lists the {expected.Count} streams created OK and not deleted, and none deleted OK");
    }

    /// <summary>Calls <paramref name="method"/> on <paramref name="broker"/>; returns its status, failing when it outlives its deadline or answers an unclear status.</summary>
    private static async Task<GrpcStatusCode> CallAsync<TRequest, TResponse>(BrokerProcess broker, string method, TRequest request, Google.Protobuf.MessageParser<TResponse> parser)
        where TRequest : class, Google.Protobuf.IMessage<TRequest>
        where TResponse : class, Google.Protobuf.IMessage<TResponse>
    {
        var started = Stopwatch.GetTimestamp();
        GrpcStatusCode status;
        try
        {
            await broker.CallAsync(method, request, parser, Deadline).WaitAsync(Deadline + Slack);
            status = GrpcStatusCode.OK;
        }
        catch (TimeoutException)
        {
            throw new Xunit.Sdk.XunitException($"{method} hung past its {Deadline.TotalSeconds} s deadline");
        }
        catch (GrpcException e)
        {
            status = e.StatusCode;
            Assert.True(
                status is GrpcStatusCode.Unavailable or GrpcStatusCode.FailedPrecondition or GrpcStatusCode.DeadlineExceeded,
                $"{method} failed with an unclear status {status}: {e.Message}");
        }

        var took = Stopwatch.GetElapsedTime(started);
        Assert.True(took < Deadline + Slack, $"{method} took {took}");
        _longest = took > _longest ? took : _longest;
        return status;
    }

    private static void Count(Dictionary<string, int> counts, string key) => counts[key] = counts.GetValueOrDefault(key) + 1;
}
