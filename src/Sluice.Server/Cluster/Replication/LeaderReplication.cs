using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Api;
using Sluice.Protocol.Internal;
using Sluice.Server.Streams;
using Sluice.Storage.Log;

namespace Sluice.Server.Cluster.Replication;

/// <summary>
/// What a partition leader with followers adds to an append: the followers' positions, the high
/// watermark (the smallest log end over the ISR), ack policy ALL held until the high watermark covers
/// the message, min ISR, fencing (no acks while this broker's cluster lease is in doubt) and the ISR
/// changes it asks the controller for.
/// </summary>
/// <remarks>
/// A follower's position is the offset it asks for next: everything below it is in its log. A follower
/// is caught up when it asks for the offset after the leader's log end as it was when the leader last
/// answered it; it leaves the ISR when it has not been caught up for <c>replica.max.lag.time</c>, and
/// joins again once its position passes the high watermark.
/// <para>
/// A follower asked into the ISR counts in the high watermark from the moment it is asked for, not from when the
/// metadata confirms it (Kafka's "maximal ISR"): once etcd lists it, the controller may make it leader at any time
/// (a preferred-leader hand-back is immediate), so nothing may be committed that it does not hold. It stops counting
/// when the metadata lists it (it is a member then) or when an ISR without it has been written (a removal asked
/// for by the lag rule, which watches it as a member). A refused or unanswered request keeps it counting: an
/// earlier request may have been written while the controller's answer or view lagged.
/// </para>
/// </remarks>
internal sealed partial class LeaderReplication
{
    private readonly Lock _lock = new();
    private readonly Partition _partition;
    private readonly string _self;
    private readonly Func<bool> _isLive;
    private readonly Func<AlterIsrRequest, Task<bool>> _alterIsr;
    private readonly TimeSpan _maxLag;
    private readonly ILogger _logger;
    private readonly StorageHealth? _storage;
    private readonly Dictionary<string, FollowerProgress> _followers = new(StringComparer.Ordinal);
    private readonly Queue<Parked> _parked = new();
    private readonly Queue<(long Offset, ActivityContext Context)> _traced = new(); // traced messages not yet committed
    private volatile int _tracedCount;
    private FetchWaiter[] _fetchWaiters = []; // copied on change: read on every append without the lock
    private IReadOnlyList<string> _isr;
    private CommitLog? _log;
    private bool _stopped;
    private volatile bool _draining;
    private bool _isrChangeInFlight;
    private string? _joining;
    private volatile bool _resigning;

    public LeaderReplication(Partition partition, string self, PartitionLeadership leadership, Func<bool> isLive, Func<AlterIsrRequest, Task<bool>> alterIsr, TimeSpan maxLag, ILogger logger, StorageHealth? storage = null)
    {
        _storage = storage;
        _partition = partition;
        _self = self;
        Epoch = leadership.Epoch;
        Replicas = leadership.Replicas;
        _isr = leadership.Isr;
        _isLive = isLive;
        _alterIsr = alterIsr;
        _maxLag = maxLag;
        _logger = logger;
        foreach (var replica in Replicas.Where(r => r != self))
        {
            _followers[replica] = new FollowerProgress();
        }
    }

    public long Epoch { get; }

    public IReadOnlyList<string> Replicas { get; }

    public IReadOnlyList<string> Isr
    {
        get
        {
            lock (_lock)
            {
                return _isr;
            }
        }
    }

    /// <summary>Called once the leader's log is open.</summary>
    public void Attach(CommitLog log)
    {
        lock (_lock)
        {
            _log = log;
        }

        Advance();
    }

    /// <summary>Why a leader whose lease is in doubt refuses a message (before appending it).</summary>
    public const string FencedRefusal = Sluice.Protocol.Wire.PublishErrors.LeaderFenced;

    /// <summary>
    /// Refuses a message before it is appended: when this broker may no longer be the leader (its lease is
    /// in doubt), or, for ack policy ALL, when the ISR is smaller than the stream's min ISR.
    /// </summary>
    public void CheckAccepts(PublishItem item)
    {
        if (!_isLive())
        {
            throw new PartitionUnavailableException($"partition {_partition.Id} of stream {_partition.Stream.Name}: {FencedRefusal}");
        }

        if (_resigning)
        {
            throw new PartitionUnavailableException($"partition {_partition.Id} of stream {_partition.Stream.Name}: {Sluice.Protocol.Wire.PublishErrors.LeaderStorageFull}");
        }

        if (_draining)
        {
            throw new BrokerInternalException(Sluice.Protocol.Wire.PublishErrors.ShuttingDown);
        }

        var minIsr = _partition.Stream.Settings.MinIsr;
        if (item.AckPolicy == AckPolicy.All && Isr.Count < minIsr)
        {
            throw new PreconditionFailedException($"not enough in-sync replicas ({Isr.Count} < {minIsr})");
        }
    }

    /// <summary>
    /// After an append: messages with ack policy ALL wait for the high watermark (the caller sent the others'
    /// acks). Returns without waiting.
    /// </summary>
    public void OnAppended(PublishItem item, in CommitInfo commit)
    {
        lock (_lock)
        {
            if (_stopped)
            {
                Fail(item, Sluice.Protocol.Wire.PublishErrors.LeaderChanged);
                return;
            }

            var wait = item.Trace is null ? null : Monitoring.ServerTracing.StartReplicaWait(_self, _partition, item, commit.Offset, _isr.Count);
            _parked.Enqueue(new Parked(item, commit, wait));
        }
    }

    /// <summary>Most traced messages remembered for the followers' spans; past it the oldest are forgotten.</summary>
    private const int MaxTraced = 4096;

    /// <summary>A traced message was appended: its publish span's context goes to the followers with its records.</summary>
    public void NoteTraced(long offset, ActivityContext context)
    {
        lock (_lock)
        {
            _traced.Enqueue((offset, context));
            if (_traced.Count > MaxTraced)
            {
                _traced.Dequeue();
            }

            _tracedCount = _traced.Count;
        }
    }

    /// <summary>Adds the contexts of traced messages in [<paramref name="from"/>, <paramref name="to"/>) to a fetch answer.</summary>
    public void AddTraced(FetchResponse response, long from, long to)
    {
        if (_tracedCount == 0)
        {
            return; // tracing off, or nothing traced waiting: no lock
        }

        lock (_lock)
        {
            foreach (var (offset, context) in _traced)
            {
                if (offset >= from && offset < to)
                {
                    response.Traced.Add(new TracedRecord
                    {
                        Offset = offset,
                        Traceparent = $"00-{context.TraceId.ToHexString()}-{context.SpanId.ToHexString()}-{(int)context.TraceFlags:x2}",
                        Tracestate = context.TraceState ?? string.Empty,
                    });
                }
            }
        }
    }

    /// <summary>The end of an append batch: move the high watermark if the ISR allows it, and answer parked fetches.</summary>
    public void AfterBatch() => Advance();

    /// <summary>A follower's fetch stream parks here between answers (see <see cref="FetchWaiter"/>).</summary>
    public void AddFetchWaiter(FetchWaiter waiter)
    {
        bool stopped;
        lock (_lock)
        {
            _fetchWaiters = [.. _fetchWaiters, waiter];
            stopped = _stopped;
        }

        if (stopped)
        {
            waiter.Wake();
        }
    }

    public void RemoveFetchWaiter(FetchWaiter waiter)
    {
        lock (_lock)
        {
            _fetchWaiters = [.. _fetchWaiters.Where(w => !ReferenceEquals(w, waiter))];
        }
    }

    /// <summary>Resumes parked fetches that now have records or a higher high watermark to answer with, on this thread.</summary>
    private void WakeFetchers()
    {
        Interlocked.MemoryBarrier(); // the log's change is visible before a waiter's state is read (see FetchWaiter.WaitAsync)
        foreach (var waiter in Volatile.Read(ref _fetchWaiters))
        {
            waiter.WakeIfReady();
        }
    }

    /// <summary>
    /// A follower asked for <paramref name="fetchOffset"/>: it holds everything below. Returns the leader's log
    /// end to remember for this answer.
    /// </summary>
    public void OnFetch(string follower, long fetchOffset, bool storageFull = false)
    {
        bool expand, drop;
        lock (_lock)
        {
            if (!_followers.TryGetValue(follower, out var progress) || _log is not { } log)
            {
                return;
            }

            progress.Position = fetchOffset;
            if (fetchOffset >= progress.LogEndAtLastAnswer)
            {
                progress.CaughtUpAt = progress.AnsweredAt;
            }

            progress.LogEndAtLastAnswer = log.NextOffset;
            progress.AnsweredAt = Stopwatch.GetTimestamp();
            // A follower whose disk is full cannot catch up: it joins nobody's ISR (so no leadership comes back to it),
            // and a member leaves at once rather than after the lag time, during which every ALL ack would wait for it.
            var member = _isr.Contains(follower, StringComparer.Ordinal);
            expand = !member && !storageFull && fetchOffset > log.HighWatermark;
            drop = member && storageFull && fetchOffset < log.NextOffset;
        }

        Advance();
        if (expand)
        {
            RequestIsr(add: follower, remove: null);
        }
        else if (drop)
        {
            LogFollowerFull(_logger, _partition.Stream.Name, _partition.Id, follower);
            RequestIsr(add: null, remove: follower);
        }
    }

    /// <summary>
    /// An append failed for lack of space. With another in-sync replica to take over, this leader refuses new messages
    /// (before appending, so a resend is safe), lets the followers take what it has, and asks the controller to hand
    /// the partition over; returns true (the failed messages may be sent again, to the next leader). Alone in the ISR
    /// it keeps the leadership and returns false: its publishers see "no space left on device" until there is room.
    /// </summary>
    public bool StepDownForFullDisk()
    {
        _storage?.ReportFull();
        lock (_lock)
        {
            if (_stopped || !_isr.Any(m => m != _self))
            {
                return false;
            }

            if (_resigning)
            {
                return true;
            }

            _resigning = true;
        }

        LogResigning(_logger, _partition.Stream.Name, _partition.Id);
        _ = Task.Run(ResignAsync);
        return true;
    }

    private async Task ResignAsync()
    {
        try
        {
            // What is appended reaches the followers first, so the next leader does not cut it (a second at most:
            // nothing new is appended meanwhile).
            var started = Stopwatch.GetTimestamp();
            while (!Committed && Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(1))
            {
                await Task.Delay(10).ConfigureAwait(false);
            }

            for (var attempt = 0; attempt < 5; attempt++)
            {
                AlterIsrRequest request;
                lock (_lock)
                {
                    if (_stopped)
                    {
                        return;
                    }

                    request = new AlterIsrRequest { Stream = _partition.Stream.Name, Partition = _partition.Id, LeaderId = _self, LeaderEpoch = Epoch, Isr = { _isr.Where(m => m != _self) }, Resign = true };
                }

                try
                {
                    if (await _alterIsr(request).ConfigureAwait(false))
                    {
                        return; // the new leadership reaches this broker through the metadata, which stops this one
                    }
                }
                catch (Exception ex)
                {
                    LogAlterIsrFailed(_logger, ex, _partition.Stream.Name, _partition.Id);
                }

                await Task.Delay(500).ConfigureAwait(false);
            }

            LogResignRefused(_logger, _partition.Stream.Name, _partition.Id);
        }
        catch (Exception ex)
        {
            LogAlterIsrFailed(_logger, ex, _partition.Stream.Name, _partition.Id);
        }

        _resigning = false; // keep leading; the next failed append tries again
    }

    /// <summary>
    /// Periodic: drops followers that have not been caught up for the max lag time. While this broker's lease is in
    /// doubt it does that instead: messages waiting for ALL fail now (this broker may no longer be the leader, so it
    /// cannot say they are committed) rather than at their publishers' deadlines.
    /// </summary>
    public void CheckLag()
    {
        if (!_isLive())
        {
            FailParked();
            return;
        }

        string? laggard = null;
        lock (_lock)
        {
            foreach (var member in CountedLocked)
            {
                if (member != _self && _followers.TryGetValue(member, out var progress)
                    && Stopwatch.GetElapsedTime(Math.Max(progress.CaughtUpAt, progress.Since)) > _maxLag)
                {
                    laggard = member;
                    break;
                }
            }
        }

        if (laggard is not null)
        {
            LogLagging(_logger, _partition.Stream.Name, _partition.Id, laggard, _maxLag.TotalSeconds);
            RequestIsr(add: null, remove: laggard);
        }
    }

    /// <summary>The ISR the metadata now holds (same leader and epoch).</summary>
    public void UpdateIsr(IReadOnlyList<string> isr)
    {
        lock (_lock)
        {
            if (_joining is { } joining && isr.Contains(joining, StringComparer.Ordinal))
            {
                _joining = null; // a member now
            }

            if (isr.SequenceEqual(_isr, StringComparer.Ordinal))
            {
                return; // the same ISR, applied again (reconciliation re-applies every second): no lag clock restarts
            }

            foreach (var (id, follower) in _followers)
            {
                if (!_isr.Contains(id, StringComparer.Ordinal) && isr.Contains(id, StringComparer.Ordinal))
                {
                    follower.Since = Stopwatch.GetTimestamp(); // a member that just joined gets a whole lag window
                }
            }

            _isr = isr;
        }

        Advance();
    }

    /// <summary>The members whose positions bound the high watermark: the ISR, and a follower asked into it (see the remarks). Under the lock.</summary>
    private IEnumerable<string> CountedLocked => _joining is { } joining ? _isr.Append(joining) : _isr;

    /// <summary>
    /// A graceful stop is coming: refuse new messages (before appending them, so a resend is safe) and let the
    /// followers fetch what is appended, so <see cref="Committed"/> becomes true.
    /// </summary>
    public void Drain() => _draining = true;

    /// <summary>Whether the ISR has everything appended: no message waits for ALL, the high watermark is at the log end.</summary>
    public bool Committed
    {
        get
        {
            lock (_lock)
            {
                return _stopped || _log is null || (_parked.Count == 0 && _log.HighWatermark >= _log.NewestOffset);
            }
        }
    }

    /// <summary>Leadership ended: messages waiting for ALL fail (their fate is up to the next leader).</summary>
    public void Stop()
    {
        FetchWaiter[] waiters;
        lock (_lock)
        {
            _stopped = true;
            waiters = _fetchWaiters;
        }

        FailParked();
        foreach (var waiter in waiters)
        {
            waiter.Wake(); // their next look finds this leadership over
        }
    }

    private void FailParked()
    {
        List<Parked> failed;
        lock (_lock)
        {
            if (_parked.Count == 0)
            {
                return;
            }

            failed = [.. _parked];
            _parked.Clear();
        }

        foreach (var parked in failed)
        {
            Fail(parked.Item, Sluice.Protocol.Wire.PublishErrors.LeaderChanged, parked.Wait);
        }
    }

    private void Fail(PublishItem item, string reason, System.Diagnostics.Activity? wait = null)
    {
        Monitoring.ServerTracing.EndReplicaWait(wait, -1, reason);
        item.RefusalReason = reason;
        item.Receiver?.OnAck(item, _partition.ErrorAck(item, Ack.Types.Error.Unknown));
        item.Receiver?.FlushAcks();
    }

    /// <summary>Moves the high watermark, sends the acks it releases, then answers the fetches that were waiting for it or for records.</summary>
    private void Advance()
    {
        ReleaseCommitted();
        WakeFetchers();
    }

    private void ReleaseCommitted()
    {
        List<Parked>? released = null;
        var belowMinIsr = false;
        var releasedAt = -1L;
        lock (_lock)
        {
            if (_log is not { } log || _stopped || !_isLive())
            {
                return;
            }

            var hw = log.NewestOffset;
            foreach (var member in CountedLocked)
            {
                if (member != _self)
                {
                    hw = Math.Min(hw, _followers.TryGetValue(member, out var p) ? p.Position - 1 : -1);
                }
            }

            if (hw > log.HighWatermark)
            {
                log.SetHighWatermark(hw);
            }

            hw = log.HighWatermark;
            releasedAt = hw;
            while (_traced.TryPeek(out var traced) && traced.Offset <= hw)
            {
                _traced.Dequeue(); // every in-sync follower has copied it
            }

            _tracedCount = _traced.Count;
            while (_parked.TryPeek(out var next) && next.Commit.Offset <= hw)
            {
                (released ??= []).Add(_parked.Dequeue());
            }

            // The high watermark can pass a message because the ISR shrank, not because more replicas have it: below
            // min ISR an ALL ack would promise copies that may not exist (Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND).
            belowMinIsr = released is not null && _isr.Count < _partition.Stream.Settings.MinIsr;
        }

        if (released is null)
        {
            return;
        }

        if (belowMinIsr)
        {
            foreach (var parked in released)
            {
                Fail(parked.Item, Sluice.Protocol.Wire.PublishErrors.NotEnoughReplicasAfterAppend, parked.Wait);
            }

            return;
        }

        IAckReceiver? flushed = null;
        foreach (var parked in released)
        {
            if (parked.Wait is not null)
            {
                Monitoring.ServerTracing.EndReplicaWait(parked.Wait, releasedAt, failure: null);
            }

            System.Diagnostics.Activity? ack = null, publish = null;
            if (parked.Item.Trace is not null && parked.Item.Receiver is not null)
            {
                ack = Monitoring.ServerTracing.StartAck(_self, _partition, parked.Item, parked.Commit.Offset, out publish);
            }

            parked.Item.Receiver?.OnCommitted(parked.Item, parked.Commit);
            Monitoring.ServerTracing.EndAck(ack, publish);
        }

        foreach (var parked in released)
        {
            if (parked.Item.Receiver is { } receiver && receiver != flushed)
            {
                receiver.FlushAcks();
                flushed = receiver;
            }
        }
    }

    private void RequestIsr(string? add, string? remove)
    {
        AlterIsrRequest request;
        lock (_lock)
        {
            if (_isrChangeInFlight || _stopped)
            {
                return;
            }

            if (add is not null && (!_followers.TryGetValue(add, out var candidate) || _log is not { } log || candidate.Position <= log.HighWatermark))
            {
                return; // the high watermark moved past it since its fetch: asked again once it has caught up again
            }

            var isr = _isr.Where(m => m != remove).ToList();
            if (add is not null && !isr.Contains(add, StringComparer.Ordinal))
            {
                isr.Add(add);
            }

            _isrChangeInFlight = true;
            if (add is not null)
            {
                _joining = add; // counted in the high watermark from now on (see the remarks)
            }

            request = new AlterIsrRequest { Stream = _partition.Stream.Name, Partition = _partition.Id, LeaderId = _self, LeaderEpoch = Epoch, Isr = { isr } };
        }

        _ = Task.Run(async () =>
        {
            try
            {
                var applied = await _alterIsr(request).ConfigureAwait(false);
                lock (_lock)
                {
                    if (_joining is { } joining && applied && !request.Isr.Contains(joining))
                    {
                        _joining = null; // an ISR without it is what etcd holds now
                    }
                }
            }
            catch (Exception ex)
            {
                LogAlterIsrFailed(_logger, ex, _partition.Stream.Name, _partition.Id);
            }
            finally
            {
                lock (_lock)
                {
                    _isrChangeInFlight = false;
                }
            }
        });
    }

    private sealed class FollowerProgress
    {
        public long Position = -1;            // unknown until it fetches: holds the high watermark back while in the ISR
        public long LogEndAtLastAnswer = long.MaxValue;
        public long AnsweredAt = Stopwatch.GetTimestamp();
        public long CaughtUpAt = Stopwatch.GetTimestamp();
        public long Since = Stopwatch.GetTimestamp();
    }

    /// <summary>A message with ack policy ALL waiting for the ISR; <c>Wait</c> is its span when traced.</summary>
    private readonly record struct Parked(PublishItem Item, CommitInfo Commit, System.Diagnostics.Activity? Wait);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Partition {Stream}/{Partition}: follower {Follower} has not caught up for {Seconds} s; asking to remove it from the ISR")]
    private static partial void LogLagging(ILogger logger, string stream, int partition, string follower, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Partition {Stream}/{Partition}: follower {Follower} reports a full disk; asking to remove it from the ISR")]
    private static partial void LogFollowerFull(ILogger logger, string stream, int partition, string follower);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Partition {Stream}/{Partition}: no space left on device; handing the leadership to another in-sync replica")]
    private static partial void LogResigning(ILogger logger, string stream, int partition);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Partition {Stream}/{Partition}: the controller did not move the leadership off this full disk; keeping it and refusing publishes until there is room")]
    private static partial void LogResignRefused(ILogger logger, string stream, int partition);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Partition {Stream}/{Partition}: asking the controller for an ISR change failed; retried on the next check")]
    private static partial void LogAlterIsrFailed(ILogger logger, Exception exception, string stream, int partition);
}
