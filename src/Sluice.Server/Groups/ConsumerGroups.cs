using System.Globalization;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Internal;
using Sluice.Server.Configuration;
using Sluice.Server.Streams;
using Sluice.Storage.Metadata;
using Broker = Sluice.Server.Streams.Broker;

namespace Sluice.Server.Groups;

/// <summary>
/// Liftbridge's consumer groups (§3.8): join, leave, assignments with liveness, coordinator reports, and the
/// fencing of group members' subscriptions. Group state lives in the metadata store, one key per group
/// (<c>/sluice/groups/&lt;id&gt;</c>, the embedded store on a single node, etcd in a cluster), so a restart keeps
/// groups and the epoch (the key's revision) never goes backwards.
/// </summary>
/// <remarks>
/// Every broker keeps a copy of all groups, fed by a watch on the store and by its own writes. Changes are
/// compare-and-swap transactions on the group's key, so any broker can apply a join or a leave and two at
/// once never lose one another. Only the coordinator tracks liveness: a member that does not fetch its
/// assignments for <c>groups.consumer.timeout</c> is removed as Liftbridge does.
/// </remarks>
internal sealed partial class ConsumerGroups : IAsyncDisposable
{
    public const string KeyPrefix = "/sluice/groups/";

    public const string NotAssignedMessage = "Consumer is not currently assigned this partition"; // Liftbridge's text

    private readonly Broker _broker;
    private readonly IMetadataStore _store;
    private readonly IGroupPlacement _placement;
    private readonly GroupsOptions _options;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();

    /// <summary>Each group's latest state (null once deleted) with the revision it was seen at: older news is ignored.</summary>
    private readonly Dictionary<string, (GroupView? View, long Revision)> _groups = new(StringComparer.Ordinal);

    /// <summary>
    /// The revision up to which this server has seen every change of every group (the watch, or a full read). A deleted
    /// group's entry is dropped once this passes its deletion, and news of a group not known here at or below it is
    /// stale (a live group at or below it would be known), so dropped entries never come back from a late read.
    /// </summary>
    private long _seenThrough;

    /// <summary>On the coordinator: when each member last fetched its assignments (Environment.TickCount64).</summary>
    private readonly Dictionary<(string Group, string Consumer), long> _lastSeen = [];

    /// <summary>On a partition's leader: the group member subscribed to it, one per group and partition.</summary>
    private readonly Dictionary<(string Group, string Stream, int Partition), GroupFence> _fences = [];

    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _loops = [];

    public ConsumerGroups(Broker broker, IMetadataStore store, IGroupPlacement placement, ILoggerFactory loggers)
    {
        _broker = broker;
        _store = store;
        _placement = placement;
        _options = broker.Options.Groups;
        _logger = loggers.CreateLogger<ConsumerGroups>();
    }

    private string ServerId => _broker.ServerId;

    /// <summary>Loads the groups, then follows the store (groups and stream deletions) and expires silent members.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var revision = await LoadAsync(cancellationToken).ConfigureAwait(false);
        var token = _stopping.Token;
        _loops.Add(Task.Run(() => WatchGroupsAsync(revision + 1, token), CancellationToken.None));
        _loops.Add(Task.Run(() => WatchStreamDeletionsAsync(revision + 1, token), CancellationToken.None));
        _loops.Add(Task.Run(() => ExpireMembersAsync(token), CancellationToken.None));
        foreach (var view in Snapshot().Where(v => v.Coordinator == ServerId))
        {
            await DropDeletedStreamsAsync(view.Id, cancellationToken).ConfigureAwait(false); // a stream deleted while this server was down
        }

        await MoveFromDeadCoordinatorsAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The group as this server last saw it, or null.</summary>
    public GroupView? TryGet(string groupId)
    {
        lock (_gate)
        {
            return _groups.TryGetValue(groupId, out var entry) ? entry.View : null;
        }
    }

    public List<GroupView> Snapshot()
    {
        lock (_gate)
        {
            return [.. _groups.Values.Where(e => e.View is not null).Select(e => e.View!)];
        }
    }

    /// <summary>Every group as the store holds it now, by id (any broker answers the same).</summary>
    public async Task<List<GroupView>> ListAsync(CancellationToken cancellationToken)
    {
        var all = await _store.GetPrefixAsync(KeyPrefix, cancellationToken).ConfigureAwait(false);
        return [.. all.Kvs.Select(ViewOf).OrderBy(v => v.Id, StringComparer.Ordinal)];
    }

    /// <summary>On the group's coordinator: how long ago each member last fetched its assignments; empty elsewhere.</summary>
    public Dictionary<string, TimeSpan> HeartbeatAges(string groupId)
    {
        lock (_gate)
        {
            var now = Environment.TickCount64;
            return _lastSeen.Where(e => e.Key.Group == groupId)
                .ToDictionary(e => e.Key.Consumer, e => TimeSpan.FromMilliseconds(now - e.Value), StringComparer.Ordinal);
        }
    }

    // ---------------------------------------------------------------- the four RPCs

    public async Task<JoinConsumerGroupResponse> JoinAsync(JoinConsumerGroupRequest request, CancellationToken cancellationToken)
    {
        RequireIds(request.GroupId, request.ConsumerId);
        if (request.Streams.Count == 0)
        {
            throw new InvalidRequestException("No streams provided");
        }

        var (view, revision, _) = await MutateWithRevisionAsync(request.GroupId, current =>
        {
            if (current?.Member(request.ConsumerId) is not null)
            {
                throw new PreconditionFailedException("consumer is already a member of the consumer group");
            }

            foreach (var stream in request.Streams)
            {
                if (_placement.PartitionCount(stream) == 0)
                {
                    throw new PreconditionFailedException("stream does not exist");
                }
            }

            var next = current?.Record.Clone() ?? new ConsumerGroupRecord { Id = request.GroupId, Coordinator = _placement.ChooseCoordinator(CoordinatorLoad()) };
            next.Members.Add(new ConsumerGroupMember { Id = request.ConsumerId, Streams = { request.Streams.Distinct(StringComparer.Ordinal) } });
            Reassign(next);
            return next;
        }, cancellationToken).ConfigureAwait(false);

        LogJoined(_logger, request.ConsumerId, request.GroupId, view!.Epoch);
        await EmitActivityAsync(revision, new ActivityStreamEvent
        {
            Op = ActivityStreamOp.JoinConsumerGroup,
            JoinConsumerGroupOp = new JoinConsumerGroupOp { GroupId = request.GroupId, ConsumerId = request.ConsumerId, Streams = { request.Streams } },
            ConsumerGroupRebalanceOp = RebalanceOp(request.GroupId, view, "joined"),
        }).ConfigureAwait(false);

        // Groups keep their positions in cursors (__group:<groupId>): they need the cursors stream.
        await _placement.EnsureCursorsStreamAsync(cancellationToken).ConfigureAwait(false);
        return new JoinConsumerGroupResponse
        {
            Coordinator = view.Coordinator,
            Epoch = view.Epoch,
            ConsumerTimeout = Nanoseconds(_options.ConsumerTimeout),
            CoordinatorTimeout = Nanoseconds(_options.CoordinatorTimeout),
        };
    }

    public async Task LeaveAsync(LeaveConsumerGroupRequest request, CancellationToken cancellationToken)
    {
        RequireIds(request.GroupId, request.ConsumerId);
        await LeaveAsync(request.GroupId, request.ConsumerId, expired: false, cancellationToken).ConfigureAwait(false);
    }

    private async Task LeaveAsync(string groupId, string consumerId, bool expired, CancellationToken cancellationToken)
    {
        var (view, revision, _) = await MutateWithRevisionAsync(groupId, current =>
        {
            if (current is null)
            {
                throw new NotFoundException("consumer group does not exist");
            }

            if (current.Member(consumerId) is null)
            {
                throw new PreconditionFailedException("consumer is not a member of the consumer group");
            }

            var next = current.Record.Clone();
            next.Members.Remove(next.Members.First(m => m.Id == consumerId));
            if (next.Members.Count == 0)
            {
                return null; // the last member leaving deletes the group, as in Liftbridge
            }

            Reassign(next);
            return next;
        }, cancellationToken).ConfigureAwait(false);

        LogLeft(_logger, consumerId, groupId, expired ? "expired" : "left", view?.Epoch);
        await EmitActivityAsync(revision, new ActivityStreamEvent
        {
            Op = ActivityStreamOp.LeaveConsumerGroup,
            LeaveConsumerGroupOp = new LeaveConsumerGroupOp { GroupId = groupId, ConsumerId = consumerId, Expired = expired },
            ConsumerGroupRebalanceOp = RebalanceOp(groupId, view, expired ? "expired" : "left"),
        }).ConfigureAwait(false);
    }

    public async Task<FetchConsumerGroupAssignmentsResponse> FetchAssignmentsAsync(FetchConsumerGroupAssignmentsRequest request, CancellationToken cancellationToken)
    {
        RequireIds(request.GroupId, request.ConsumerId);
        var view = TryGet(request.GroupId);
        if (view is null || request.Epoch > view.Epoch)
        {
            view = await RefreshAsync(request.GroupId, cancellationToken).ConfigureAwait(false); // a change this server has not seen yet
        }

        if (view is null)
        {
            throw new NotFoundException("consumer group does not exist");
        }

        if (view.Coordinator != ServerId)
        {
            throw new PreconditionFailedException("broker is not the consumer group coordinator");
        }

        // Any fetch of a member is its heartbeat, one with an old epoch too (Liftbridge counts only a fetch with the
        // current epoch): during a burst of joins a live member whose fetches keep meeting a new epoch must not expire.
        var member = view.Member(request.ConsumerId);
        bool active;
        lock (_gate)
        {
            var key = (request.GroupId, request.ConsumerId);
            active = member is not null && _lastSeen.ContainsKey(key);
            if (active)
            {
                _lastSeen[key] = Environment.TickCount64;
            }
        }

        if (request.Epoch != view.Epoch)
        {
            throw new PreconditionFailedException("client-provided group epoch differs from broker group epoch");
        }

        if (member is null)
        {
            throw new PreconditionFailedException("consumer is not a member of the consumer group");
        }

        if (!active)
        {
            throw new GrpcException(GrpcStatusCode.Unknown, "consumer not active for server (no timer)"); // Liftbridge's answer for this race
        }

        var response = new FetchConsumerGroupAssignmentsResponse { Epoch = view.Epoch };
        response.Assignments.AddRange(member.Assignments.Select(a => a.Clone()));
        return response;
    }

    public async Task ReportCoordinatorAsync(ReportConsumerGroupCoordinatorRequest request, CancellationToken cancellationToken)
    {
        RequireIds(request.GroupId, request.ConsumerId);
        if (request.Coordinator.Length == 0)
        {
            throw new InvalidRequestException("No coordinator provided");
        }

        var view = TryGet(request.GroupId) ?? await RefreshAsync(request.GroupId, cancellationToken).ConfigureAwait(false)
            ?? throw new PreconditionFailedException($"No such consumer group {request.GroupId}");
        if (request.Coordinator != view.Coordinator || request.Epoch != view.Epoch)
        {
            throw new PreconditionFailedException(string.Create(
                CultureInfo.InvariantCulture,
                $"Coordinator generation mismatch, current coordinator: {view.Coordinator} epoch: {view.Epoch}, got coordinator: {request.Coordinator} epoch: {request.Epoch}"));
        }

        if (view.Member(request.ConsumerId) is null)
        {
            throw new PreconditionFailedException($"Consumer {request.ConsumerId} is not a member of consumer group {request.GroupId}");
        }

        // A coordinator is replaced when its broker is gone (lease lost), not on a vote of members: a member that
        // cannot reach a live coordinator has a network problem a new coordinator would not cure (docs/consumer-groups.md).
        if (!_placement.IsAlive(view.Coordinator))
        {
            await MoveCoordinatorAsync(view.Id, view.Coordinator, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Gives the groups of a broker that is gone to live ones (the controller calls this in a cluster).</summary>
    public async Task MoveCoordinatorAsync(string groupId, string deadCoordinator, CancellationToken cancellationToken)
    {
        var (view, revision, changed) = await MutateWithRevisionAsync(groupId, current =>
        {
            if (current is null || current.Coordinator != deadCoordinator || _placement.IsAlive(current.Coordinator))
            {
                return current?.Record; // moved already, or back
            }

            var load = CoordinatorLoad();
            load.Remove(deadCoordinator);
            var next = current.Record.Clone();
            next.Coordinator = _placement.ChooseCoordinator(load);
            return next;
        }, cancellationToken).ConfigureAwait(false);

        if (changed && view is not null && view.Coordinator != deadCoordinator)
        {
            LogCoordinatorMoved(_logger, groupId, deadCoordinator, view.Coordinator, view.Epoch);
            await EmitRebalanceAsync(revision, groupId, view, "coordinator moved").ConfigureAwait(false);
        }
    }

    private static void RequireIds(string groupId, string consumerId)
    {
        if (groupId.Length == 0)
        {
            throw new InvalidRequestException("No groupId provided");
        }

        if (consumerId.Length == 0)
        {
            throw new InvalidRequestException("No consumerId provided");
        }
    }

    private static long Nanoseconds(TimeSpan value) => value.Ticks * 100;

    private Dictionary<string, int> CoordinatorLoad()
    {
        var load = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var view in Snapshot())
        {
            load[view.Coordinator] = load.GetValueOrDefault(view.Coordinator) + 1;
        }

        return load;
    }

    private void Reassign(ConsumerGroupRecord record) => GroupAssignor.Assign(record.Members, _placement.PartitionCount);

    // ---------------------------------------------------------------- subscription fencing

    /// <summary>
    /// Checks a group member's Subscribe on this partition's leader: the epoch must be the group's current one and the
    /// partition assigned to the member. On success the subscription is registered: it ends (status OK) when the
    /// partition is given to another member or another subscription of the group takes it. Null when the stream or
    /// partition does not exist or another broker leads it: <see cref="Subscription"/> gives its usual answer then.
    /// </summary>
    public async Task<GroupFence?> FenceAsync(SubscribeRequest request, CancellationToken cancellationToken)
    {
        var consumer = request.Consumer;
        if (request.ReadISRReplica)
        {
            throw new InvalidRequestException("Consumer groups not compatible with ReadISRReplica");
        }

        if (!_broker.TryGetStream(request.Stream, out var stream) || !stream.TryGetPartition(request.Partition, out var partition)
            || (partition.Leadership is not null && partition.Runtime is null))
        {
            return null;
        }

        var view = TryGet(consumer.GroupId);
        if (view is null || view.Epoch < consumer.GroupEpoch)
        {
            await RefreshAsync(consumer.GroupId, cancellationToken).ConfigureAwait(false);
        }

        GroupFence fence;
        GroupFence? replaced;
        lock (_gate)
        {
            view = _groups.TryGetValue(consumer.GroupId, out var entry) ? entry.View : null;
            if (view is null)
            {
                throw new PreconditionFailedException($"consumer group {consumer.GroupId} does not exist");
            }

            if (view.Epoch != consumer.GroupEpoch)
            {
                throw new PreconditionFailedException(string.Create(CultureInfo.InvariantCulture, $"Consumer group epoch {consumer.GroupEpoch} is not the group's current epoch {view.Epoch}"));
            }

            if (!view.IsAssigned(consumer.ConsumerId, request.Stream, request.Partition))
            {
                throw new PreconditionFailedException(NotAssignedMessage);
            }

            var key = (consumer.GroupId, request.Stream, request.Partition);
            _fences.TryGetValue(key, out replaced);
            fence = new GroupFence(this, key, consumer.ConsumerId, cancellationToken);
            _fences[key] = fence;
        }

        replaced?.End();
        return fence;
    }

    private void Unregister(GroupFence fence)
    {
        lock (_gate)
        {
            if (_fences.TryGetValue(fence.Key, out var current) && current == fence)
            {
                _fences.Remove(fence.Key);
            }
        }
    }

    // ---------------------------------------------------------------- store

    private static byte[] Key(string groupId) => KeyRanges.Utf8(KeyPrefix + groupId);

    /// <summary>
    /// Applies <paramref name="change"/> to the group's current state as one compare-and-swap, retrying on a
    /// concurrent change. The change returns the new record, null to delete the group, or the current record
    /// itself for "nothing to do". It may throw to refuse.
    /// </summary>
    private async Task<(GroupView? View, long Revision, bool Changed)> MutateWithRevisionAsync(string groupId, Func<GroupView?, ConsumerGroupRecord?> change, CancellationToken cancellationToken)
    {
        var key = Key(groupId);
        while (true)
        {
            var read = await _store.RangeAsync(new RangeRequest(key), cancellationToken).ConfigureAwait(false);
            var current = read.Kvs.Count == 0 ? null : ViewOf(read.Kvs[0]);
            Apply(groupId, current, current?.ModRevision ?? read.Header.Revision);
            var next = change(current);
            if (current is not null && ReferenceEquals(next, current.Record))
            {
                return (current, current.ModRevision, false);
            }

            if (current is null && next is null)
            {
                return (null, read.Header.Revision, false);
            }

            var compare = current is null ? Compare.Version(key, CompareResult.Equal, 0) : Compare.ModRevision(key, CompareResult.Equal, current.ModRevision);
            var op = next is null ? RequestOp.ForDeleteRange(new DeleteRangeRequest(key)) : RequestOp.ForPut(new PutRequest(key, next.ToByteArray()));
            var response = await _store.TxnAsync(new TxnRequest { Compares = [compare], Success = [op] }, CancellationToken.None).ConfigureAwait(false);
            if (!response.Succeeded)
            {
                continue; // changed under us: decide again on the new state
            }

            var revision = response.Header.Revision;
            var view = next is null ? null : new GroupView(next, revision, current is null ? 0 : (ulong)revision);
            Apply(groupId, view, revision);
            return (view, revision, true);
        }
    }

    private static GroupView ViewOf(KeyValue kv) =>
        new(ConsumerGroupRecord.Parser.ParseFrom(kv.Value), kv.ModRevision, GroupView.EpochOf(kv.Version, kv.ModRevision));

    /// <summary>The group as the store holds it now (this server's copy is brought up to date too), or null.</summary>
    public async Task<GroupView?> RefreshAsync(string groupId, CancellationToken cancellationToken)
    {
        var read = await _store.RangeAsync(new RangeRequest(Key(groupId)), cancellationToken).ConfigureAwait(false);
        var view = read.Kvs.Count == 0 ? null : ViewOf(read.Kvs[0]);
        Apply(groupId, view, view?.ModRevision ?? read.Header.Revision);
        return TryGet(groupId);
    }

    private async Task<long> LoadAsync(CancellationToken cancellationToken)
    {
        var all = await _store.GetPrefixAsync(KeyPrefix, cancellationToken).ConfigureAwait(false);
        foreach (var kv in all.Kvs)
        {
            var view = ViewOf(kv);
            Apply(view.Id, view, kv.ModRevision);
        }

        SeenThrough(all.Header.Revision);
        return all.Header.Revision;
    }

    /// <summary>Records news of a group unless newer news is already in, then fixes liveness timers and fences.</summary>
    private void Apply(string groupId, GroupView? view, long revision)
    {
        List<GroupFence> ended = [];
        lock (_gate)
        {
            if (_groups.TryGetValue(groupId, out var known) ? known.Revision >= revision : view is null || revision <= _seenThrough)
            {
                return; // older news; or a group not known here that is gone, or was deleted before _seenThrough
            }

            _groups[groupId] = (view, revision);
            var now = Environment.TickCount64;
            foreach (var key in _lastSeen.Keys.Where(k => k.Group == groupId).ToList())
            {
                if (view is null || view.Coordinator != ServerId || view.Member(key.Consumer) is null)
                {
                    _lastSeen.Remove(key);
                }
            }

            if (view is not null && view.Coordinator == ServerId)
            {
                foreach (var member in view.Record.Members)
                {
                    _lastSeen.TryAdd((groupId, member.Id), now); // a new member, or this server just became coordinator
                }
            }

            foreach (var (key, fence) in _fences.Where(f => f.Key.Group == groupId).ToList())
            {
                if (view is null || !view.IsAssigned(fence.ConsumerId, key.Stream, key.Partition))
                {
                    _fences.Remove(key);
                    ended.Add(fence);
                }
            }
        }

        foreach (var fence in ended)
        {
            fence.End(); // outside the lock: cancelling runs the subscription's callbacks
        }
    }

    /// <summary>Every change up to <paramref name="revision"/> is in: deleted groups' entries at or below it go.</summary>
    private void SeenThrough(long revision)
    {
        lock (_gate)
        {
            if (revision <= _seenThrough)
            {
                return;
            }

            _seenThrough = revision;
            foreach (var (groupId, entry) in _groups.Where(e => e.Value.View is null && e.Value.Revision <= revision).ToList())
            {
                _groups.Remove(groupId);
            }
        }
    }

    /// <summary>Groups this server keeps an entry for, deleted ones not yet dropped included (tests watch it for leaks).</summary>
    internal int TrackedGroupCount
    {
        get
        {
            lock (_gate)
            {
                return _groups.Count;
            }
        }
    }

    // ---------------------------------------------------------------- activity

    /// <summary>
    /// Publishes a group change to <c>__activity</c> (when <c>activity.stream.enabled</c>), from the broker that made it,
    /// with the change's store revision as its id, like the stream events. Best effort, as those: a failure is logged.
    /// </summary>
    private async Task EmitActivityAsync(long revision, ActivityStreamEvent activity)
    {
        if (!_broker.Options.Activity.Enabled)
        {
            return;
        }

        activity.Id = (ulong)revision;
        try
        {
            await _broker.PublishActivityAsync(activity.ToByteArray(), _broker.Stopping).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or BrokerException or OperationCanceledException or Sluice.Storage.Log.CommitLogException)
        {
            LogActivityFailed(_logger, ex, activity.Op.ToString());
        }
    }

    /// <summary>A change of assignments or coordinator without a join or leave: Sluice's own op (docs/consumer-groups.md).</summary>
    private Task EmitRebalanceAsync(long revision, string groupId, GroupView view, string reason) =>
        EmitActivityAsync(revision, new ActivityStreamEvent { Op = ActivityStreamOp.RebalanceConsumerGroup, ConsumerGroupRebalanceOp = RebalanceOp(groupId, view, reason) });

    private static ConsumerGroupRebalanceOp RebalanceOp(string groupId, GroupView? view, string reason)
    {
        var op = new ConsumerGroupRebalanceOp { GroupId = groupId, Reason = reason, Deleted = view is null };
        if (view is not null)
        {
            op.Epoch = view.Epoch;
            op.Coordinator = view.Coordinator;
            op.Members.AddRange(view.Record.Members.Select(m => new ConsumerGroupMemberAssignments { ConsumerId = m.Id, Assignments = { m.Assignments.Select(a => a.Clone()) } }));
        }

        return op;
    }

    // ---------------------------------------------------------------- background work

    private async Task WatchGroupsAsync(long fromRevision, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await foreach (var response in _store.WatchPrefixAsync(KeyPrefix, fromRevision, cancellationToken).ConfigureAwait(false))
                {
                    foreach (var e in response.Events)
                    {
                        var groupId = e.Kv.KeyString[KeyPrefix.Length..];
                        Apply(groupId, e.Type == WatchEventType.Put ? ViewOf(e.Kv) : null, e.Kv.ModRevision);
                    }

                    SeenThrough(response.EventRevision);
                    fromRevision = response.EventRevision + 1;
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (CompactedException)
            {
                fromRevision = await ReloadAfterFailureAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is MetadataStoreException or IOException or InvalidOperationException or ObjectDisposedException)
            {
                LogWatchFailed(_logger, ex);
                fromRevision = await ReloadAfterFailureAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>After a broken watch: wait a little (the store may be down), then read everything again.</summary>
    private async Task<long> ReloadAfterFailureAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
                var all = await _store.GetPrefixAsync(KeyPrefix, cancellationToken).ConfigureAwait(false);
                var present = new HashSet<string>(StringComparer.Ordinal);
                foreach (var kv in all.Kvs)
                {
                    var view = ViewOf(kv);
                    present.Add(view.Id);
                    Apply(view.Id, view, kv.ModRevision);
                }

                foreach (var gone in Snapshot().Where(v => !present.Contains(v.Id)))
                {
                    Apply(gone.Id, null, all.Header.Revision);
                }

                SeenThrough(all.Header.Revision);
                return all.Header.Revision + 1;
            }
            catch (Exception ex) when (ex is MetadataStoreException or IOException)
            {
                LogWatchFailed(_logger, ex);
            }
        }
    }

    /// <summary>A deleted stream leaves every group (Liftbridge rebalances then); the group's coordinator rewrites it.</summary>
    private async Task WatchStreamDeletionsAsync(long fromRevision, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var request = WatchRequest.Prefix(StreamCatalog.StreamsPrefix) with { StartRevision = fromRevision, NoPut = true };
                await foreach (var response in _store.WatchAsync(request, cancellationToken).ConfigureAwait(false))
                {
                    foreach (var e in response.Events)
                    {
                        var stream = e.Kv.KeyString[StreamCatalog.StreamsPrefix.Length..];
                        foreach (var view in Snapshot().Where(v => v.Coordinator == ServerId && v.Record.Members.Any(m => m.Streams.Contains(stream))))
                        {
                            await DropDeletedStreamsAsync(view.Id, cancellationToken, stream).ConfigureAwait(false);
                        }
                    }

                    fromRevision = response.EventRevision + 1;
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is MetadataStoreException or IOException or InvalidOperationException or ObjectDisposedException or BrokerException)
            {
                LogWatchFailed(_logger, ex);
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
                fromRevision = _store.Revision + 1;
                foreach (var view in Snapshot().Where(v => v.Coordinator == ServerId))
                {
                    await DropDeletedStreamsAsync(view.Id, cancellationToken).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>
    /// Removes streams that no longer exist from the group's members and hands their partitions out again.
    /// <paramref name="deleted"/> counts as gone even if this broker's view still has it (the watch can be ahead of it).
    /// </summary>
    private async Task DropDeletedStreamsAsync(string groupId, CancellationToken cancellationToken, string? deleted = null)
    {
        var (view, revision, changed) = await MutateWithRevisionAsync(groupId, current =>
        {
            bool Exists(string s) => s != deleted && _placement.PartitionCount(s) > 0;
            if (current is null || current.Record.Members.All(m => m.Streams.All(Exists)))
            {
                return current?.Record;
            }

            var next = current.Record.Clone();
            foreach (var member in next.Members)
            {
                var kept = member.Streams.Where(Exists).ToList();
                member.Streams.Clear();
                member.Streams.AddRange(kept);
            }

            GroupAssignor.Assign(next.Members, s => Exists(s) ? _placement.PartitionCount(s) : 0);
            return next;
        }, cancellationToken).ConfigureAwait(false);
        if (changed && view is not null)
        {
            await EmitRebalanceAsync(revision, groupId, view, "stream deleted").ConfigureAwait(false);
        }
    }

    /// <summary>On the coordinator: removes members that have not fetched their assignments within the consumer timeout.</summary>
    private async Task ExpireMembersAsync(CancellationToken cancellationToken)
    {
        var timeout = (long)_options.ConsumerTimeout.TotalMilliseconds;
        // A tenth of the timeout keeps an expiry within 10 % of it; bounded so a long timeout still checks every second.
        var period = TimeSpan.FromMilliseconds(Math.Clamp(timeout / 10, 10, 1000));
        using var timer = new PeriodicTimer(period);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            List<(string Group, string Consumer)> expired;
            lock (_gate)
            {
                var now = Environment.TickCount64;
                expired = [.. _lastSeen.Where(e => now - e.Value > timeout).Select(e => e.Key)];
            }

            await MoveFromDeadCoordinatorsAsync(cancellationToken).ConfigureAwait(false);
            foreach (var (group, consumer) in expired)
            {
                try
                {
                    await LeaveAsync(group, consumer, expired: true, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is NotFoundException or PreconditionFailedException)
                {
                    lock (_gate)
                    {
                        _lastSeen.Remove((group, consumer)); // gone already
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogExpiryFailed(_logger, ex, consumer, group); // tried again on the next tick: the loop must outlive a failure
                }
            }
        }
    }

    /// <summary>On the controller (or a single node): groups whose coordinator's broker is gone get a live one.</summary>
    private async Task MoveFromDeadCoordinatorsAsync(CancellationToken cancellationToken)
    {
        if (!_placement.MovesDeadCoordinators)
        {
            return;
        }

        foreach (var view in Snapshot().Where(v => !_placement.IsAlive(v.Coordinator)))
        {
            try
            {
                await MoveCoordinatorAsync(view.Id, view.Coordinator, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogMoveFailed(_logger, ex, view.Id); // tried again on the next tick: the loop must outlive a failure
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        foreach (var loop in _loops)
        {
            try
            {
                await loop.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // stopping
            }
        }

        _stopping.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Consumer {Consumer} joined group {Group} (epoch {Epoch})")]
    private static partial void LogJoined(ILogger logger, string consumer, string group, ulong epoch);

    [LoggerMessage(Level = LogLevel.Information, Message = "Consumer {Consumer} {How} group {Group} (epoch {Epoch}; none: the group is gone)")]
    private static partial void LogLeft(ILogger logger, string consumer, string group, string how, ulong? epoch);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Consumer group {Group}: coordinator {From} is gone, {To} coordinates it now (epoch {Epoch})")]
    private static partial void LogCoordinatorMoved(ILogger logger, string group, string from, string to, ulong epoch);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Consumer groups: watching the metadata store failed; reading it again")]
    private static partial void LogWatchFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not give consumer group {Group} a new coordinator; trying again")]
    private static partial void LogMoveFailed(ILogger logger, Exception exception, string group);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not publish the {Op} activity event")]
    private static partial void LogActivityFailed(ILogger logger, Exception exception, string op);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not remove expired consumer {Consumer} from group {Group}; trying again")]
    private static partial void LogExpiryFailed(ILogger logger, Exception exception, string consumer, string group);

    /// <summary>A group member's subscription to one partition, ended when the member loses the partition.</summary>
    internal sealed class GroupFence : IDisposable
    {
        private readonly ConsumerGroups _owner;
        private readonly CancellationTokenSource _cts;
        private volatile bool _ended;

        public GroupFence(ConsumerGroups owner, (string Group, string Stream, int Partition) key, string consumerId, CancellationToken callToken)
        {
            _owner = owner;
            Key = key;
            ConsumerId = consumerId;
            _cts = CancellationTokenSource.CreateLinkedTokenSource(callToken);
        }

        public (string Group, string Stream, int Partition) Key { get; }

        public string ConsumerId { get; }

        /// <summary>Cancelled when the call ends or the member loses the partition.</summary>
        public CancellationToken Token => _cts.Token;

        /// <summary>True when the server ended the subscription (the partition moved): the call then ends with status OK.</summary>
        public bool Ended => _ended;

        public void End()
        {
            _ended = true;
            try
            {
                _cts.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // the call finished meanwhile
            }
        }

        public void Dispose()
        {
            _owner.Unregister(this);
            _cts.Dispose();
        }
    }
}
