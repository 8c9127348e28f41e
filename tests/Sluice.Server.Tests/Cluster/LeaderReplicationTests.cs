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

/// <summary>The leader's high watermark over the ISR, checked on the leader alone, with the controller faked.</summary>
public sealed class LeaderReplicationTests : IDisposable
{
    private readonly TempDirectory _dir = new("leader-replication");
    private readonly CommitLog _log;
    private readonly Partition _partition;
    private readonly List<AlterIsrRequest> _requests = [];
    private readonly TaskCompletionSource<bool> _answer = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public LeaderReplicationTests()
    {
        var record = new StreamRecord { Request = new CreateStreamRequest { Name = "s", Subject = "s", Partitions = 1, ReplicationFactor = 3 } };
        var stream = new MessageStream(record, 1, StreamSettings.Resolve(record.Request, ServerOptions.Default));
        _partition = new Partition(stream, 0, _dir.Sub("p0"), null, _ => Task.CompletedTask, NullLogger.Instance);
        stream.Partitions = [_partition];
        _log = CommitLog.Open(_dir.Sub("log"));
    }

    private LeaderReplication Leader(params string[] isr)
    {
        var leadership = new PartitionLeadership(["b1", "b2", "b3"], "b1", isr, Epoch: 7, ModRevision: 1);
        var replication = new LeaderReplication(_partition, "b1", leadership, () => true, AlterIsrAsync, TimeSpan.FromSeconds(15), NullLogger.Instance);
        replication.Attach(_log);
        return replication;
    }

    private Task<bool> AlterIsrAsync(AlterIsrRequest request)
    {
        lock (_requests)
        {
            _requests.Add(request);
        }

        return _answer.Task;
    }

    private void Append(int count)
    {
        for (var i = 0; i < count; i++)
        {
            _log.Append([new LogRecord { Value = new byte[] { 1 } }]);
        }
    }

    [Fact]
    public async Task A_follower_asked_into_the_isr_holds_the_high_watermark_back_before_the_metadata_lists_it()
    {
        var leader = Leader("b1", "b2");
        Append(10);
        leader.OnFetch("b2", 10);
        Assert.Equal(9, _log.HighWatermark);

        // b3 caught up past the high watermark: the leader asks for it, and the controller has not answered yet.
        leader.OnFetch("b3", 10);
        await ClusterHarness.WaitForAsync(() => { lock (_requests) { return _requests.Count == 1; } }, "the ISR request");
        Assert.Equal(["b1", "b2", "b3"], _requests[0].Isr);

        // Once etcd lists b3 the controller may hand it the leadership at once, so nothing is committed without it.
        Append(1);
        leader.OnFetch("b2", 11);
        Assert.Equal(9, _log.HighWatermark);
        leader.OnFetch("b3", 11);
        Assert.Equal(10, _log.HighWatermark);

        // Confirmed by the metadata: b3 is a member like any other.
        _answer.SetResult(true);
        leader.UpdateIsr(["b1", "b2", "b3"]);
        Append(1);
        leader.OnFetch("b2", 12);
        Assert.Equal(10, _log.HighWatermark);
        leader.OnFetch("b3", 12);
        Assert.Equal(11, _log.HighWatermark);
    }

    [Fact]
    public async Task A_follower_asked_into_the_isr_stops_counting_once_an_isr_without_it_is_written()
    {
        _answer.SetResult(true);
        var leader = Leader("b1", "b2");
        Append(10);
        leader.OnFetch("b2", 10);
        leader.OnFetch("b3", 10);
        await ClusterHarness.WaitForAsync(() => { lock (_requests) { return _requests.Count == 1; } }, "the ISR request");

        // The metadata answered with an ISR from before the request (b3 not in it): b3 still counts.
        leader.UpdateIsr(["b1", "b2"]);
        Append(1);
        leader.OnFetch("b2", 11);
        Assert.Equal(9, _log.HighWatermark);

        // The metadata lists it, then removes it again (a later shrink): from then on it no longer counts.
        leader.UpdateIsr(["b1", "b2", "b3"]);
        leader.UpdateIsr(["b1", "b2"]);
        leader.OnFetch("b2", 11);
        Assert.Equal(10, _log.HighWatermark);
    }

    [Fact]
    public async Task A_follower_asked_into_the_isr_holds_the_high_watermark_from_a_lagging_fetch_until_it_is_written_or_a_member()
    {
        var leader = Leader("b1", "b2");
        Append(10);
        leader.OnFetch("b2", 10);
        Assert.Equal(9, _log.HighWatermark);
        leader.OnFetch("b3", 10); // b3 holds everything up to the high watermark: the leader asks to add it
        await ClusterHarness.WaitForAsync(() => { lock (_requests) { return _requests.Count == 1; } }, "the leader asks the controller to add b3");

        // Once written, b3 could be elected: what the leader acks from now on must be on b3 too.
        Append(10);
        leader.OnFetch("b2", 20);
        Assert.Equal(9, _log.HighWatermark);
        leader.OnFetch("b3", 15);
        Assert.Equal(14, _log.HighWatermark);

        // Refused: an earlier request may still have been written (the controller's view can lag), so b3 still counts.
        _answer.SetResult(false);
        leader.OnFetch("b2", 20);
        Assert.Equal(14, _log.HighWatermark);
        leader.OnFetch("b3", 20);
        Assert.Equal(19, _log.HighWatermark);
    }

    public void Dispose()
    {
        _log.Dispose();
        _partition.Dispose();
        _dir.Dispose();
    }
}
