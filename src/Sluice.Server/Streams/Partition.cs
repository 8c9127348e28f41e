// Failure policy: an append that throws (I/O error, log closed by a failed fsync) fails every
// message of that batch with Ack{UNKNOWN} and leaves the HW where it was; the partition keeps
// running and the next batch tries again. Nothing is acked before it is appended and committed.
// On restart the log recovers its torn tail (CommitLog.Open) and the HW checkpoint is capped at it.
// A log that cannot be opened (damaged, a segment or the whole directory missing, an I/O error)
// takes only this partition offline: it reports no leader and refuses publishes and subscribes
// with Unavailable naming the damage; the broker and every other partition keep serving.
using System.Buffers;
using System.Security.Cryptography;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Api;
using Sluice.Protocol.Internal;
using Sluice.Server.Encryption;
using Sluice.Storage.Log;

namespace Sluice.Server.Streams;

/// <summary>Why a partition's log was closed; readers turn it into their terminal status.</summary>
internal enum PartitionCloseReason
{
    Paused,
    Deleted,
    Stopping,

    /// <summary>Another broker leads the partition now (or none does): readers end with Unavailable and resubscribe there.</summary>
    LeadershipLost,
}

/// <summary>
/// One partition of a stream on this broker: its commit log, its ingest queue and writer loop, its
/// cleaner and auto-pause timers, and its durable state (paused, readonly, timestamps). While paused
/// the log is closed and nothing runs.
/// </summary>
/// <remarks>
/// Roles. On a single node the partition is its own sole replica: every append commits at once. In a
/// cluster (see <c>Cluster/ReplicaManager</c>) it leads with a <see cref="Cluster.Replication.LeaderReplication"/>
/// that holds the high watermark to the ISR, follows through a <see cref="Cluster.Replication.PartitionFollower"/>
/// that writes the leader's records into <see cref="FollowerLog"/>, or, on a broker that holds no replica,
/// only describes the partition (<see cref="Leadership"/>).
/// </remarks>
internal sealed partial class Partition : IDisposable
{
    /// <summary>Bounded so fast publishers wait for the writer instead of growing memory.</summary>
    private const int QueueCapacity = 16 * 1024;

    /// <summary>In-sync replicas: a single server is the only replica of its partitions.</summary>
    private const int IsrSize = 1;

    private readonly ILogger _logger;
    private readonly Func<Partition, Task> _autoPause;
    private readonly Func<Partition, Task>? _saveState;
    private readonly Lock _stateLock = new();
    private volatile PartitionRuntime? _runtime;
    private CancellationTokenSource _stateChanged = new();
    private volatile bool _paused;
    private volatile bool _readonly;
    private long _receivedFirst;
    private long _receivedLatest;
    private long _pauseFirst;
    private long _pauseLatest;
    private long _readonlyFirst;
    private long _readonlyLatest;
    private long _lastTimestamp;
    private int _subscribers;
    private bool _disposed;
    private long _lastActivityTicks;
    private long _minIsrLoggedAt = long.MinValue / 2;
    private ValueCipher? _cipher;
    private string? _cipherError;
    private volatile string? _offlineReason;
    private long _knownNextOffset;
    private bool _damaged;
    private Monitoring.ServerMetrics? _metrics;
    private string _brokerId = string.Empty;

    public Partition(MessageStream stream, int id, string directory, PartitionStateRecord? state, Func<Partition, Task> autoPause, ILogger logger, Func<Partition, Task>? saveState = null)
    {
        _saveState = saveState;
        Stream = stream;
        Id = id;
        Subject = Subjects.ForPartition(stream.Subject, id);
        SubjectUtf8 = System.Text.Encoding.UTF8.GetBytes(Subject);
        Directory = directory;
        _autoPause = autoPause;
        _logger = logger;
        if (state is not null)
        {
            _paused = state.Paused;
            _readonly = state.Readonly;
            _receivedFirst = state.MessagesReceivedFirst;
            _receivedLatest = state.MessagesReceivedLatest;
            _pauseFirst = state.PauseFirst;
            _pauseLatest = state.PauseLatest;
            _readonlyFirst = state.ReadonlyFirst;
            _readonlyLatest = state.ReadonlyLatest;
            _knownNextOffset = state.NextOffset;
        }
    }

    public MessageStream Stream { get; }

    public int Id { get; }

    /// <summary>The subject this partition takes messages from: the stream subject, or "subject.N" for N &gt; 0.</summary>
    public string Subject { get; }

    /// <summary><see cref="Subject"/> as UTF-8, encoded once for acks and the stored "subject" header. Do not change it.</summary>
    public byte[] SubjectUtf8 { get; }

    public string Directory { get; }

    public bool IsPaused => _paused;

    public bool IsReadonly => _readonly;

    /// <summary>Why the partition is offline (no server paths: clients see it), or null when it is not.</summary>
    public string? OfflineReason => _offlineReason;

    public bool IsOffline => _offlineReason is not null;

    /// <summary>The open log (leading or following), or null while paused or closed.</summary>
    public CommitLog? Log => _runtime?.Log ?? _followerLog;

    /// <summary>The log while this broker follows the partition; null otherwise.</summary>
    public CommitLog? FollowerLog => _followerLog;

    private volatile CommitLog? _followerLog;

    /// <summary>In a cluster: the partition's replicas, leader and ISR as the metadata says; null on a single node.</summary>
    public Cluster.PartitionLeadership? Leadership { get; set; }

    internal PartitionRuntime? Runtime => _runtime;

    /// <summary>Messages and bytes in and out, read by the metrics when scraped.</summary>
    internal Monitoring.PartitionTraffic Traffic { get; } = new();

    public int Subscribers => Volatile.Read(ref _subscribers);

    /// <summary>Cancelled (and replaced) whenever readonly changes, so waiting readers re-check their end.</summary>
    public CancellationToken StateChanged
    {
        get
        {
            lock (_stateLock)
            {
                return _disposed ? new CancellationToken(canceled: true) : _stateChanged.Token;
            }
        }
    }

    public long HighWatermark => Log?.HighWatermark ?? Volatile.Read(ref _closingLog)?.HighWatermark ?? _closedHighWatermark;

    public long NewestOffset => Log?.NewestOffset ?? Volatile.Read(ref _closingLog)?.NewestOffset ?? _closedNewestOffset;

    private long _closedHighWatermark = -1;
    private long _closedNewestOffset = -1;

    // A leader's log between leaving the runtime and its final offsets being recorded (a close awaits the NATS
    // unsubscribe and the writer): metadata read meanwhile must not fall back to older closed values.
    private CommitLog? _closingLog;

    public PartitionStateRecord ToRecord() => new()
    {
        Paused = _paused,
        Readonly = _readonly,
        MessagesReceivedFirst = Interlocked.Read(ref _receivedFirst),
        MessagesReceivedLatest = Interlocked.Read(ref _receivedLatest),
        PauseFirst = _pauseFirst,
        PauseLatest = _pauseLatest,
        ReadonlyFirst = _readonlyFirst,
        ReadonlyLatest = _readonlyLatest,
        NextOffset = IsOffline ? _knownNextOffset : Math.Max(_knownNextOffset, NewestOffset + 1), // offline: keep what the files no longer show
    };

    /// <summary>Liftbridge's metadata; an offline partition has no leader and an empty ISR (HW and newest offset -1).</summary>
    public PartitionMetadata ToMetadata(string serverId) => new()
    {
        Id = Id,
        Leader = Leadership is { } l ? l.Leader : IsOffline ? string.Empty : serverId,
        Replicas = { Leadership?.Replicas ?? [serverId] },
        Isr = { Leadership?.Isr ?? (IsOffline ? Array.Empty<string>() : [serverId]) },
        HighWatermark = HighWatermark,
        NewestOffset = NewestOffset,
        Paused = _paused,
        Readonly = _readonly,
        MessagesReceivedTimestamps = new PartitionEventTimestamps { FirstTimestamp = Interlocked.Read(ref _receivedFirst), LatestTimestamp = Interlocked.Read(ref _receivedLatest) },
        PauseTimestamps = new PartitionEventTimestamps { FirstTimestamp = _pauseFirst, LatestTimestamp = _pauseLatest },
        ReadonlyTimestamps = new PartitionEventTimestamps { FirstTimestamp = _readonlyFirst, LatestTimestamp = _readonlyLatest },
    };

    /// <summary>
    /// Opens the log and starts the writer loop and timers, leading the partition: alone on a single node
    /// (<paramref name="replication"/> null), or with followers. Caller holds the broker's metadata lock.
    /// </summary>
    public void Open(BrokerContext context, long leaderEpoch, Cluster.Replication.LeaderReplication? replication = null)
    {
        if (_runtime is not null)
        {
            return;
        }

        if (Stream.Settings.Encryption && _cipher is null)
        {
            try
            {
                _cipher = context.CreateCipher();
            }
            catch (PreconditionFailedException ex)
            {
                // The stream stays readable for metadata; publishes get Ack{ENCRYPTION}, subscribers Internal.
                _cipherError = ex.Message;
                LogNoCipher(_logger, Stream.Name, Id, ex.Message);
            }
        }

        _metrics = context.Metrics;
        _brokerId = context.ServerId;
        var log = OpenLog(context, leaderEpoch, soleReplica: replication is null);
        if (log is null)
        {
            return;
        }

        if (_duplicates?.Reflects(log.NewestOffset) != true)
        {
            RebuildDuplicateWindow(context, log); // a follower that kept its window up to date skips this (the hand-back pause)
        }

        replication?.Attach(log);

        Volatile.Write(ref _lastTimestamp, 0);
        Interlocked.Exchange(ref _lastActivityTicks, Environment.TickCount64);
        var batch = Stream.Settings.OptimisticConcurrencyControl ? 1 : Math.Max(1, context.Options.Batch.MaxMessages);
        var runtime = new PartitionRuntime(log, Channel.CreateBounded<PublishItem>(new BoundedChannelOptions(QueueCapacity)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait,
        }), batch)
        {
            // With durability "always" an append waits for its fsync: publishers then share one
            // group fsync through the loop rather than each holding the gate through their own.
            // With batch.max.time every message goes through the loop, which waits to fill batches.
            InlineAppends = log.Options.Durability != DurabilityPolicy.Always && context.Options.Batch.MaxTime <= TimeSpan.Zero,
            BatchWait = batch > 1 ? context.Options.Batch.MaxTime : TimeSpan.Zero,
            Replication = replication,
        };
        runtime.Writer = WriteLoopAsync(runtime); // returns at its first wait (an empty queue): no thread-pool hop, no closure
        StartTimers(runtime);
        _runtime = runtime;
        runtime.Feed = context.Nats?.Attach(this); // NATS hook: the leader subscribes to its subject while open
    }

    /// <summary>
    /// Opens the log and checks it against what the broker's metadata knows; null (and the partition
    /// offline) when its data is damaged or missing. The log skips a lost tail itself; this adds the
    /// offsets the metadata saw handed out, and the case of every file gone.
    /// </summary>
    private CommitLog? OpenLog(BrokerContext context, long leaderEpoch, bool soleReplica)
    {
        _offlineReason = null;
        _damaged = false;
        // What the metadata saw handed out is this broker's own record only as the sole replica: in a cluster the
        // state is shared, and a replica with missing or shorter files fetches what it lacks from the leader.
        var hadMessages = soleReplica && (_knownNextOffset > 0 || Interlocked.Read(ref _receivedFirst) != 0);
        if (hadMessages && !System.IO.Directory.Exists(Directory))
        {
            GoOffline("its data directory is missing", null);
            return null;
        }

        CommitLog log;
        try
        {
            log = CommitLog.Open(Directory, Stream.LogOptions(context), _logger);
        }
        catch (CorruptLogException ex)
        {
            _damaged = true;
            GoOffline($"its data is damaged: {ex.Description}", ex);
            return null;
        }
        catch (Exception ex) when (ex is CommitLogException or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            GoOffline("its data could not be read (an I/O error, logged on the server)", ex);
            return null;
        }

        if (hadMessages && log.NewestOffset < 0)
        {
            log.Dispose();
            GoOffline("its data files are missing", null);
            return null;
        }

        try
        {
            if (soleReplica && log.NextOffset < _knownNextOffset)
            {
                log.AdvanceTo(_knownNextOffset, $"the broker's metadata saw offsets up to {_knownNextOffset - 1} handed out");
            }

            if (leaderEpoch > log.LastLeaderEpoch)
            {
                log.NewLeaderEpoch(leaderEpoch);
            }

            // Sole replica: everything in the local log is committed. A crash between append and HW checkpoint must not
            // hide acked messages. A replicated partition keeps its checkpointed HW: the tail above it may be truncated.
            if (soleReplica && log.HighWatermark < log.NewestOffset)
            {
                log.SetHighWatermark(log.NewestOffset);
            }
        }
        catch (Exception ex) when (ex is CommitLogException or IOException or UnauthorizedAccessException)
        {
            log.Dispose();
            GoOffline("its data could not be written (an I/O error, logged on the server)", ex);
            return null;
        }

        if (log.LostTail is { } lost)
        {
            LogLostTail(_logger, Stream.Name, Id, lost.First, lost.Last, lost.Count);
        }

        return log;
    }

    /// <summary>
    /// Opens the log to follow another broker's lead: no writer loop, no NATS subscription, no timers; the
    /// follower writes what it fetches. Null when the log cannot be opened (the partition is offline).
    /// </summary>
    public CommitLog? OpenFollower(BrokerContext context)
    {
        if (_followerLog is { } open)
        {
            return open;
        }

        var log = OpenLog(context, leaderEpoch: -1, soleReplica: false);
        if (log is null && _damaged && System.IO.Directory.Exists(Directory))
        {
            // A follower's copy is only a copy: its damaged files are set aside (kept, never deleted here) and
            // the replica starts empty, fetching everything the leader has instead of going offline.
            var aside = $"{Directory}.damaged-{DateTime.UtcNow:yyyyMMdd'T'HHmmss'Z'}";
            System.IO.Directory.Move(Directory, aside);
            LogSetAside(_logger, Stream.Name, Id, aside);
            log = OpenLog(context, leaderEpoch: -1, soleReplica: false);
        }

        _followerLog = log;
        return log;
    }

    /// <summary>Closes the follower's log (the follower has stopped writing to it).</summary>
    public void CloseFollower(bool delete = false)
    {
        if (_followerLog is not { } log)
        {
            return;
        }

        // Recorded before the log leaves, so metadata read in between shows these, not older values.
        _closedHighWatermark = log.HighWatermark;
        _closedNewestOffset = log.NewestOffset;
        if (Interlocked.CompareExchange(ref _followerLog, null, log) != log)
        {
            return;
        }

        if (delete)
        {
            log.Delete();
        }
        else
        {
            log.Dispose();
        }
    }

    private void GoOffline(string reason, Exception? exception)
    {
        _offlineReason = reason;
        LogOffline(_logger, exception, Stream.Name, Id, reason);
    }

    /// <summary>Throws <see cref="PartitionUnavailableException"/> when the partition is offline.</summary>
    public void ThrowIfOffline()
    {
        if (_offlineReason is { } reason)
        {
            throw new PartitionUnavailableException($"partition {Id} of stream {Stream.Name} is offline: {reason}");
        }
    }

    /// <summary>Stops taking messages, writes what is queued, closes (or deletes) the log. Caller holds the metadata lock.</summary>
    public async Task CloseAsync(PartitionCloseReason reason)
    {
        var runtime = _runtime;
        if (runtime is null)
        {
            if (reason == PartitionCloseReason.Deleted && System.IO.Directory.Exists(Directory))
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }

            return;
        }

        Volatile.Write(ref _closingLog, runtime.Log);
        _runtime = null;
        runtime.Reason = reason;
        if (runtime.Feed is { } feed)
        {
            await feed.DisposeAsync().ConfigureAwait(false); // NATS hook: unsubscribe; messages published while closed are lost, as Liftbridge
        }

        runtime.Closing = true;
        runtime.Queue.Writer.TryComplete();
        runtime.Timers.ForEach(t => t.Dispose());
        await runtime.Writer.ConfigureAwait(false);
        await runtime.WriteGate.WaitAsync().ConfigureAwait(false); // an inline append still running; kept taken: no more
        runtime.Replication?.Stop(); // messages still waiting for the ISR fail: the next leader decides their fate
        _closedHighWatermark = runtime.Log.HighWatermark;
        _closedNewestOffset = runtime.Log.NewestOffset;
        Volatile.Write(ref _closingLog, null);
        if (reason == PartitionCloseReason.Deleted)
        {
            runtime.Log.Delete();
        }
        else
        {
            runtime.Log.Dispose();
        }
    }

    /// <summary>Marks paused (timestamps) without touching the log; the broker closes it.</summary>
    public void MarkPaused(bool paused, long nowNs)
    {
        _paused = paused;
        if (paused)
        {
            if (_pauseFirst == 0)
            {
                _pauseFirst = nowNs;
            }

            _pauseLatest = nowNs;
        }
    }

    /// <summary>Sets readonly; the readonly timestamps record every change, to false too, as Liftbridge's do.</summary>
    public void MarkReadonly(bool value, long nowNs)
    {
        _readonly = value;
        if (_readonlyFirst == 0)
        {
            _readonlyFirst = nowNs;
        }

        _readonlyLatest = nowNs;
        SignalStateChanged();
    }

    /// <summary>
    /// In a cluster: takes the paused and readonly flags, with their timestamps, as the controller decided them
    /// (the broker closes or opens the log). Readers re-check their end when readonly changes.
    /// </summary>
    public void ApplyClusterState(PartitionStateRecord state)
    {
        _paused = state.Paused;
        _pauseFirst = state.PauseFirst;
        _pauseLatest = state.PauseLatest;
        _readonlyFirst = state.ReadonlyFirst;
        _readonlyLatest = state.ReadonlyLatest;
        if (_readonly != state.Readonly)
        {
            _readonly = state.Readonly;
            SignalStateChanged();
        }
    }

    private void SignalStateChanged()
    {
        CancellationTokenSource old;
        lock (_stateLock)
        {
            if (_disposed)
            {
                return;
            }

            old = _stateChanged;
            _stateChanged = new CancellationTokenSource();
        }

        old.Cancel();
        old.Dispose();
    }

    /// <summary>Releases the readonly-change signal; the log is closed by <see cref="CloseAsync"/>.</summary>
    public void Dispose()
    {
        lock (_stateLock)
        {
            _disposed = true;
            _stateChanged.Dispose();
            _cipher?.Dispose();
        }
    }

    public void AddSubscriber() => Interlocked.Increment(ref _subscribers);

    public void RemoveSubscriber() => Interlocked.Decrement(ref _subscribers);

    /// <summary>
    /// Queues a message for the writer loop. Returns false when the partition is not open (paused or
    /// closing): the caller resumes it and tries again. Refuses oversized messages with Ack{TOO_LARGE}.
    /// </summary>
    /// <param name="item">The message.</param>
    /// <param name="maxPayloadBytes">Larger payloads get Ack{TOO_LARGE}.</param>
    /// <param name="cancellationToken">Stops waiting for queue space.</param>
    /// <param name="moreComing">The caller already has more messages in hand: queue this one for the
    /// writer loop, which appends a burst in one batch, instead of appending it on this thread.</param>
    public ValueTask<bool> EnqueueAsync(PublishItem item, long maxPayloadBytes, CancellationToken cancellationToken, bool moreComing = false)
    {
        var runtime = _runtime;
        if (runtime is null)
        {
            return new ValueTask<bool>(false);
        }

        if (item.PayloadSize > maxPayloadBytes)
        {
            // Quirk 14 (kept): error acks go out whatever the ack policy.
            item.Receiver?.OnAck(item, ErrorAck(item, Ack.Types.Error.TooLarge));
            item.Receiver?.FlushAcks();
            return new ValueTask<bool>(true);
        }

        runtime.Replication?.CheckAccepts(item); // min ISR and fencing refuse before anything is appended
        Interlocked.Exchange(ref _lastActivityTicks, Environment.TickCount64);

        // The writer loop idle and nothing queued: append on this thread. A hand-off to the loop is a
        // context switch each way, which on a 2-core machine costs more than the append itself.
        // Ordering holds because the loop reads the queue only while holding the same gate.
        if (!moreComing && runtime.InlineAppends && runtime.Queue.Reader.Count == 0 && runtime.WriteGate.Wait(0, CancellationToken.None))
        {
            if (runtime.Queue.Reader.Count == 0 && !runtime.Closing)
            {
                return AppendInlineAsync(runtime, item);
            }

            runtime.WriteGate.Release();
        }

        return runtime.Queue.Writer.TryWrite(item) ? new ValueTask<bool>(true) : EnqueueSlowAsync(runtime, item, cancellationToken);
    }

    /// <summary>Runs holding <see cref="PartitionRuntime.WriteGate"/>; releases it.</summary>
    private async ValueTask<bool> AppendInlineAsync(PartitionRuntime runtime, PublishItem item)
    {
        var items = ArrayPool<PublishItem>.Shared.Rent(1);
        try
        {
            items[0] = item;
            await AppendBatchAsync(runtime, items, 1).ConfigureAwait(false);
            return true;
        }
        finally
        {
            ArrayPool<PublishItem>.Shared.Return(items);
            runtime.WriteGate.Release();
        }
    }

    private static async ValueTask<bool> EnqueueSlowAsync(PartitionRuntime runtime, PublishItem item, CancellationToken cancellationToken)
    {
        try
        {
            await runtime.Queue.Writer.WriteAsync(item, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (ChannelClosedException)
        {
            return false;
        }
    }

    public Ack ErrorAck(PublishItem item, Ack.Types.Error error) => new()
    {
        Stream = Stream.Name,
        PartitionSubject = Subject,
        MsgSubject = item.Subject,
        AckInbox = item.AckInbox,
        CorrelationId = item.CorrelationId,
        AckPolicy = item.AckPolicy,
        AckError = error,
    };

    private async Task WriteLoopAsync(PartitionRuntime runtime)
    {
        var max = runtime.MaxBatch;
        var wait = runtime.BatchWait;
        var reader = runtime.Queue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            await runtime.WriteGate.WaitAsync().ConfigureAwait(false);
            // Scratch for this batch only: an idle partition holds no batch buffers (issue 22).
            var items = ArrayPool<PublishItem>.Shared.Rent(max);
            try
            {
                var n = 0;
                while (n < max)
                {
                    if (reader.TryRead(out var item))
                    {
                        items[n++] = item;
                        continue;
                    }

                    // batch.max.time (Liftbridge's leader loop): the queue ran dry before the batch
                    // filled, so give publishers that long to add more, then append what came.
                    if (wait <= TimeSpan.Zero || n == 0 || runtime.Closing)
                    {
                        break;
                    }

                    await Task.Delay(wait).ConfigureAwait(false);
                    if (reader.Count == 0)
                    {
                        break;
                    }
                }

                if (n > 0)
                {
                    await AppendBatchAsync(runtime, items, n).ConfigureAwait(false);
                }
            }
            finally
            {
                ArrayPool<PublishItem>.Shared.Return(items);
                runtime.WriteGate.Release();
            }
        }
    }

    /// <summary>Appends <c>items[0..n)</c> and acks them; the caller holds the write gate and clears nothing (this does).</summary>
    private async ValueTask AppendBatchAsync(PartitionRuntime runtime, PublishItem[] items, int n)
    {
        var records = ArrayPool<LogRecord>.Shared.Rent(n);
        // One span per batch, only when a message in it is traced (Monitoring/ServerTracing).
        var append = Monitoring.ServerTracing.Enabled ? Monitoring.ServerTracing.StartAppend(_brokerId, this, items, n) : null;
        var before = append is null ? 0 : runtime.Log.NextOffset;
        try
        {
            await AppendAsync(runtime, items, records, n).ConfigureAwait(false);
            Monitoring.ServerTracing.EndAppend(append, before, append is null ? 0 : (int)(runtime.Log.NextOffset - before), error: null);
        }
        catch (Exception ex)
        {
            Monitoring.ServerTracing.EndAppend(append, before, 0, ex);
            LogAppendFailed(_logger, ex, Stream.Name, Id);
            var reason = !StorageErrors.IsDiskFull(ex) ? null
                : runtime.Replication?.StepDownForFullDisk() == true ? Sluice.Protocol.Wire.PublishErrors.LeaderStorageFull
                : StorageErrors.DiskFullMessage;
            for (var i = 0; i < n; i++)
            {
                if (items[i] is { } failed) // null: refused before the append (encryption)
                {
                    failed.RefusalReason = reason;
                    failed.Receiver?.OnAck(failed, ErrorAck(failed, Ack.Types.Error.Unknown));
                }
            }
        }
        finally
        {
            SettleRepeats(runtime.Log);

            // Acks of a batch go out in one flush per receiver (usually one PublishAsync stream).
            IAckReceiver? flushed = null;
            for (var i = 0; i < n; i++)
            {
                if (items[i]?.Receiver is { } receiver && receiver != flushed)
                {
                    receiver.FlushAcks();
                    flushed = receiver;
                }
            }

            Array.Clear(items, 0, n);
            Array.Clear(records, 0, n);
            ArrayPool<LogRecord>.Shared.Return(records);
        }
    }

    private async ValueTask AppendAsync(PartitionRuntime runtime, PublishItem[] items, LogRecord[] records, int n)
    {
        var log = runtime.Log;
        // One timestamp per batch, never going backwards: timestamp lookups need a non-decreasing log.
        var now = Math.Max(NowNanoseconds(), Volatile.Read(ref _lastTimestamp));
        Volatile.Write(ref _lastTimestamp, now);
        var epoch = Math.Max(0, log.LastLeaderEpoch);
        n = DropRepeats(items, n, now);
        var kept = 0;
        for (var i = 0; i < n; i++)
        {
            var item = items[i];
            var value = item.Value;
            items[i] = null!;
            if (Stream.Settings.Encryption && value is { } plaintext)
            {
                if (!TrySeal(plaintext, out var sealedValue))
                {
                    item.Receiver?.OnAck(item, ErrorAck(item, Ack.Types.Error.Encryption));
                    continue;
                }

                value = sealedValue;
            }

            items[kept] = item;
            records[kept++] = new LogRecord { Timestamp = now, LeaderEpoch = epoch, Key = item.Key, Value = value, Headers = item.Headers };
        }

        n = kept;
        if (n == 0)
        {
            return;
        }

        if (n == 1 && items[0].ExpectedOffset != -1 && Stream.Settings.OptimisticConcurrencyControl)
        {
            long offset;
            try
            {
                offset = await log.AppendAsync(records.AsMemory(0, 1), items[0].ExpectedOffset).ConfigureAwait(false);
            }
            catch (IncorrectOffsetException)
            {
                items[0].Receiver?.OnAck(items[0], ErrorAck(items[0], Ack.Types.Error.IncorrectOffset));
                return;
            }

            Commit(runtime, items, 1, offset, now);
            return;
        }

        var first = await log.AppendAsync(records.AsMemory(0, n)).ConfigureAwait(false);
        Commit(runtime, items, n, first, now);
    }

    private bool TrySeal(ReadOnlyMemory<byte> plaintext, out ReadOnlyMemory<byte> sealedValue)
    {
        sealedValue = default;
        if (_cipher is not { } cipher)
        {
            return false;
        }

        try
        {
            sealedValue = cipher.Seal(plaintext.Span);
            return true;
        }
        catch (Exception ex) when (ex is CryptographicException or ObjectDisposedException)
        {
            LogSealFailed(_logger, ex, Stream.Name, Id);
            return false;
        }
    }

    /// <summary>
    /// The value a reader sees: decrypted on an encrypted stream. A value that cannot be decrypted ends the
    /// reader with <see cref="BrokerInternalException"/> (Internal).
    /// </summary>
    public ReadOnlyMemory<byte>? OpenValue(in LogRecord record)
    {
        if (!Stream.Settings.Encryption || record.Value is not { } value)
        {
            return record.Value;
        }

        if (_cipher is not { } cipher)
        {
            throw new BrokerInternalException($"failed to decrypt message value at offset {record.Offset}: {_cipherError}");
        }

        try
        {
            return cipher.Open(value.Span);
        }
        catch (Exception ex) when (ex is CryptographicException or ObjectDisposedException)
        {
            throw new BrokerInternalException($"failed to decrypt message value at offset {record.Offset}: {ex.Message}", ex);
        }
    }

    private void Commit(PartitionRuntime runtime, PublishItem[] items, int n, long first, long timestamp)
    {
        var log = runtime.Log;
        var replication = runtime.Replication;
        RememberIds(items, n, first, timestamp);

        // Sole replica (as Liftbridge's RF=1): the leader's write commits, HW = the batch's last offset.
        // A batch with an ALL message needs an ISR of min.insync.replicas, and this server's ISR is
        // itself: below that minimum nothing commits, the HW stays, ALL acks are not sent and only
        // LEADER acks are (Liftbridge's commit loop). With followers the ISR moves the HW instead, and
        // min ISR was checked before the append.
        var belowMinIsr = replication is null && Stream.Settings.MinIsr > IsrSize && HasAckPolicyAll(items, n);
        if (belowMinIsr)
        {
            var now = Environment.TickCount64;
            if (now - Interlocked.Read(ref _minIsrLoggedAt) >= 10_000) // at most every 10 s: this can be every batch
            {
                Interlocked.Exchange(ref _minIsrLoggedAt, now);
                LogBelowMinIsr(_logger, Stream.Name, Id, IsrSize, Stream.Settings.MinIsr);
            }
        }
        else if (replication is null)
        {
            log.SetHighWatermark(first + n - 1);
        }

        if (Interlocked.Read(ref _receivedFirst) == 0 && Interlocked.CompareExchange(ref _receivedFirst, timestamp, 0) == 0 && _knownNextOffset == 0)
        {
            // Saved once, off this path: after a crash before any other save, the state record still says
            // the partition had messages, so a lost directory is reported instead of served as empty.
            SaveStateSoon();
        }

        Interlocked.Exchange(ref _receivedLatest, timestamp);
        var commit = NowNanoseconds();
        long bytes = 0;
        long ackedAtCommit = 0;
        for (var i = 0; i < n; i++)
        {
            var item = items[i];
            bytes += (item.Key?.Length ?? 0) + (item.Value?.Length ?? 0);
            if (replication is not null && item.Trace is { } trace)
            {
                replication.NoteTraced(first + i, trace.Context); // the followers' spans join this publish's trace
            }

            if (item.Receiver is null || item.AckPolicy == AckPolicy.None || (belowMinIsr && item.AckPolicy == AckPolicy.All))
            {
                continue;
            }

            if (replication is not null && item.AckPolicy == AckPolicy.All)
            {
                replication.OnAppended(item, new CommitInfo(this, first + i, timestamp, commit)); // acked once the ISR has it
                continue;
            }

            System.Diagnostics.Activity? ack = null, publish = null;
            if (item.Trace is not null)
            {
                ack = Monitoring.ServerTracing.StartAck(_brokerId, this, item, first + i, out publish);
            }

            item.Receiver.OnCommitted(item, new CommitInfo(this, first + i, timestamp, commit));
            Monitoring.ServerTracing.EndAck(ack, publish);
            if (ackedAtCommit == 0)
            {
                ackedAtCommit = item.ReceivedAt;
            }
        }

        Traffic.AddIn(n, bytes);
        if (ackedAtCommit != 0)
        {
            // One sample per batch, its oldest acked message: a histogram record per message would cost more than the metric is worth.
            _metrics?.PublishAcked(ackedAtCommit);
        }

        replication?.AfterBatch();
    }

    private void SaveStateSoon()
    {
        if (_saveState is not { } save)
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            try
            {
                await save(this).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopping: the shutdown saves every partition's state.
            }
            catch (Exception ex)
            {
                LogSaveStateFailed(_logger, ex, Stream.Name, Id);
            }
        });
    }

    private static bool HasAckPolicyAll(PublishItem[] items, int n)
    {
        for (var i = 0; i < n; i++)
        {
            if (items[i].AckPolicy == AckPolicy.All)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The ack of a committed message, as a protobuf object.</summary>
    internal Ack NewAck(PublishItem item, in CommitInfo commit) => new()
    {
        Stream = Stream.Name,
        PartitionSubject = Subject, // quirk 5 (fixed): the partition's own subject
        MsgSubject = item.Subject,
        Offset = commit.Offset,
        AckInbox = item.AckInbox,
        CorrelationId = item.CorrelationId,
        AckPolicy = item.AckPolicy,
        ReceptionTimestamp = commit.ReceptionTimestamp,
        CommitTimestamp = commit.CommitTimestamp,
    };

    private void StartTimers(PartitionRuntime runtime)
    {
        var settings = Stream.Settings;
        if (settings.CleanerInterval > TimeSpan.Zero)
        {
            var interval = TimerPeriod(settings.CleanerInterval);
            runtime.Timers.Add(new Timer(_ => Clean(runtime), null, interval, interval));
        }

        if (settings.AutoPauseTime > TimeSpan.Zero)
        {
            // Check at half the pause time so a partition pauses at most ~1.5x autoPauseTime after its last message.
            var period = TimerPeriod(TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(10).Ticks, settings.AutoPauseTime.Ticks / 2)));
            runtime.Timers.Add(new Timer(_ => CheckAutoPause(runtime), null, period, period));
        }
    }

    /// <summary>A Timer takes at most 2^32-2 ms (~49.7 days); a longer interval (up to ~292 years is accepted) just checks more often.</summary>
    private static TimeSpan TimerPeriod(TimeSpan period) => period > MaxTimerPeriod ? MaxTimerPeriod : period;

    private static readonly TimeSpan MaxTimerPeriod = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    private void Clean(PartitionRuntime runtime)
    {
        if (!runtime.CleanerGate.Wait(0))
        {
            return; // the previous run is still going
        }

        try
        {
            runtime.Log.EnforceRetention();
            if (Stream.Settings.CompactEnabled)
            {
                runtime.Log.Compact();
            }
        }
        catch (CommitLogException) when (_runtime != runtime)
        {
            // Closed under the cleaner (pause, delete, stop): nothing to clean.
        }
        catch (Exception ex)
        {
            LogCleanerFailed(_logger, ex, Stream.Name, Id);
        }
        finally
        {
            runtime.CleanerGate.Release();
        }
    }

    private void CheckAutoPause(PartitionRuntime runtime)
    {
        if (_runtime != runtime || runtime.AutoPausing)
        {
            return;
        }

        if (!ShouldAutoPause())
        {
            return;
        }

        runtime.AutoPausing = true;
        _ = Task.Run(async () =>
        {
            try
            {
                await _autoPause(this).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                LogAutoPauseFailed(_logger, ex, Stream.Name, Id);
            }
            finally
            {
                runtime.AutoPausing = false;
            }
        });
    }

    /// <summary>
    /// Idle for autoPauseTime, everything replicated and, if the stream asks, without subscribers. Checked again under
    /// the broker's lock before pausing.
    /// </summary>
    public bool ShouldAutoPause()
    {
        var settings = Stream.Settings;
        if (settings.AutoPauseTime <= TimeSpan.Zero || _runtime is not { } runtime)
        {
            return false;
        }

        // A leader whose followers are still copying messages (ALL publishes waiting, or a high watermark behind the
        // log end) is not idle: pausing would fail those publishes as "leader changed".
        var idle = Environment.TickCount64 - Interlocked.Read(ref _lastActivityTicks);
        return idle >= settings.AutoPauseTime.TotalMilliseconds
            && !(settings.AutoPauseDisableIfSubscribers && Subscribers > 0)
            && runtime.Replication is not { Committed: false };
    }

    public static long NowNanoseconds() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;

    [LoggerMessage(Level = LogLevel.Error, Message = "Append to {Stream}/{Partition} failed; the batch was refused")]
    private static partial void LogAppendFailed(ILogger logger, Exception exception, string stream, int partition);

    [LoggerMessage(Level = LogLevel.Error, Message = "Cleaner of {Stream}/{Partition} failed; it runs again next interval")]
    private static partial void LogCleanerFailed(ILogger logger, Exception exception, string stream, int partition);

    [LoggerMessage(Level = LogLevel.Error, Message = "Encrypting a value for {Stream}/{Partition} failed; the message was refused with Ack{{ENCRYPTION}}")]
    private static partial void LogSealFailed(ILogger logger, Exception exception, string stream, int partition);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Encrypted stream {Stream}/{Partition} has no usable key: {Reason}")]
    private static partial void LogNoCipher(ILogger logger, string stream, int partition, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Unable to commit messages of {Stream}/{Partition}: ISR size ({IsrSize}) below minimum ({MinIsr}); acks of policy ALL are not sent")]
    private static partial void LogBelowMinIsr(ILogger logger, string stream, int partition, int isrSize, int minIsr);

    [LoggerMessage(Level = LogLevel.Error, Message = "Partition {Stream}/{Partition} is offline: {Reason}. The other partitions keep serving; restore its files from a backup, or delete and re-create the stream")]
    private static partial void LogOffline(ILogger logger, Exception? exception, string stream, int partition, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Partition {Stream}/{Partition} lost offsets {First}..{Last} ({Count} records, e.g. an OS crash under durability never); it continues after them and never hands them out again")]
    private static partial void LogLostTail(ILogger logger, string stream, int partition, long first, long last, long count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Saving the state of {Stream}/{Partition} after its first message failed; the next pause, readonly change or shutdown saves it")]
    private static partial void LogSaveStateFailed(ILogger logger, Exception exception, string stream, int partition);

    [LoggerMessage(Level = LogLevel.Error, Message = "Follower of {Stream}/{Partition}: its damaged copy was moved to {Aside}; fetching everything again from the leader")]
    private static partial void LogSetAside(ILogger logger, string stream, int partition, string aside);

    [LoggerMessage(Level = LogLevel.Error, Message = "Auto-pause of {Stream}/{Partition} failed")]
    private static partial void LogAutoPauseFailed(ILogger logger, Exception exception, string stream, int partition);
}

/// <summary>What exists only while a partition is open: the log, the queue, the writer loop, the timers.</summary>
internal sealed class PartitionRuntime(CommitLog log, Channel<PublishItem> queue, int maxBatch)
{
    public CommitLog Log { get; } = log;

    public Channel<PublishItem> Queue { get; } = queue;

    /// <summary>Held by whoever appends: the writer loop for a batch, or a publisher appending inline.</summary>
    public SemaphoreSlim WriteGate { get; } = new(1, 1);

    /// <summary>Whether publishers may append on their own thread when the loop is idle.</summary>
    public bool InlineAppends { get; init; }

    /// <summary>`batch.max.time`: how long the loop waits for more messages when the queue runs dry before a batch is full (zero: no wait).</summary>
    public TimeSpan BatchWait { get; init; }

    /// <summary>Set when the partition starts closing: inline appends stop, queued ones still drain.</summary>
    public volatile bool Closing;

    /// <summary>Most messages in one append batch; the batch's scratch arrays are rented per batch, not held.</summary>
    public int MaxBatch { get; } = maxBatch;

    public Task Writer { get; set; } = Task.CompletedTask;

    public List<Timer> Timers { get; } = [];

    public SemaphoreSlim CleanerGate { get; } = new(1, 1);

    public volatile bool AutoPausing;

    /// <summary>The followers' side of leading, in a cluster; null for a sole replica.</summary>
    public Cluster.Replication.LeaderReplication? Replication { get; init; }

    /// <summary>The NATS subscription feeding this partition while open, when NATS is configured.</summary>
    public Nats.PartitionFeed? Feed { get; set; }

    /// <summary>Set before the log closes; readers that see the log close read it to pick their status.</summary>
    public PartitionCloseReason? Reason { get; set; }
}
