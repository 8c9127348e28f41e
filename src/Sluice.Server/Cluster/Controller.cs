using System.Diagnostics;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Api;
using Sluice.Protocol.Internal;
using Sluice.Server.Streams;
using Sluice.Storage.Metadata;

namespace Sluice.Server.Cluster;

/// <summary>
/// The one broker that makes the cluster's decisions: it places the replicas of new streams, elects a
/// partition's leader from its ISR when the leader's broker is gone (epoch + 1, the dead broker out of the
/// ISR in the same transaction), drops dead followers from ISRs, applies the ISR changes leaders ask for,
/// and moves leadership back to the preferred replica once it is in sync again.
/// </summary>
/// <remarks>
/// Election: whoever creates <c>/sluice/controller</c> under its broker lease is the controller until that
/// lease ends. Every decision is a transaction that compares the controller key's mod revision (so a deposed
/// controller's write fails) and the revision of what it changes (so a decision made on a stale view fails);
/// a failed decision is re-evaluated on the next view. Evaluation is level-triggered: each pass compares the
/// whole metadata with what it should be, so a lost write or a missed event is corrected by the next pass.
/// </remarks>
internal sealed partial class Controller : IAsyncDisposable
{
    private static readonly TimeSpan EvaluateEvery = TimeSpan.FromSeconds(1);

    private readonly IMetadataStore _store;
    private readonly ClusterView _view;
    private readonly Membership _membership;
    private readonly Func<ClusterSnapshot, IEnumerable<CreateStreamRequest>> _missingInternalStreams;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _decisions = new(1, 1);
    private Task _loop = Task.CompletedTask;
    private long _electedAt = Stopwatch.GetTimestamp();

    /// <param name="store">The shared metadata store.</param>
    /// <param name="view">This broker's view of it.</param>
    /// <param name="membership">This broker's registration (the controller key lives under its lease).</param>
    /// <param name="missingInternalStreams">The server's own streams (cursors, activity) not created yet, checked and ready to create.</param>
    /// <param name="logger">Where decisions are logged.</param>
    public Controller(IMetadataStore store, ClusterView view, Membership membership, Func<ClusterSnapshot, IEnumerable<CreateStreamRequest>> missingInternalStreams, ILogger logger)
    {
        _store = store;
        _view = view;
        _membership = membership;
        _missingInternalStreams = missingInternalStreams;
        _logger = logger;
    }

    /// <summary>True when this broker holds the controller key under its current lease.</summary>
    public bool IsController(ClusterSnapshot snapshot) =>
        snapshot.Controller is { } c && c.BrokerId == _membership.BrokerId && c.Lease == _membership.Lease && _membership.IsLive;

    public void Start() => _loop = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);

    private async Task RunAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var next = _view.NextChange;
            try
            {
                var snapshot = _view.Current;
                if (snapshot.Controller is null && _membership.Lease != 0)
                {
                    await CampaignAsync(stop).ConfigureAwait(false);
                }
                else if (IsController(snapshot))
                {
                    await EvaluateAsync(snapshot, stop).ConfigureAwait(false);
                }

                await next.WaitAsync(EvaluateEvery, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (TimeoutException)
            {
                // No change for a second: evaluate again (a lagging follower, a preferred leader back in the ISR).
            }
            catch (Exception ex)
            {
                // Any failure is retried: a controller loop that ended would leave failed leaders where they are.
                LogDecisionFailed(_logger, ex);
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

    private async Task CampaignAsync(CancellationToken cancellationToken)
    {
        var lease = _membership.Lease;
        var record = new ControllerRecord { BrokerId = _membership.BrokerId, Lease = lease };
        var key = ClusterKeys.ControllerKey;
        var txn = await _store.TxnAsync(new TxnRequest
        {
            Compares = [Compare.Version(key, CompareResult.Equal, 0)],
            Success = [RequestOp.ForPut(new PutRequest(key, record.ToByteArray()) { Lease = lease })],
        }, cancellationToken).ConfigureAwait(false);
        if (txn.Succeeded)
        {
            _electedAt = Stopwatch.GetTimestamp();
            LogElected(_logger, _membership.BrokerId, txn.Header.Revision);
            await _view.WaitForRevisionAsync(txn.Header.Revision, cancellationToken).ConfigureAwait(false);
        }
    }

    // ---------------------------------------------------------------- leadership

    private async Task EvaluateAsync(ClusterSnapshot snapshot, CancellationToken cancellationToken)
    {
        await _decisions.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // The server's own streams, once brokers starting together have had a lease TTL to join (a
            // replication factor of -1 means every broker registered at that moment, as in Liftbridge).
            if (Stopwatch.GetElapsedTime(_electedAt) >= _membership.Ttl)
            {
                foreach (var request in _missingInternalStreams(snapshot))
                {
                    try
                    {
                        var revision = await CreateLockedAsync(snapshot, request, cancellationToken).ConfigureAwait(false);
                        await _view.WaitForRevisionAsync(revision, cancellationToken).ConfigureAwait(false);
                    }
                    catch (StreamExistsException)
                    {
                        // Created meanwhile (the view was behind).
                    }
                }
            }

            foreach (var stream in snapshot.Streams.Values)
            {
                for (var id = 0; id < stream.Record.Replicas.Count; id++)
                {
                    var current = snapshot.Leadership(stream, id);
                    if (Desired(snapshot, current) is not { } desired)
                    {
                        continue;
                    }

                    if (await WriteLeaderAsync(snapshot, stream.Record.Request.Name, id, current, desired, cancellationToken).ConfigureAwait(false))
                    {
                        LogLeadership(_logger, stream.Record.Request.Name, id, current.Leader, desired.Leader, string.Join(",", desired.Isr), desired.LeaderEpoch);
                    }
                }
            }
        }
        finally
        {
            _decisions.Release();
        }
    }

    /// <summary>What a partition's leadership should become, or null when it is right as it is.</summary>
    internal static PartitionLeaderRecord? Desired(ClusterSnapshot snapshot, PartitionLeadership current)
    {
        var alive = current.Isr.Where(snapshot.IsAlive).ToList();
        if (current.Leader.Length > 0 && snapshot.IsAlive(current.Leader))
        {
            if (!alive.Contains(current.Leader, StringComparer.Ordinal))
            {
                alive.Insert(0, current.Leader);
            }

            var preferred = current.Replicas.Count > 0 ? current.Replicas[0] : current.Leader;
            if (preferred != current.Leader && alive.Contains(preferred, StringComparer.Ordinal))
            {
                return new PartitionLeaderRecord { Leader = preferred, Isr = { Ordered(current, alive) }, LeaderEpoch = current.Epoch + 1 };
            }

            return alive.Count == current.Isr.Count ? null : new PartitionLeaderRecord { Leader = current.Leader, Isr = { Ordered(current, alive) }, LeaderEpoch = current.Epoch };
        }

        // The leader is gone (or there was none): the first live in-sync replica in preference order leads.
        var candidate = current.Replicas.FirstOrDefault(r => alive.Contains(r, StringComparer.Ordinal));
        if (candidate is not null)
        {
            return new PartitionLeaderRecord { Leader = candidate, Isr = { Ordered(current, alive) }, LeaderEpoch = current.Epoch + 1 };
        }

        // No live in-sync replica: no leader. The ISR is kept, so whichever of them comes back first leads
        // (choosing an out-of-sync replica would lose acknowledged messages).
        return current.Leader.Length == 0 ? null : new PartitionLeaderRecord { Leader = string.Empty, Isr = { current.Isr }, LeaderEpoch = current.Epoch + 1 };
    }

    private static IEnumerable<string> Ordered(PartitionLeadership current, List<string> members) =>
        current.Replicas.Where(r => members.Contains(r, StringComparer.Ordinal));

    private async Task<bool> WriteLeaderAsync(ClusterSnapshot snapshot, string stream, int partition, PartitionLeadership current, PartitionLeaderRecord desired, CancellationToken cancellationToken)
    {
        var key = ClusterKeys.Leader(stream, partition);
        var txn = await _store.TxnAsync(new TxnRequest
        {
            Compares =
            [
                Compare.ModRevision(ClusterKeys.ControllerKey, CompareResult.Equal, snapshot.ControllerRevision),
                Compare.CreateRevision(KeyRanges.Utf8(StreamCatalog.StreamsPrefix + stream), CompareResult.Equal, snapshot.Streams[stream].CreateRevision),
                current.ModRevision == 0 ? Compare.Version(key, CompareResult.Equal, 0) : Compare.ModRevision(key, CompareResult.Equal, current.ModRevision),
            ],
            Success = [RequestOp.ForPut(new PutRequest(key, desired.ToByteArray()))],
        }, cancellationToken).ConfigureAwait(false);
        return txn.Succeeded;
    }

    /// <summary>A leader's request to change its partition's ISR; applied when the leader and epoch are still current.</summary>
    public async Task<AlterIsrResponse> AlterIsrAsync(AlterIsrRequest request, CancellationToken cancellationToken)
    {
        await _decisions.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var snapshot = _view.Current;
            if (!IsController(snapshot))
            {
                throw new PartitionUnavailableException("this broker is not the controller");
            }

            if (!snapshot.Streams.TryGetValue(request.Stream, out var stream) || request.Partition < 0 || request.Partition >= stream.Record.Replicas.Count)
            {
                throw new NotFoundException("No such partition");
            }

            var current = snapshot.Leadership(stream, request.Partition);
            if (request.Resign)
            {
                return await ResignLockedAsync(snapshot, request, current, cancellationToken).ConfigureAwait(false);
            }

            var isr = current.Replicas.Where(r => request.Isr.Contains(r) && (r == current.Leader || snapshot.IsAlive(r))).ToList();
            if (current.Leader != request.LeaderId || current.Epoch != request.LeaderEpoch || !isr.Contains(current.Leader, StringComparer.Ordinal))
            {
                return new AlterIsrResponse { Applied = false, Current = current.ToRecord() };
            }

            var desired = new PartitionLeaderRecord { Leader = current.Leader, Isr = { isr }, LeaderEpoch = current.Epoch };
            var applied = await WriteLeaderAsync(snapshot, request.Stream, request.Partition, current, desired, cancellationToken).ConfigureAwait(false);
            if (applied)
            {
                LogIsrChanged(_logger, request.Stream, request.Partition, string.Join(",", current.Isr), string.Join(",", isr));
            }

            return new AlterIsrResponse { Applied = applied, Current = applied ? desired : current.ToRecord() };
        }
        finally
        {
            _decisions.Release();
        }
    }

    /// <summary>
    /// A leader that cannot store (its disk is full) hands its partition to the first live member of the ISR it names,
    /// in preference order, with a new epoch; it leaves the ISR, so the preferred-leader rule does not hand the
    /// partition back until it has caught up again. Refused when the leader or epoch moved on, or nobody can take over.
    /// </summary>
    private async Task<AlterIsrResponse> ResignLockedAsync(ClusterSnapshot snapshot, AlterIsrRequest request, PartitionLeadership current, CancellationToken cancellationToken)
    {
        var isr = current.Replicas.Where(r => r != current.Leader && request.Isr.Contains(r) && current.Isr.Contains(r, StringComparer.Ordinal) && snapshot.IsAlive(r)).ToList();
        if (current.Leader != request.LeaderId || current.Epoch != request.LeaderEpoch || isr.Count == 0)
        {
            return new AlterIsrResponse { Applied = false, Current = current.ToRecord() };
        }

        var desired = new PartitionLeaderRecord { Leader = isr[0], Isr = { isr }, LeaderEpoch = current.Epoch + 1 };
        var applied = await WriteLeaderAsync(snapshot, request.Stream, request.Partition, current, desired, cancellationToken).ConfigureAwait(false);
        if (applied)
        {
            LogResigned(_logger, request.Stream, request.Partition, current.Leader, desired.Leader, desired.LeaderEpoch);
        }

        return new AlterIsrResponse { Applied = applied, Current = applied ? desired : current.ToRecord() };
    }

    // ---------------------------------------------------------------- streams

    /// <summary>
    /// Places a validated stream's replicas over the live brokers and writes it: fails with
    /// <see cref="StreamExistsException"/> if the name is taken. Returns the revision.
    /// </summary>
    public async Task<long> CreateStreamAsync(CreateStreamRequest request, CancellationToken cancellationToken)
    {
        await _decisions.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await CreateLockedAsync(_view.Current, request, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _decisions.Release();
        }
    }

    private async Task<long> CreateLockedAsync(ClusterSnapshot snapshot, CreateStreamRequest request, CancellationToken cancellationToken)
    {
        ThrowIfNotController(snapshot);
        if (snapshot.Streams.ContainsKey(request.Name))
        {
            throw new StreamExistsException();
        }

        var record = new StreamRecord { Request = request, CreationTimestamp = Partition.NowNanoseconds() };
        record.Replicas.AddRange(Place(snapshot, request.Partitions, request.ReplicationFactor));
        var key = KeyRanges.Utf8(StreamCatalog.StreamsPrefix + request.Name);
        var txn = await _store.TxnAsync(new TxnRequest
        {
            Compares =
            [
                Compare.ModRevision(ClusterKeys.ControllerKey, CompareResult.Equal, snapshot.ControllerRevision),
                Compare.Version(key, CompareResult.Equal, 0),
            ],
            Success =
            [
                RequestOp.ForDeleteRange(DeleteRangeRequest.Prefix(KeyRanges.Utf8(StreamCatalog.PartitionsPrefix + request.Name + "/"))),
                RequestOp.ForDeleteRange(DeleteRangeRequest.Prefix(ClusterKeys.LeadersOf(request.Name))),
                RequestOp.ForPut(new PutRequest(key, record.ToByteArray())),
            ],
        }, cancellationToken).ConfigureAwait(false);
        if (!txn.Succeeded)
        {
            ThrowIfNotController(_view.Current);
            throw new StreamExistsException();
        }

        LogCreated(_logger, request.Name, request.Partitions, request.ReplicationFactor);
        return txn.Header.Revision;
    }

    /// <summary>Removes a stream, its partition states and its leader keys in one transaction. Returns the revision.</summary>
    public async Task<long> DeleteStreamAsync(string name, CancellationToken cancellationToken)
    {
        await _decisions.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var snapshot = _view.Current;
            ThrowIfNotController(snapshot);
            if (!snapshot.Streams.ContainsKey(name))
            {
                throw new NotFoundException("stream does not exist");
            }

            var key = KeyRanges.Utf8(StreamCatalog.StreamsPrefix + name);
            var txn = await _store.TxnAsync(new TxnRequest
            {
                Compares = [Compare.ModRevision(ClusterKeys.ControllerKey, CompareResult.Equal, snapshot.ControllerRevision), Compare.Version(key, CompareResult.Greater, 0)],
                Success =
                [
                    RequestOp.ForDeleteRange(new DeleteRangeRequest(key)),
                    RequestOp.ForDeleteRange(DeleteRangeRequest.Prefix(KeyRanges.Utf8(StreamCatalog.PartitionsPrefix + name + "/"))),
                    RequestOp.ForDeleteRange(DeleteRangeRequest.Prefix(ClusterKeys.LeadersOf(name))),
                ],
            }, cancellationToken).ConfigureAwait(false);
            if (!txn.Succeeded)
            {
                ThrowIfNotController(_view.Current);
                throw new NotFoundException("stream does not exist");
            }

            return txn.Header.Revision;
        }
        finally
        {
            _decisions.Release();
        }
    }

    /// <summary>
    /// Changes the state records (paused, readonly and their timestamps) of some partitions of a stream, and
    /// optionally the stream record (resumeAll): puts in transactions of at most <see cref="StreamCatalog.MaxOpsPerTxn"/>,
    /// the stream record last, each comparing the controller key and the stream's create revision. An empty
    /// <paramref name="ids"/> means every partition. Returns the last revision, or 0 when nothing changed.
    /// </summary>
    public async Task<long> ChangePartitionsAsync(string name, IReadOnlyList<int> ids, Func<PartitionStateRecord, bool> change, Func<StreamRecord, bool>? changeStream, CancellationToken cancellationToken)
    {
        await _decisions.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var snapshot = _view.Current;
            ThrowIfNotController(snapshot);
            if (!snapshot.Streams.TryGetValue(name, out var stream))
            {
                throw new NotFoundException(ids.Count == 0 ? "stream not found" : "stream does not exist"); // Liftbridge's two texts
            }

            var count = stream.Record.Request.Partitions;
            if (ids.Any(id => id < 0 || id >= count))
            {
                throw new NotFoundException("partition does not exist");
            }

            var puts = new List<PutRequest>();
            foreach (var id in ids.Count == 0 ? Enumerable.Range(0, count) : ids.Distinct())
            {
                var state = snapshot.States.TryGetValue((name, id), out var current) ? current.Clone() : new PartitionStateRecord();
                if (change(state))
                {
                    puts.Add(new PutRequest(KeyRanges.Utf8(string.Concat(StreamCatalog.PartitionsPrefix, name, "/", id.ToString(System.Globalization.CultureInfo.InvariantCulture))), state.ToByteArray()));
                }
            }

            var record = stream.Record.Clone();
            if (changeStream?.Invoke(record) == true)
            {
                puts.Add(new PutRequest(KeyRanges.Utf8(StreamCatalog.StreamsPrefix + name), record.ToByteArray()));
            }

            var streamKey = KeyRanges.Utf8(StreamCatalog.StreamsPrefix + name);
            long revision = 0;
            foreach (var chunk in puts.Chunk(StreamCatalog.MaxOpsPerTxn))
            {
                var txn = await _store.TxnAsync(new TxnRequest
                {
                    Compares =
                    [
                        Compare.ModRevision(ClusterKeys.ControllerKey, CompareResult.Equal, snapshot.ControllerRevision),
                        Compare.CreateRevision(streamKey, CompareResult.Equal, stream.CreateRevision),
                    ],
                    Success = [.. chunk.Select(RequestOp.ForPut)],
                }, cancellationToken).ConfigureAwait(false);
                if (!txn.Succeeded)
                {
                    ThrowIfNotController(_view.Current);
                    throw new NotFoundException("stream does not exist"); // deleted (or re-created) meanwhile
                }

                revision = txn.Header.Revision;
            }

            return revision;
        }
        finally
        {
            _decisions.Release();
        }
    }

    private void ThrowIfNotController(ClusterSnapshot snapshot)
    {
        if (!IsController(snapshot))
        {
            throw new PartitionUnavailableException("this broker is no longer the controller; try again");
        }
    }

    /// <summary>
    /// Replicas for each partition: consecutive live brokers (by id) from a start that moves one broker per
    /// partition and per existing stream, so leaders (the first replica) spread over the brokers.
    /// </summary>
    internal static IEnumerable<PartitionReplicas> Place(ClusterSnapshot snapshot, int partitions, int replicationFactor)
    {
        var brokers = snapshot.Brokers.Keys.Order(StringComparer.Ordinal).ToArray();
        var offset = snapshot.Streams.Count + snapshot.Streams.Values.Sum(s => s.Record.Replicas.Count);
        for (var p = 0; p < partitions; p++)
        {
            var start = (offset + p) % brokers.Length;
            var replicas = new PartitionReplicas();
            for (var r = 0; r < replicationFactor; r++)
            {
                replicas.Replicas.Add(brokers[(start + r) % brokers.Length]);
            }

            yield return replicas;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
        _decisions.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Created stream {Stream}: {Partitions} partition(s), replication factor {ReplicationFactor}")]
    private static partial void LogCreated(ILogger logger, string stream, int partitions, int replicationFactor);

    [LoggerMessage(Level = LogLevel.Information, Message = "Broker {BrokerId} is the cluster controller (revision {Revision})")]
    private static partial void LogElected(ILogger logger, string brokerId, long revision);

    [LoggerMessage(Level = LogLevel.Information, Message = "Partition {Stream}/{Partition}: leader {From} -> {To}, ISR [{Isr}], epoch {Epoch}")]
    private static partial void LogLeadership(ILogger logger, string stream, int partition, string from, string to, string isr, long epoch);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Partition {Stream}/{Partition}: leader {From} has no space left; {To} leads now (epoch {Epoch})")]
    private static partial void LogResigned(ILogger logger, string stream, int partition, string from, string to, long epoch);

    [LoggerMessage(Level = LogLevel.Information, Message = "Partition {Stream}/{Partition}: ISR [{From}] -> [{To}]")]
    private static partial void LogIsrChanged(ILogger logger, string stream, int partition, string from, string to);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A controller decision failed; evaluating again")]
    private static partial void LogDecisionFailed(ILogger logger, Exception exception);
}
