using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Sluice.Client.Internal;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;

namespace Sluice.Client;

/// <summary>
/// A member of a consumer group (go-liftbridge's Consumer): the group shares the partitions of its streams among its
/// members, each partition read by one member at a time. Create it with <see cref="SluiceClient.CreateConsumer"/>,
/// start it with <see cref="SubscribeAsync"/>, dispose it to commit and leave the group.
/// </summary>
/// <remarks>
/// <para>
/// The member fetches its assignments from the group's coordinator every <see cref="ConsumerOptions.FetchInterval"/>
/// (its heartbeat), reads each assigned partition after the group's cursor (<c>__group:&lt;groupId&gt;</c>; from the
/// earliest message when there is none), and commits the offset of the last message whose handler has returned.
/// Positions are therefore at-least-once: a member that dies redelivers, on the partition's next owner, the messages
/// handled since its last commit; no message is skipped.
/// </para>
/// <para>
/// A rebalance, a stale epoch (FAILED_PRECONDITION), a moved coordinator or a broken connection make the member read
/// the group's coordinator and epoch again (FetchMetadata) and fetch anew, backing off while it fails. A partition
/// that moves away is stopped (its handler allowed to finish), committed, then reported to
/// <see cref="ConsumerOptions.PartitionsRevoked"/>. A handler that throws stops its partition; the next fetch reads
/// it again from the last message handled, so the failed message is delivered again.
/// </para>
/// </remarks>
public sealed class SluiceConsumer : IAsyncDisposable
{
    private const string CursorPrefix = "__group:";
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan LeaveTimeout = TimeSpan.FromSeconds(5);

    private readonly SluiceClient _client;
    private readonly ConsumerOptions _options;
    private readonly CancellationTokenSource _stop;
    private readonly ConcurrentDictionary<StreamPartition, Reader> _readers = new();
    private readonly HashSet<StreamPartition> _owned = [];
    private readonly Dictionary<StreamPartition, (int Failures, DateTime RetryAt)> _handlerFailures = []; // only on the loop
    private readonly ConcurrentDictionary<StreamPartition, byte> _noOffsetReported = new();
    private readonly SemaphoreSlim _commitGate = new(1, 1);
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private Func<SluiceMessage, CancellationToken, ValueTask>? _handler;
    private Task _loop = Task.CompletedTask;
    private TimeSpan _fetchInterval;
    private volatile string _coordinator = "";
    private ulong _epoch;
    private int _subscribed;
    private int _disposed;

    internal SluiceConsumer(SluiceClient client, string groupId, ConsumerOptions options)
    {
        _client = client;
        GroupId = groupId;
        _options = options;
        ConsumerId = options.ConsumerId ?? Nuid.Next();
        _stop = CancellationTokenSource.CreateLinkedTokenSource(client.ClosingToken);
    }

    /// <summary>The group.</summary>
    public string GroupId { get; }

    /// <summary>This member's id in the group.</summary>
    public string ConsumerId { get; }

    /// <summary>The streams the member reads (empty before <see cref="SubscribeAsync"/>).</summary>
    public IReadOnlyList<string> Streams { get; private set; } = [];

    /// <summary>The group epoch of the member's last assignment.</summary>
    public ulong Epoch => Interlocked.Read(ref _epoch);

    /// <summary>The partitions the member reads now.</summary>
    public IReadOnlyCollection<StreamPartition> Assignments => [.. _readers.Keys];

    private string CursorId => CursorPrefix + GroupId;

    /// <summary>
    /// Joins the group for <paramref name="streams"/> and starts reading its assigned partitions, calling
    /// <paramref name="handler"/> for each message, one at a time per partition (partitions run concurrently), in
    /// offset order. Returns once the member has joined; messages arrive as the assignments come in.
    /// </summary>
    /// <param name="streams">The streams to share with the group (all members should name the same).</param>
    /// <param name="handler">Called for every message; the message counts as handled (and is committed) once it returns.</param>
    /// <param name="cancellationToken">Cancels joining.</param>
    /// <exception cref="InvalidOperationException">The consumer is already subscribed.</exception>
    /// <exception cref="SluiceException">The join was refused (for example a stream that does not exist).</exception>
    public async Task SubscribeAsync(IEnumerable<string> streams, Func<SluiceMessage, CancellationToken, ValueTask> handler, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(streams);
        ArgumentNullException.ThrowIfNull(handler);
        var names = streams.Distinct(StringComparer.Ordinal).ToArray();
        if (names.Length == 0 || names.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("at least one stream, and no empty stream name, is needed", nameof(streams));
        }

        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (Interlocked.Exchange(ref _subscribed, 1) != 0)
        {
            throw new InvalidOperationException("A consumer subscribes once.");
        }

        Streams = names;
        _handler = handler;
        await JoinAsync(cancellationToken).ConfigureAwait(false);
        _loop = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
    }

    /// <summary>
    /// Joins the group for <paramref name="streams"/> and yields the messages of its assigned partitions (each partition in
    /// offset order, partitions interleaved). A message counts as handled, and is committed, once the enumeration moves
    /// past it (asks for the next one); ending the enumeration does not end membership: dispose the consumer for that.
    /// </summary>
    /// <param name="streams">The streams to share with the group.</param>
    /// <param name="cancellationToken">Ends the enumeration.</param>
    /// <exception cref="InvalidOperationException">The consumer is already subscribed.</exception>
    public async IAsyncEnumerable<SluiceMessage> ReadAllAsync(IEnumerable<string> streams, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        // Each partition's handler waits until its message has been moved past, so at most one message per partition waits here.
        var channel = Channel.CreateUnbounded<(SluiceMessage Message, TaskCompletionSource MovedPast, CancellationToken Token)>();
        await SubscribeAsync(
            streams,
            async (message, token) =>
            {
                var movedPast = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                await channel.Writer.WriteAsync((message, movedPast, token), token).ConfigureAwait(false);
                await movedPast.Task.WaitAsync(token).ConfigureAwait(false);
            },
            cancellationToken).ConfigureAwait(false);
        while (true)
        {
            var item = await channel.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (item.Token.IsCancellationRequested)
            {
                continue; // its partition was revoked meanwhile: the next owner delivers it
            }

            yield return item.Message;
            item.MovedPast.TrySetResult();
        }
    }

    /// <summary>Commits, for every partition the member reads, the offset of the last message whose handler has returned.</summary>
    /// <param name="cancellationToken">Cancels the commit.</param>
    public async Task CommitAsync(CancellationToken cancellationToken = default)
    {
        foreach (var reader in _readers.Values)
        {
            await CommitReaderAsync(reader, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Stops reading, commits what was handled, and leaves the group (its partitions move to the other members).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // RunAsync handles what it expects; anything else must not keep the member from committing and leaving.
            _client.Logger.LogConsumerStepFailed(ex, ConsumerId, GroupId, "fetching assignments");
        }
        var revoked = await StopReadersAsync(_readers.Keys.ToArray()).ConfigureAwait(false);
        if (Volatile.Read(ref _subscribed) != 0)
        {
            using var timeout = new CancellationTokenSource(LeaveTimeout);
            try
            {
                var request = new LeaveConsumerGroupRequest { GroupId = GroupId, ConsumerId = ConsumerId };
                await _client.InvokeAnyAsync("LeaveConsumerGroup", request, LeaveConsumerGroupResponse.Parser, RpcKind.Other, null, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SluiceException or OperationCanceledException or ObjectDisposedException)
            {
                // The coordinator expires the member after groups.consumer.timeout instead.
                _client.Logger.LogConsumerStepFailed(ex, ConsumerId, GroupId, "leave");
            }
        }

        await NotifyAsync(_options.PartitionsRevoked, revoked.Count > 0 ? revoked : [.. _owned]).ConfigureAwait(false);
        _owned.Clear();
        _stop.Dispose();
        _commitGate.Dispose();
        _wake.Dispose();
    }

    private async Task JoinAsync(CancellationToken cancellationToken)
    {
        var request = new JoinConsumerGroupRequest { GroupId = GroupId, ConsumerId = ConsumerId, Streams = { Streams } };
        try
        {
            var response = await _client.InvokeAnyAsync("JoinConsumerGroup", request, JoinConsumerGroupResponse.Parser, RpcKind.Other, null, cancellationToken).ConfigureAwait(false);
            _coordinator = response.Coordinator;
            Interlocked.Exchange(ref _epoch, response.Epoch);
            _fetchInterval = _options.FetchInterval ?? TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond, (long)(response.ConsumerTimeout / 100 * 0.4)));
            _client.Logger.LogConsumerJoined(ConsumerId, GroupId, response.Epoch, response.Coordinator);
        }
        catch (SluiceException ex) when (ex.StatusCode == GrpcStatusCode.FailedPrecondition && ex.Message.Contains("already a member", StringComparison.Ordinal))
        {
            // A restart with the same id before the coordinator expired the old member: carry on as that member.
            _fetchInterval = _options.FetchInterval ?? TimeSpan.FromSeconds(6);
            await RefreshGroupAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task RunAsync(CancellationToken stop)
    {
        var failures = 0;
        var lastCommit = DateTime.UtcNow;
        var autoCommit = _options.AutoCommitInterval;
        while (!stop.IsCancellationRequested)
        {
            var wait = _fetchInterval;
            try
            {
                var request = new FetchConsumerGroupAssignmentsRequest { GroupId = GroupId, ConsumerId = ConsumerId, Epoch = Epoch };
                var response = await _client.InvokeBrokerAsync(_coordinator, "FetchConsumerGroupAssignments", request, FetchConsumerGroupAssignmentsResponse.Parser, stop).ConfigureAwait(false);
                var retrySoon = await ReconcileAsync(response, stop).ConfigureAwait(false);
                failures = retrySoon ? failures + 1 : 0;
                if (retrySoon)
                {
                    wait = Backoff(failures, wait);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (ObjectDisposedException) when (stop.IsCancellationRequested || _client.ClosingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                failures++;
                _client.Logger.LogConsumerStepFailed(ex, ConsumerId, GroupId, "fetching assignments");
                var staleEpoch = ex is SluiceException { StatusCode: GrpcStatusCode.FailedPrecondition } && ex.Message.Contains("epoch", StringComparison.Ordinal);
                wait = staleEpoch && failures == 1 ? TimeSpan.Zero : Backoff(failures, wait);
                if (!await RecoverAsync(ex, stop).ConfigureAwait(false))
                {
                    return;
                }
            }

            if (autoCommit > TimeSpan.Zero && DateTime.UtcNow - lastCommit >= autoCommit)
            {
                lastCommit = DateTime.UtcNow;
                await TryCommitAsync(stop).ConfigureAwait(false);
            }

            if (autoCommit > TimeSpan.Zero && autoCommit < wait)
            {
                wait = autoCommit;
            }

            try
            {
                // A partition whose subscription ended (moved, refused, failed) wakes the loop to fetch at once.
                await _wake.WaitAsync(wait, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static TimeSpan Backoff(int failures, TimeSpan interval)
    {
        var backoff = TimeSpan.FromMilliseconds(50 * Math.Pow(2, Math.Min(failures, 10)));
        var limit = interval < MaxBackoff ? interval : MaxBackoff;
        return (backoff < limit ? backoff : limit) + TimeSpan.FromMilliseconds(Random.Shared.Next(20));
    }

    /// <summary>After a failed fetch: join again if the group forgot the member, else read the coordinator and epoch again.</summary>
    private async Task<bool> RecoverAsync(Exception cause, CancellationToken stop)
    {
        try
        {
            if (cause is SluiceException { StatusCode: GrpcStatusCode.NotFound } ||
                (cause is SluiceException { StatusCode: GrpcStatusCode.FailedPrecondition } && cause.Message.Contains("not a member", StringComparison.Ordinal)))
            {
                // Expired (the member did not fetch in time) or the group was deleted: join again.
                await JoinAsync(stop).ConfigureAwait(false);
                return true;
            }

            if (cause is BrokerUnavailableException && _coordinator.Length > 0)
            {
                // Liftbridge moves a coordinator its members report; Sluice moves one whose broker is gone.
                var report = new ReportConsumerGroupCoordinatorRequest { GroupId = GroupId, ConsumerId = ConsumerId, Coordinator = _coordinator, Epoch = Epoch };
                try
                {
                    await _client.InvokeAnyAsync("ReportConsumerGroupCoordinator", report, ReportConsumerGroupCoordinatorResponse.Parser, RpcKind.Other, null, stop).ConfigureAwait(false);
                }
                catch (SluiceException ex)
                {
                    // Typically "coordinator generation mismatch": the group already moved. Reading it again finds where.
                    _client.Logger.LogConsumerStepFailed(ex, ConsumerId, GroupId, "reporting the coordinator");
                }
            }

            await RefreshGroupAsync(stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return false;
        }
        catch (ObjectDisposedException)
        {
            return false; // the client was closed under the member: nothing left to recover with
        }
        catch (Exception ex) when (ex is SluiceException or OperationCanceledException)
        {
            _client.Logger.LogConsumerStepFailed(ex, ConsumerId, GroupId, "recovering");
        }

        return true;
    }

    private async Task RefreshGroupAsync(CancellationToken cancellationToken)
    {
        var metadata = await _client.FetchMetadataAsync(new FetchMetadataOptions { ConsumerGroups = [GroupId] }, cancellationToken).ConfigureAwait(false);
        if (metadata.GetConsumerGroup(GroupId) is { } group)
        {
            _coordinator = group.Coordinator;
            Interlocked.Exchange(ref _epoch, group.Epoch);
        }
    }

    /// <returns>Whether some assigned partition could not be subscribed (the loop then fetches again soon).</returns>
    private async Task<bool> ReconcileAsync(FetchConsumerGroupAssignmentsResponse response, CancellationToken stop)
    {
        Interlocked.Exchange(ref _epoch, response.Epoch);
        var assigned = response.Assignments.SelectMany(a => a.Partitions.Select(p => new StreamPartition(a.Stream, p))).ToHashSet();

        // Stop what moved away, and clear subscriptions that ended (committing them, so a new one starts after them).
        var stopping = _readers.Where(r => !assigned.Contains(r.Key) || r.Value.Loop.IsCompleted).Select(r => r.Key).ToArray();
        NoteHandlerFailures(stopping);
        await StopReadersAsync(stopping).ConfigureAwait(false);
        var revoked = _owned.Where(p => !assigned.Contains(p)).ToList();
        var added = assigned.Where(p => !_owned.Contains(p)).OrderBy(p => p.Stream, StringComparer.Ordinal).ThenBy(p => p.Partition).ToList();
        _owned.ExceptWith(revoked);
        if (revoked.Count > 0 || added.Count > 0)
        {
            _client.Logger.LogConsumerRebalanced(ConsumerId, GroupId, response.Epoch, string.Join(", ", added), string.Join(", ", revoked));
        }

        await NotifyAsync(_options.PartitionsRevoked, revoked).ConfigureAwait(false);
        await NotifyAsync(_options.PartitionsAssigned, added).ConfigureAwait(false);
        _owned.UnionWith(added);

        foreach (var partition in _handlerFailures.Keys.Where(p => !assigned.Contains(p)).ToList())
        {
            _handlerFailures.Remove(partition);
        }

        foreach (var partition in _noOffsetReported.Keys.Where(p => !assigned.Contains(p)))
        {
            _noOffsetReported.TryRemove(partition, out _);
        }

        var failed = false;
        var starting = new List<Task<bool>>();
        foreach (var partition in assigned.Where(p => !_readers.ContainsKey(p)))
        {
            if (_handlerFailures.TryGetValue(partition, out var failure) && failure.RetryAt > DateTime.UtcNow)
            {
                failed = true; // its handler failed lately: start it again after a pause, not in a tight loop
                continue;
            }

            starting.Add(TryStartReaderAsync(partition, response.Epoch, stop));
        }

        // Started together: a rebalance that hands over several partitions costs one round of calls, not one per partition.
        foreach (var started in await Task.WhenAll(starting).ConfigureAwait(false))
        {
            failed |= !started;
        }

        return failed;
    }

    private async Task<bool> TryStartReaderAsync(StreamPartition partition, ulong epoch, CancellationToken stop)
    {
        try
        {
            await StartReaderAsync(partition, epoch, stop).ConfigureAwait(false);
            return true;
        }
        catch (NoCommittedOffsetException ex)
        {
            // Not a transient failure: report it once per assignment, and look again on the regular fetches.
            _client.Logger.LogConsumerPartitionEnded(ConsumerId, partition.Stream, partition.Partition, ex.Message);
            if (_noOffsetReported.TryAdd(partition, 0))
            {
                await ReportErrorAsync(ex).ConfigureAwait(false);
            }

            return true;
        }
        catch (SluiceException ex)
        {
            // Typically the epoch moved on since this fetch (ConsumerFencedException): the next fetch learns the new one.
            _client.Logger.LogConsumerPartitionEnded(ConsumerId, partition.Stream, partition.Partition, ex.Message);
            return false;
        }
    }

    /// <summary>
    /// Delays the restart of partitions whose handler threw, doubling the pause (up to <see cref="MaxBackoff"/>) while
    /// the handler fails again without handling a message, so a message that always fails does not spin the loop.
    /// </summary>
    private void NoteHandlerFailures(IEnumerable<StreamPartition> stopping)
    {
        foreach (var partition in stopping)
        {
            var reader = _readers[partition];
            if (!reader.HandlerFailed)
            {
                _handlerFailures.Remove(partition);
                continue;
            }

            var failures = reader.Handled > reader.Started ? 1 : (_handlerFailures.TryGetValue(partition, out var f) ? f.Failures + 1 : 1);
            var pause = TimeSpan.FromMilliseconds(Math.Min(MaxBackoff.TotalMilliseconds, 100 * Math.Pow(2, failures - 1)));
            _handlerFailures[partition] = (failures, DateTime.UtcNow + pause);
        }
    }

    private async Task StartReaderAsync(StreamPartition partition, ulong epoch, CancellationToken stop)
    {
        var cursor = await _client.FetchCursorAsync(CursorId, partition.Stream, partition.Partition, stop).ConfigureAwait(false);
        if (cursor < 0 && _options.AutoOffsetReset == AutoOffsetReset.None)
        {
            throw new NoCommittedOffsetException($"no previous consumer group offset found for partition {partition.Partition} of stream {partition.Stream}");
        }

        var options = SubscribeOptions.Default with
        {
            Partition = partition.Partition,
            StartPosition = cursor >= 0 ? StartPosition.Offset : _options.AutoOffsetReset == AutoOffsetReset.Latest ? StartPosition.NewOnly : StartPosition.Earliest,
            StartOffset = cursor >= 0 ? cursor + 1 : 0,
            GroupConsumer = new Consumer { GroupId = GroupId, ConsumerId = ConsumerId, GroupEpoch = epoch },
        };
        var cancel = CancellationTokenSource.CreateLinkedTokenSource(stop);
        SluiceSubscription subscription;
        try
        {
            subscription = await _client.SubscribeCoreAsync(partition.Stream, options, stop).ConfigureAwait(false);
        }
        catch
        {
            cancel.Dispose();
            throw;
        }

        var reader = new Reader(partition, subscription, cancel, cursor);
        _readers[partition] = reader;
        reader.Loop = Task.Run(() => ReadAsync(reader), CancellationToken.None);
    }

    private async Task ReadAsync(Reader reader)
    {
        var token = reader.Cancel.Token;
        var reason = "ended by the server (the partition moved)";
        var inHandler = false;
        try
        {
            await foreach (var message in reader.Subscription.ReadAllAsync(token).ConfigureAwait(false))
            {
                inHandler = true;
                await _handler!(message, token).ConfigureAwait(false);
                inHandler = false;
                reader.Handled = message.Offset;
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            reason = "stopped";
        }
        catch (Exception ex) when (inHandler)
        {
            reason = "the handler failed";
            reader.HandlerFailed = true;
            _client.Logger.LogHandlerFailed(ex, reader.Partition.Stream, reader.Partition.Partition);
            await ReportErrorAsync(ex).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            reason = ex.Message; // the subscription failed (fenced, resubscribe gave up): the next fetch starts it again
        }

        _client.Logger.LogConsumerPartitionEnded(ConsumerId, reader.Partition.Stream, reader.Partition.Partition, reason);
        if (!token.IsCancellationRequested)
        {
            try
            {
                _wake.Release();
            }
            catch (ObjectDisposedException)
            {
                // disposing
            }
        }
    }

    /// <summary>Stops reading <paramref name="partitions"/>, lets their handlers return, and commits them.</summary>
    private async Task<List<StreamPartition>> StopReadersAsync(IReadOnlyList<StreamPartition> partitions)
    {
        var stopped = new List<StreamPartition>();
        foreach (var partition in partitions)
        {
            if (!_readers.TryGetValue(partition, out var reader))
            {
                continue;
            }

            await reader.Cancel.CancelAsync().ConfigureAwait(false);
            await reader.Loop.ConfigureAwait(false);
            await reader.Subscription.DisposeAsync().ConfigureAwait(false);
            using (var timeout = new CancellationTokenSource(LeaveTimeout))
            {
                await TryCommitAsync(reader, timeout.Token).ConfigureAwait(false);
            }

            _readers.TryRemove(partition, out _);
            reader.Cancel.Dispose();
            stopped.Add(partition);
        }

        return stopped;
    }

    private async Task TryCommitAsync(CancellationToken cancellationToken)
    {
        foreach (var reader in _readers.Values)
        {
            await TryCommitAsync(reader, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task TryCommitAsync(Reader reader, CancellationToken cancellationToken)
    {
        try
        {
            await CommitReaderAsync(reader, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SluiceException or OperationCanceledException or ObjectDisposedException)
        {
            // The position stays uncommitted: the partition's next reader sees those messages again.
            _client.Logger.LogConsumerStepFailed(ex, ConsumerId, GroupId, $"committing {reader.Partition}");
        }
    }

    private async Task CommitReaderAsync(Reader reader, CancellationToken cancellationToken)
    {
        await _commitGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var handled = reader.Handled;
            if (handled > reader.Committed)
            {
                await _client.SetCursorAsync(CursorId, reader.Partition.Stream, reader.Partition.Partition, handled, cancellationToken).ConfigureAwait(false);
                reader.Committed = handled;
            }
        }
        finally
        {
            _commitGate.Release();
        }
    }

    private async Task ReportErrorAsync(Exception error)
    {
        if (_options.OnError is not { } callback)
        {
            return;
        }

        try
        {
            await callback(error).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _client.Logger.LogConsumerCallbackFailed(ex, ConsumerId);
        }
    }

    private async Task NotifyAsync(Func<IReadOnlyList<StreamPartition>, ValueTask>? callback, List<StreamPartition> partitions)
    {
        if (callback is null || partitions.Count == 0)
        {
            return;
        }

        try
        {
            await callback(partitions).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _client.Logger.LogConsumerCallbackFailed(ex, ConsumerId);
        }
    }

    private sealed class Reader(StreamPartition partition, SluiceSubscription subscription, CancellationTokenSource cancel, long committed)
    {
        private long _handled = committed;
        private volatile bool _handlerFailed;

        public StreamPartition Partition { get; } = partition;

        public SluiceSubscription Subscription { get; } = subscription;

        public CancellationTokenSource Cancel { get; } = cancel;

        public Task Loop { get; set; } = Task.CompletedTask;

        /// <summary>The offset of the last message whose handler returned (the cursor's offset before the first).</summary>
        public long Handled
        {
            get => Interlocked.Read(ref _handled);
            set => Interlocked.Exchange(ref _handled, value);
        }

        /// <summary>The offset the reader started after.</summary>
        public long Started { get; } = committed;

        /// <summary>Whether the reader ended because the handler threw.</summary>
        public bool HandlerFailed
        {
            get => _handlerFailed;
            set => _handlerFailed = value;
        }

        /// <summary>The offset last committed (only under the commit gate).</summary>
        public long Committed { get; set; } = committed;
    }
}
