using Microsoft.Extensions.Logging;
using Sluice.Server.Cluster.Replication;
using Sluice.Server.Streams;
using Broker = Sluice.Server.Streams.Broker;

namespace Sluice.Server.Cluster;

/// <summary>
/// Makes this broker match the metadata, after every change: streams that appeared get their partitions
/// (directories and logs for those it holds a replica of), streams that went are closed and their data
/// removed, and each replica takes the role the metadata gives it: leader (with the ISR), follower of the
/// named leader, or nothing while the partition has no leader.
/// </summary>
internal sealed partial class ReplicaManager : IAsyncDisposable
{
    private static readonly Sluice.Protocol.Internal.PartitionStateRecord EmptyState = new();

    private readonly ClusterNode _node;
    private readonly Broker _broker;
    private readonly ILogger _logger;
    private readonly Dictionary<Partition, PartitionFollower> _followers = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _appliedLock = new();
    private TaskCompletionSource _applied = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _loop = Task.CompletedTask;
    private Timer? _lagTimer;

    public ReplicaManager(ClusterNode node, Broker broker, ILogger logger)
    {
        _node = node;
        _broker = broker;
        _logger = logger;
    }

    /// <summary>Completes after the next reconciliation.</summary>
    public Task Applied
    {
        get
        {
            lock (_appliedLock)
            {
                return _applied.Task;
            }
        }
    }

    /// <summary>Applies the current metadata once, then follows it.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _node.View.BeforePublish = ApplyIsrAhead;
        await ReconcileAsync(_node.View.Current, cancellationToken).ConfigureAwait(false);
        _loop = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
        var period = TimeSpan.FromTicks(Math.Clamp(_broker.Options.Clustering.ReplicaMaxLagTime.Ticks / 4, TimeSpan.FromMilliseconds(100).Ticks, TimeSpan.FromSeconds(1).Ticks));
        _lagTimer = new Timer(_ => CheckLag(), null, period, period);
    }

    private async Task RunAsync(CancellationToken stop)
    {
        var applied = _node.View.Current.Revision;
        while (!stop.IsCancellationRequested)
        {
            var next = _node.View.NextChange;
            var snapshot = _node.View.Current;
            try
            {
                if (snapshot.Revision != applied)
                {
                    await ReconcileAsync(snapshot, stop).ConfigureAwait(false);
                    applied = snapshot.Revision;
                }

                await next.WaitAsync(TimeSpan.FromSeconds(1), stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (TimeoutException)
            {
                applied = -1; // re-apply now and then: a role that failed to start (a full disk) is tried again
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogReconcileFailed(_logger, ex);
                applied = -1;
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(200), stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>
    /// A new ISR for a partition this broker leads in the same epoch, applied as the snapshot arrives rather than on the
    /// next reconciliation (which waits for the broker's lock): an ALL publish that comes after FetchMetadata showed
    /// the ISR below min ISR is refused before it is appended, as a Kafka client expects.
    /// </summary>
    private void ApplyIsrAhead(ClusterSnapshot snapshot)
    {
        var self = _node.BrokerId;
        foreach (var stream in _broker.Streams)
        {
            foreach (var partition in stream.Partitions)
            {
                if (partition.Runtime?.Replication is { } replication
                    && snapshot.Leaders.TryGetValue((stream.Name, partition.Id), out var written)
                    && written.Record.Leader == self
                    && written.Record.LeaderEpoch == replication.Epoch
                    && !written.Record.Isr.SequenceEqual(replication.Isr, StringComparer.Ordinal))
                {
                    replication.UpdateIsr([.. written.Record.Isr]);
                }
            }
        }
    }

    private async Task ReconcileAsync(ClusterSnapshot snapshot, CancellationToken cancellationToken)
    {
        await _broker.WithLockAsync(async () =>
        {
            foreach (var stream in _broker.Streams.ToList())
            {
                if (!snapshot.Streams.TryGetValue(stream.Name, out var entry) || entry.CreateRevision != stream.Epoch)
                {
                    foreach (var partition in stream.Partitions)
                    {
                        await StopFollowingAsync(partition, delete: true).ConfigureAwait(false);
                    }

                    await _broker.RemoveStreamLockedAsync(stream).ConfigureAwait(false);
                }
            }

            foreach (var entry in snapshot.Streams.Values)
            {
                if (!_broker.TryGetStream(entry.Record.Request.Name, out var stream))
                {
                    var states = snapshot.States.Where(s => s.Key.Stream == entry.Record.Request.Name).ToDictionary(s => s.Key.Partition, s => s.Value);
                    stream = _broker.AddStreamLocked(entry.Record, entry.CreateRevision, states, p =>
                    {
                        p.Leadership = snapshot.Leadership(entry, p.Id);
                        p.ApplyClusterState(snapshot.States.GetValueOrDefault((entry.Record.Request.Name, p.Id)) ?? EmptyState);
                    });
                }

                stream.Record.ResumeAll = entry.Record.ResumeAll;
                foreach (var partition in stream.Partitions)
                {
                    var leadership = snapshot.Leadership(entry, partition.Id);
                    if (partition.Leadership is { } before && (before.Leader != leadership.Leader || before.Epoch != leadership.Epoch))
                    {
                        _broker.Context.Metrics?.LeaderChanged(stream.Name);
                    }

                    partition.Leadership = leadership;
                    partition.ApplyClusterState(snapshot.States.GetValueOrDefault((entry.Record.Request.Name, partition.Id)) ?? EmptyState);
                    if (partition.IsPaused)
                    {
                        // Paused: no replica runs (as on a single node, the log is closed) until the controller resumes it.
                        await StopFollowingAsync(partition, delete: false).ConfigureAwait(false);
                        if (partition.Runtime is not null)
                        {
                            await partition.CloseAsync(PartitionCloseReason.Paused).ConfigureAwait(false);
                        }

                        continue;
                    }

                    await ApplyRoleAsync(partition, leadership).ConfigureAwait(false);
                }
            }
        }, cancellationToken).ConfigureAwait(false);

        TaskCompletionSource applied;
        lock (_appliedLock)
        {
            applied = _applied;
            _applied = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        applied.TrySetResult();
    }

    private async Task ApplyRoleAsync(Partition partition, PartitionLeadership leadership)
    {
        var self = _node.BrokerId;
        if (leadership.Leader == self && leadership.IsReplica(self))
        {
            if (partition.Runtime?.Replication is { } current && current.Epoch == leadership.Epoch)
            {
                current.UpdateIsr(leadership.Isr);
                return;
            }

            await StepDownAsync(partition).ConfigureAwait(false);
            await StopFollowingAsync(partition, delete: false).ConfigureAwait(false);
            var replication = new LeaderReplication(partition, self, leadership, () => _node.IsLive, _node.AlterIsrAsync, _broker.Options.Clustering.ReplicaMaxLagTime, _logger, _node.Storage);
            partition.Open(_broker.Context, leadership.Epoch, replication);
            if (partition.Runtime is not null)
            {
                LogLeading(_logger, partition.Stream.Name, partition.Id, leadership.Epoch, string.Join(",", leadership.Isr));
            }

            return;
        }

        if (leadership.Leader.Length > 0 && leadership.IsReplica(self))
        {
            if (_followers.TryGetValue(partition, out var follower) && follower.Leadership.Leader == leadership.Leader && follower.Leadership.Epoch == leadership.Epoch)
            {
                return;
            }

            await StepDownAsync(partition).ConfigureAwait(false);
            if (follower is not null)
            {
                _followers.Remove(partition);
                await follower.DisposeAsync().ConfigureAwait(false);
            }

            if (partition.OpenFollower(_broker.Context) is { } log)
            {
                _followers[partition] = new PartitionFollower(partition, log, leadership, _node, _broker.Context, _logger);
                LogFollowing(_logger, partition.Stream.Name, partition.Id, leadership.Leader, leadership.Epoch);
            }

            return;
        }

        // Not a replica, or no leader: this broker plays no part until the metadata names one.
        await StepDownAsync(partition).ConfigureAwait(false);
        await StopFollowingAsync(partition, delete: false).ConfigureAwait(false);
    }

    private static async Task StepDownAsync(Partition partition)
    {
        if (partition.Runtime is not null)
        {
            await partition.CloseAsync(PartitionCloseReason.LeadershipLost).ConfigureAwait(false);
        }
    }

    private async Task StopFollowingAsync(Partition partition, bool delete)
    {
        if (_followers.Remove(partition, out var follower))
        {
            await follower.DisposeAsync().ConfigureAwait(false);
        }

        partition.CloseFollower(delete);
    }

    private void CheckLag()
    {
        foreach (var stream in _broker.Streams)
        {
            foreach (var partition in stream.Partitions)
            {
                partition.Runtime?.Replication?.CheckLag();
            }
        }
    }

    /// <summary>Stops following (closing the followers' logs); leaders close with the broker.</summary>
    public async ValueTask DisposeAsync()
    {
        _node.View.BeforePublish = null;
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        if (_lagTimer is not null)
        {
            await _lagTimer.DisposeAsync().ConfigureAwait(false);
        }

        await _broker.WithLockAsync(async () =>
        {
            foreach (var partition in _followers.Keys.ToList())
            {
                await StopFollowingAsync(partition, delete: false).ConfigureAwait(false);
            }
        }, CancellationToken.None).ConfigureAwait(false);
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Leading {Stream}/{Partition} at epoch {Epoch}, ISR [{Isr}]")]
    private static partial void LogLeading(ILogger logger, string stream, int partition, long epoch, string isr);

    [LoggerMessage(Level = LogLevel.Information, Message = "Following {Stream}/{Partition}: leader {Leader}, epoch {Epoch}")]
    private static partial void LogFollowing(ILogger logger, string stream, int partition, string leader, long epoch);

    [LoggerMessage(Level = LogLevel.Error, Message = "Applying the cluster metadata failed; trying again")]
    private static partial void LogReconcileFailed(ILogger logger, Exception exception);
}
