using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Protocol.Internal;
using Sluice.Server.Cluster;
using Sluice.Server.Cluster.Replication;
using Sluice.Storage.Log;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Cluster;

/// <summary>The leader's high watermark arithmetic, driven directly: fetch positions in, high watermark out.</summary>
public sealed class LeaderReplicationTests
{
    [Fact]
    public async Task AFollowerTheLeaderAskedToAddToTheIsrHoldsTheHighWatermarkUntilTheAnswer()
    {
        // A partition for its name and settings only; the log is the test's own.
        await using var broker = await BrokerHarness.StartAsync();
        await broker.CreateStreamAsync("s", "s");
        Assert.True(broker.Server.Broker.TryGetStream("s", out var stream));
        using var dir = new TempDirectory("sluice-leader-replication");
        using var log = CommitLog.Open(dir.Path);
        Append(log, 0, 10);

        var answer = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var requests = new List<AlterIsrRequest>();
        var replication = new LeaderReplication(
            stream.Partitions[0],
            "b1",
            new PartitionLeadership(["b1", "a", "b"], "b1", ["b1", "a"], 1, 0),
            () => true,
            r =>
            {
                lock (requests)
                {
                    requests.Add(r);
                }

                return answer.Task;
            },
            TimeSpan.FromMinutes(1),
            NullLogger.Instance);
        replication.Attach(log);

        replication.OnFetch("a", 10);
        Assert.Equal(9, log.HighWatermark);
        replication.OnFetch("b", 10); // b holds everything up to the high watermark: the leader asks to add it
        await ClusterHarness.WaitForAsync(() => Count(requests) == 1, "the leader asks the controller to add b");
        Assert.Equal(["b1", "a", "b"], requests[0].Isr);

        // Once written, b could be elected: what the leader acks from now on must be on b too.
        Append(log, 10, 10);
        replication.OnFetch("a", 20);
        Assert.Equal(9, log.HighWatermark);
        replication.OnFetch("b", 15);
        Assert.Equal(14, log.HighWatermark);

        // The controller did not write it: b no longer counts.
        answer.SetResult(false);
        await ClusterHarness.WaitForAsync(() => log.HighWatermark == 19, "the high watermark follows the ISR without b");
    }

    private static int Count(List<AlterIsrRequest> requests)
    {
        lock (requests)
        {
            return requests.Count;
        }
    }

    private static void Append(CommitLog log, long first, int count) =>
        log.AppendReplicated([.. Enumerable.Range(0, count).Select(i => new LogRecord { Offset = first + i, Timestamp = 1, LeaderEpoch = 1, Value = "m"u8.ToArray() })]);
}
