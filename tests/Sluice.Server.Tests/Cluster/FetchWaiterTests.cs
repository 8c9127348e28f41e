using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Protocol.Api;
using Sluice.Protocol.Internal;
using Sluice.Server.Cluster;
using Sluice.Server.Cluster.Replication;
using Sluice.Server.Configuration;
using Sluice.Server.Streams;
using Sluice.Storage.Log;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Cluster;

/// <summary>A follower's fetch parked on the leader: what wakes it, and that the thread making the change resumes it.</summary>
public sealed class FetchWaiterTests : IDisposable
{
    private static readonly TimeSpan LongIdle = TimeSpan.FromMinutes(5);
    private readonly TempDirectory _dir = new("fetch-waiter");
    private readonly CommitLog _log;
    private readonly LeaderReplication _leader;

    public FetchWaiterTests()
    {
        var record = new StreamRecord { Request = new CreateStreamRequest { Name = "s", Subject = "s", Partitions = 1, ReplicationFactor = 3 } };
        var stream = new MessageStream(record, 1, StreamSettings.Resolve(record.Request, ServerOptions.Default));
        var partition = new Partition(stream, 0, _dir.Sub("p0"), null, _ => Task.CompletedTask, NullLogger.Instance);
        stream.Partitions = [partition];
        _log = CommitLog.Open(_dir.Sub("log"));
        var leadership = new PartitionLeadership(["b1", "b2", "b3"], "b1", ["b1", "b2", "b3"], Epoch: 3, ModRevision: 1);
        _leader = new LeaderReplication(partition, "b1", leadership, () => true, _ => Task.FromResult(true), TimeSpan.FromSeconds(15), NullLogger.Instance);
        _leader.Attach(_log);
    }

    private void Append()
    {
        _log.Append([new LogRecord { Value = new byte[] { 1 } }]);
        _leader.AfterBatch();
    }

    private static bool Completed(ValueTask wait) => wait.IsCompletedSuccessfully;

    [Fact]
    public void An_append_resumes_a_fetch_waiting_at_the_log_end_on_the_appending_thread()
    {
        using var waiter = new FetchWaiter(CancellationToken.None);
        var wait = waiter.WaitAsync(_leader, _log, fetchOffset: 0, lastHighWatermark: -1, LongIdle);
        Assert.False(wait.IsCompleted);

        Append();

        // Completed before AfterBatch returned: no thread-pool hop between the append and the answer.
        Assert.True(wait.IsCompletedSuccessfully);
    }

    [Fact]
    public void A_higher_high_watermark_resumes_a_fetch_that_has_every_record()
    {
        Append();
        Append();
        using var waiter = new FetchWaiter(CancellationToken.None);
        var wait = waiter.WaitAsync(_leader, _log, fetchOffset: 2, lastHighWatermark: -1, LongIdle);
        Assert.False(wait.IsCompleted);

        _leader.OnFetch("b2", 2);
        Assert.False(wait.IsCompleted); // b3 has nothing yet: the high watermark has not moved
        _leader.OnFetch("b3", 1);

        Assert.Equal(0, _log.HighWatermark);
        Assert.True(wait.IsCompletedSuccessfully);
    }

    [Fact]
    public void A_change_made_before_the_wait_completes_it_at_once()
    {
        Append();
        using var waiter = new FetchWaiter(CancellationToken.None);
        Assert.True(Completed(waiter.WaitAsync(_leader, _log, fetchOffset: 0, lastHighWatermark: -1, LongIdle)));
    }

    [Fact]
    public async Task A_fetch_with_nothing_new_is_answered_after_the_idle_wait()
    {
        using var waiter = new FetchWaiter(CancellationToken.None);
        var wait = waiter.WaitAsync(_leader, _log, fetchOffset: 0, lastHighWatermark: -1, TimeSpan.FromMilliseconds(50));
        await wait.AsTask().WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task The_end_of_the_leadership_or_of_the_call_resumes_a_parked_fetch()
    {
        using var call = new CancellationTokenSource();
        using var byCall = new FetchWaiter(call.Token);
        var cancelled = byCall.WaitAsync(_leader, _log, fetchOffset: 0, lastHighWatermark: -1, LongIdle);
        await call.CancelAsync();
        Assert.True(cancelled.IsCompletedSuccessfully);

        using var byStop = new FetchWaiter(CancellationToken.None);
        var stopped = byStop.WaitAsync(_leader, _log, fetchOffset: 0, lastHighWatermark: -1, LongIdle);
        _leader.Stop();
        Assert.True(stopped.IsCompletedSuccessfully);

        // A fetch that parks on a leadership already over is not left waiting either.
        using var late = new FetchWaiter(CancellationToken.None);
        Assert.True(Completed(late.WaitAsync(_leader, _log, fetchOffset: 0, lastHighWatermark: -1, LongIdle)));
    }

    public void Dispose()
    {
        _log.Dispose();
        _dir.Dispose();
    }
}
