using Microsoft.Extensions.Logging;
using Sluice.Client.Grpc;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Internal;
using Sluice.Server.Streams;
using Sluice.Storage.Log;

namespace Sluice.Server.Cluster.Replication;

/// <summary>
/// Follows one partition's leader: first truncates whatever this replica holds beyond the end of its last
/// leader epoch on the leader (a tail the old leader never committed), then fetches over one
/// <c>sluice.internal.Replication/Fetch</c> stream, writing the leader's records with their offsets and
/// taking the leader's high watermark, each request telling the leader how far this replica has got.
/// </summary>
internal sealed partial class PartitionFollower : IAsyncDisposable
{
    public const string FetchMethod = "/" + ReplicationService.ServiceName + "/Fetch";
    public const string EpochEndMethod = "/" + ReplicationService.ServiceName + "/EpochEnd";

    /// <summary>Short: a new leader is often just opening its log, and every retry delay adds to a failover.</summary>
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromMilliseconds(250);

    private readonly Partition _partition;
    private readonly CommitLog _log;
    private readonly PartitionLeadership _leadership;
    private readonly ClusterNode _node;
    private readonly BrokerContext _context;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public PartitionFollower(Partition partition, CommitLog log, PartitionLeadership leadership, ClusterNode node, BrokerContext context, ILogger logger)
    {
        _partition = partition;
        _context = context;
        _log = log;
        _leadership = leadership;
        _node = node;
        _logger = logger;
        _loop = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
    }

    public PartitionLeadership Leadership => _leadership;

    private async Task RunAsync(CancellationToken stop)
    {
        var delay = TimeSpan.FromMilliseconds(50);
        var truncated = false;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var channel = _node.PeerChannel(_leadership.Leader) ?? throw new PartitionUnavailableException($"leader {_leadership.Leader} is not registered");
                if (!truncated)
                {
                    await TruncateAsync(channel, stop).ConfigureAwait(false);
                    _partition.PrepareWindowAsFollower(_context, _log);
                    truncated = true;
                }

                await FetchAsync(channel, stop).ConfigureAwait(false);
                delay = TimeSpan.FromMilliseconds(50);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (StorageErrors.IsDiskFull(ex))
            {
                _node.Storage.ReportFull(); // told to the leader with every fetch until there is room again
                LogWriteFailed(_logger, ex, _partition.Stream.Name, _partition.Id);
            }
            catch (Exception ex) when (ex is GrpcException or IOException or HttpRequestException or OperationCanceledException or TimeoutException or BrokerException or InvalidDataException or ObjectDisposedException)
            {
                LogFetchFailed(_logger, _partition.Stream.Name, _partition.Id, _leadership.Leader, ex.Message);
                if (ex is GrpcException { StatusCode: GrpcStatusCode.OutOfRange })
                {
                    truncated = false; // ahead of the leader: find the divergence again
                }
            }
            catch (CommitLogException ex)
            {
                LogWriteFailed(_logger, ex, _partition.Stream.Name, _partition.Id);
            }
            catch (Exception ex)
            {
                // Not expected, but a follower that stopped would leave this replica behind with nothing said.
                LogUnexpected(_logger, ex, _partition.Stream.Name, _partition.Id);
            }

            try
            {
                await Task.Delay(delay, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRetryDelay.Ticks));
        }
    }

    /// <summary>KIP-101: ask where this replica's last epoch ends on the leader and cut everything after it.</summary>
    private async Task TruncateAsync(GrpcChannel channel, CancellationToken stop)
    {
        var lastEpoch = _log.LastLeaderEpoch;
        if (lastEpoch < 0 || _log.NewestOffset < 0)
        {
            return;
        }

        var response = await channel.UnaryAsync(EpochEndMethod, new EpochEndRequest
        {
            Stream = _partition.Stream.Name,
            Partition = _partition.Id,
            ReplicaId = _node.BrokerId,
            BrokerLease = _node.Lease,
            LeaderEpoch = lastEpoch,
        }, EpochEndResponse.Parser, _node.FetchTimeout, stop).ConfigureAwait(false);

        // The leader's end of the largest epoch it has at or below ours; when that epoch is older than ours, our
        // records of it may also end earlier than the leader's, so take the smaller of the two.
        var end = Math.Min(response.EndOffset, _log.LastOffsetForLeaderEpoch(response.LeaderEpoch));
        if (end + 1 < _log.NextOffset)
        {
            LogTruncating(_logger, _partition.Stream.Name, _partition.Id, end + 1, _log.NewestOffset, lastEpoch);
            _log.Truncate(end + 1);
        }
    }

    private async Task FetchAsync(GrpcChannel channel, CancellationToken stop)
    {
        // A leader that stops answering (paused, cut off) ends the call after the fetch timeout plus its idle wait.
        // One timer, moved on every answer, rather than a token and a timer per answer.
        using var silence = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var limit = _node.FetchTimeout + _node.IdleWait;
        silence.CancelAfter(limit);

        // Answers are read on the connection's reader thread: applying one writes the log without blocking, and a
        // hop to the thread pool per answer would be a context switch each way.
        await using var call = channel.DuplexStreaming<FetchRequest, FetchResponse>(FetchMethod, FetchResponse.Parser.ParseFrom, timeout: null, inlineResponses: true, silence.Token);
        await call.WriteAsync(NextRequest(), stop).ConfigureAwait(false);
        while (true)
        {
            bool moved;
            try
            {
                moved = await call.MoveNextAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (silence.IsCancellationRequested && !stop.IsCancellationRequested && ex is GrpcException or OperationCanceledException)
            {
                throw new TimeoutException($"the leader sent nothing for {limit.TotalSeconds:0.#} s", ex);
            }

            if (!moved)
            {
                throw new PartitionUnavailableException("the leader ended the fetch stream");
            }

            silence.CancelAfter(limit);
            await ApplyAsync(call.Current, stop).ConfigureAwait(false);
            await call.WriteAsync(NextRequest(), stop).ConfigureAwait(false);
        }
    }

    private async Task ApplyAsync(FetchResponse response, CancellationToken stop)
    {
        if (response.Records.Length > 0)
        {
            var records = ReplicationFormat.Decode(response.Records.Memory);
            // Joins the traces of the leader's traced publishes among these records, else of the messages' own traceparent headers.
            var copy = Monitoring.ServerTracing.Enabled ? Monitoring.ServerTracing.StartFollowerCopy(_context.ServerId, _partition, records, response.Traced, _leadership.Leader) : null;
            try
            {
                await AppendRunsAsync(records, stop).ConfigureAwait(false);
            }
            catch (Exception ex) when (copy is not null)
            {
                copy.SetStatus(System.Diagnostics.ActivityStatusCode.Error, ex.Message);
                throw;
            }
            finally
            {
                copy?.Stop();
            }
        }

        var hw = Math.Min(response.HighWatermark, _log.NewestOffset);
        if (hw > _log.HighWatermark)
        {
            _log.SetHighWatermark(hw);
        }
    }

    private async Task AppendRunsAsync(LogRecord[] records, CancellationToken stop)
    {
        var start = 0;
        while (start < records.Length)
        {
            // A run of one epoch: the epoch is recorded where it starts, as the leader recorded it.
            var epoch = records[start].LeaderEpoch;
            var end = start;
            while (end < records.Length && records[end].LeaderEpoch == epoch)
            {
                end++;
            }

            if (records[start].Offset > _log.NewestOffset)
            {
                if (epoch > _log.LastLeaderEpoch)
                {
                    _log.NewLeaderEpoch(epoch);
                }
            }

            await _log.AppendReplicatedAsync(records.AsMemory(start, end - start), stop).ConfigureAwait(false);
            _partition.RememberReplicated(records.AsSpan(start, end - start));
            start = end;
        }
    }

    private FetchRequest NextRequest() => new()
    {
        Stream = _partition.Stream.Name,
        Partition = _partition.Id,
        ReplicaId = _node.BrokerId,
        BrokerLease = _node.Lease,
        FetchOffset = _log.NextOffset,
        LeaderEpoch = _leadership.Epoch,
        MaxBytes = _node.MaxFetchBytes,
        StorageFull = _node.Storage.IsFull,
    };

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Follower of {Stream}/{Partition}: fetching from {Leader} failed ({Reason}); retrying")]
    private static partial void LogFetchFailed(ILogger logger, string stream, int partition, string leader, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Follower of {Stream}/{Partition}: fetching failed unexpectedly; retrying")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string stream, int partition);

    [LoggerMessage(Level = LogLevel.Error, Message = "Follower of {Stream}/{Partition}: writing replicated records failed; retrying")]
    private static partial void LogWriteFailed(ILogger logger, Exception exception, string stream, int partition);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Follower of {Stream}/{Partition}: truncating offsets {From}..{To} (not on the leader after epoch {Epoch})")]
    private static partial void LogTruncating(ILogger logger, string stream, int partition, long from, long to, long epoch);
}
