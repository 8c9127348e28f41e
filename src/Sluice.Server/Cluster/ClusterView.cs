using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Internal;
using Sluice.Server.Streams;
using Sluice.Storage.Metadata;

namespace Sluice.Server.Cluster;

/// <summary>Leadership of one partition as the metadata says it now.</summary>
/// <param name="Replicas">Every replica, the preferred leader first.</param>
/// <param name="Leader">The leader's broker id, or empty when no in-sync replica is alive.</param>
/// <param name="Isr">The in-sync replicas (the leader among them).</param>
/// <param name="Epoch">The leader epoch: the stream's create revision, plus one for each change of leader.</param>
/// <param name="ModRevision">Revision of the leader key, 0 while the initial state holds (no key yet).</param>
internal sealed record PartitionLeadership(IReadOnlyList<string> Replicas, string Leader, IReadOnlyList<string> Isr, long Epoch, long ModRevision)
{
    public bool IsReplica(string brokerId) => Replicas.Contains(brokerId, StringComparer.Ordinal);

    public bool InIsr(string brokerId) => Isr.Contains(brokerId, StringComparer.Ordinal);

    public PartitionLeaderRecord ToRecord() => new() { Leader = Leader, Isr = { Isr }, LeaderEpoch = Epoch };
}

/// <summary>A stream as the metadata holds it: its record and the revision that created it.</summary>
internal sealed record StreamEntry(StreamRecord Record, long CreateRevision);

/// <summary>One consistent picture of the cluster's metadata at <see cref="Revision"/>. Immutable.</summary>
internal sealed class ClusterSnapshot
{
    public static ClusterSnapshot Empty { get; } = new();

    public long Revision { get; init; }

    public ImmutableDictionary<string, BrokerRecord> Brokers { get; init; } = ImmutableDictionary.Create<string, BrokerRecord>(StringComparer.Ordinal);

    public ControllerRecord? Controller { get; init; }

    /// <summary>Mod revision of the controller key (every controller decision compares it).</summary>
    public long ControllerRevision { get; init; }

    public ImmutableDictionary<string, StreamEntry> Streams { get; init; } = ImmutableDictionary.Create<string, StreamEntry>(StringComparer.Ordinal);

    public ImmutableDictionary<(string Stream, int Partition), (PartitionLeaderRecord Record, long ModRevision)> Leaders { get; init; } =
        ImmutableDictionary<(string, int), (PartitionLeaderRecord, long)>.Empty;

    public ImmutableDictionary<(string Stream, int Partition), PartitionStateRecord> States { get; init; } =
        ImmutableDictionary<(string, int), PartitionStateRecord>.Empty;

    public bool IsAlive(string brokerId) => Brokers.ContainsKey(brokerId);

    /// <summary>The leadership of a partition of a known stream; the initial state when no leader key was written.</summary>
    public PartitionLeadership Leadership(StreamEntry stream, int partition)
    {
        var replicas = partition < stream.Record.Replicas.Count ? (IReadOnlyList<string>)[.. stream.Record.Replicas[partition].Replicas] : [];
        if (Leaders.TryGetValue((stream.Record.Request.Name, partition), out var written))
        {
            return new PartitionLeadership(replicas, written.Record.Leader, [.. written.Record.Isr], written.Record.LeaderEpoch, written.ModRevision);
        }

        return new PartitionLeadership(replicas, replicas.Count > 0 ? replicas[0] : string.Empty, replicas, stream.CreateRevision, 0);
    }
}

/// <summary>
/// Follows everything under <c>/sluice/</c>: reads it once, then watches from the next revision, and
/// publishes a new <see cref="ClusterSnapshot"/> for each revision. A watch that meets a compacted
/// revision, or fails, reads the whole prefix again.
/// </summary>
internal sealed partial class ClusterView : IAsyncDisposable
{
    private readonly IMetadataStore _store;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _waitersLock = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile ClusterSnapshot _current = ClusterSnapshot.Empty;
    private Task _loop = Task.CompletedTask;

    public ClusterView(IMetadataStore store, ILogger logger)
    {
        _store = store;
        _logger = logger;
    }

    public ClusterSnapshot Current => _current;

    /// <summary>
    /// Runs on each new snapshot before <see cref="Current"/> shows it, so what this broker acts on at once (a leader's
    /// ISR for min ISR) is never behind what its metadata shows (FetchMetadata, or a test reading <see cref="Current"/>).
    /// Must be quick and must not throw.
    /// </summary>
    public Action<ClusterSnapshot>? BeforePublish { get; set; }

    /// <summary>Completes the next time the snapshot changes.</summary>
    public Task NextChange
    {
        get
        {
            lock (_waitersLock)
            {
                return _changed.Task;
            }
        }
    }

    /// <summary>Reads the metadata and starts following it; returns once the first snapshot is in place.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _loop = Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
        await _loaded.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Waits for the next change, at most <paramref name="timeout"/> (no change is not an error); throws only when cancelled.</summary>
    public async Task WaitForChangeAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await NextChange.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
    }

    /// <summary>Waits until the snapshot has reached <paramref name="revision"/> (a write's own revision).</summary>
    public async Task WaitForRevisionAsync(long revision, CancellationToken cancellationToken)
    {
        while (_current.Revision < revision)
        {
            await NextChange.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task RunAsync(CancellationToken stop)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var snapshot = await LoadAsync(stop).ConfigureAwait(false);
                Publish(snapshot);
                _loaded.TrySetResult();
                delay = TimeSpan.FromMilliseconds(100);
                await foreach (var response in _store.WatchPrefixAsync(ClusterKeys.Root, snapshot.Revision + 1, stop).ConfigureAwait(false))
                {
                    if (response.IsProgressNotify)
                    {
                        continue;
                    }

                    snapshot = Apply(snapshot, response);
                    Publish(snapshot);
                }
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                return; // stopping: however the store reports a cancelled watch
            }
            catch (CompactedException)
            {
                LogReload(_logger);
            }
            catch (Exception ex)
            {
                // Any failure, expected or not, is retried: a view that stopped following etcd would go stale silently.
                LogWatchFailed(_logger, ex, delay.TotalMilliseconds);
                try
                {
                    await Task.Delay(delay, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(1).Ticks));
            }
        }
    }

    private async Task<ClusterSnapshot> LoadAsync(CancellationToken cancellationToken)
    {
        var all = await _store.GetPrefixAsync(ClusterKeys.Root, cancellationToken).ConfigureAwait(false);
        var events = all.Kvs.Select(kv => new WatchEvent(WatchEventType.Put, kv, null)).ToList();
        return Apply(ClusterSnapshot.Empty, events, all.Header.Revision);
    }

    private static ClusterSnapshot Apply(ClusterSnapshot snapshot, WatchResponse response) =>
        Apply(snapshot, response.Events, response.EventRevision);

    /// <summary>The snapshot after <paramref name="events"/>, at <paramref name="revision"/>.</summary>
    private static ClusterSnapshot Apply(ClusterSnapshot snapshot, IReadOnlyList<WatchEvent> events, long revision)
    {
        var brokers = snapshot.Brokers.ToBuilder();
        var streams = snapshot.Streams.ToBuilder();
        var leaders = snapshot.Leaders.ToBuilder();
        var states = snapshot.States.ToBuilder();
        var controller = snapshot.Controller;
        var controllerRevision = snapshot.ControllerRevision;
        foreach (var e in events)
        {
            var key = e.Kv.KeyString;
            var put = e.Type == WatchEventType.Put;
            if (key.StartsWith(ClusterKeys.BrokersPrefix, StringComparison.Ordinal))
            {
                var id = key[ClusterKeys.BrokersPrefix.Length..];
                if (put)
                {
                    brokers[id] = BrokerRecord.Parser.ParseFrom(e.Kv.Value);
                }
                else
                {
                    brokers.Remove(id);
                }
            }
            else if (key == ClusterKeys.Controller)
            {
                controller = put ? ControllerRecord.Parser.ParseFrom(e.Kv.Value) : null;
                controllerRevision = put ? e.Kv.ModRevision : 0;
            }
            else if (key.StartsWith(StreamCatalog.StreamsPrefix, StringComparison.Ordinal))
            {
                var name = key[StreamCatalog.StreamsPrefix.Length..];
                if (put)
                {
                    streams[name] = new StreamEntry(StreamRecord.Parser.ParseFrom(e.Kv.Value), e.Kv.CreateRevision);
                }
                else
                {
                    streams.Remove(name);
                }
            }
            else if (ClusterKeys.TryParseLeader(key, out var stream, out var partition))
            {
                if (put)
                {
                    leaders[(stream, partition)] = (PartitionLeaderRecord.Parser.ParseFrom(e.Kv.Value), e.Kv.ModRevision);
                }
                else
                {
                    leaders.Remove((stream, partition));
                }
            }
            else if (StreamCatalog.TryParsePartitionKey(key, out stream, out partition))
            {
                if (put)
                {
                    states[(stream, partition)] = PartitionStateRecord.Parser.ParseFrom(e.Kv.Value);
                }
                else
                {
                    states.Remove((stream, partition));
                }
            }
        }

        return new ClusterSnapshot
        {
            Revision = revision,
            Brokers = brokers.ToImmutable(),
            Controller = controller,
            ControllerRevision = controllerRevision,
            Streams = streams.ToImmutable(),
            Leaders = leaders.ToImmutable(),
            States = states.ToImmutable(),
        };
    }

    private void Publish(ClusterSnapshot snapshot)
    {
        BeforePublish?.Invoke(snapshot);
        _current = snapshot;
        TaskCompletionSource changed;
        lock (_waitersLock)
        {
            changed = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The cluster metadata watch met a compacted revision; reading the metadata again")]
    private static partial void LogReload(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The cluster metadata watch failed; reading the metadata again in {DelayMs} ms")]
    private static partial void LogWatchFailed(ILogger logger, Exception exception, double delayMs);
}
