using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Sluice.Protocol.Grpc;
using Sluice.Server.Cluster;
using Sluice.Server.Grpc;
using Sluice.Server.Streams;

namespace Sluice.Server.Monitoring;

/// <summary>
/// Every instrument of one server, in one <see cref="Meter"/> named <see cref="MeterName"/> (docs/operations.md lists them).
/// One meter per server rather than a static one, so the in-process clusters of the tests keep their brokers' numbers apart.
/// </summary>
/// <remarks>
/// Hot paths pay little: traffic is summed into <see cref="PartitionTraffic"/> fields once per batch and read here when
/// scraped (observable counters), latencies are recorded once per batch or call with tags built ahead, and everything else
/// (offsets, ISR, disk, lag) is read from existing state at scrape time.
/// Stream-level series are exact however many partitions there are; partition-level series cover only the partitions with
/// traffic in the last <see cref="RecentWindow"/>, the most recent first, up to the configured cap, because OpenTelemetry
/// folds series past its cardinality limit (2,000 per instrument) into one overflow series.
/// </remarks>
internal sealed class ServerMetrics : IDisposable
{
    public const string MeterName = "Sluice.Server";

    /// <summary>How recent a partition's traffic must be for its own series to be reported.</summary>
    public static readonly TimeSpan RecentWindow = TimeSpan.FromMinutes(5);

    // Bucket boundaries in seconds: a publish acked in 100 µs on a fast disk up to a 10 s stall.
    private static readonly double[] LatencyBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private static readonly KeyValuePair<string, object?> GrpcSystem = new("rpc.system", "grpc");

    private readonly Meter _meter;
    private readonly int _partitionSeriesMax;
    private readonly Histogram<double> _publishDuration;
    private readonly Histogram<double> _fsyncDuration;
    private readonly Histogram<double> _rpcDuration;
    private readonly Counter<long> _leaderChanges;
    private readonly ConcurrentDictionary<string, KeyValuePair<string, object?>[][]> _rpcTags = new(StringComparer.Ordinal);
    private readonly Lock _selectionLock = new();
    private Partition[] _recent = [];
    private long _recentAt = long.MinValue;

    public ServerMetrics(int partitionSeriesMax)
    {
        _partitionSeriesMax = partitionSeriesMax;
        _meter = new Meter(MeterName, typeof(ServerMetrics).Assembly.GetName().Version?.ToString());
        var latency = new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets };

        _publishDuration = _meter.CreateHistogram("sluice.publish.duration", "s",
            "Time from the server taking a publish to acking it (one sample per appended batch: its oldest acked message)", advice: latency);
        _fsyncDuration = _meter.CreateHistogram("sluice.storage.fsync.duration", "s", "Duration of each fsync of a segment file", advice: latency);
        _rpcDuration = _meter.CreateHistogram("rpc.server.call.duration", "s", "Duration of gRPC calls served, by method and status", advice: latency);
        _leaderChanges = _meter.CreateCounter<long>("sluice.partition.leader.changes", "{change}",
            "Partition leader (or leader epoch) changes this broker saw in the cluster metadata");

        _meter.CreateObservableCounter("sluice.stream.received.messages", () => PerStream(static t => t.MessagesIn), "{message}", "Messages appended by this broker as leader");
        _meter.CreateObservableCounter("sluice.stream.received.size", () => PerStream(static t => t.BytesIn), "By", "Key and value bytes appended by this broker as leader");
        _meter.CreateObservableCounter("sluice.stream.sent.messages", () => PerStream(static t => t.MessagesOut), "{message}", "Messages sent to subscribers");
        _meter.CreateObservableCounter("sluice.stream.sent.size", () => PerStream(static t => t.BytesOut), "By", "Key and value bytes sent to subscribers");
        _meter.CreateObservableCounter("sluice.partition.received.messages", () => PerRecentPartition(static p => p.Traffic.MessagesIn), "{message}", "Messages appended, for recently active partitions");
        _meter.CreateObservableCounter("sluice.partition.received.size", () => PerRecentPartition(static p => p.Traffic.BytesIn), "By", "Key and value bytes appended, for recently active partitions");
        _meter.CreateObservableCounter("sluice.partition.sent.messages", () => PerRecentPartition(static p => p.Traffic.MessagesOut), "{message}", "Messages sent to subscribers, for recently active partitions");
        _meter.CreateObservableCounter("sluice.partition.sent.size", () => PerRecentPartition(static p => p.Traffic.BytesOut), "By", "Key and value bytes sent to subscribers, for recently active partitions");
        _meter.CreateObservableGauge("sluice.partition.high_watermark", () => PerRecentPartition(static p => p.Log is null ? null : p.HighWatermark), "{offset}", "Offset of the newest committed message, for recently active partitions");
        _meter.CreateObservableGauge("sluice.partition.newest_offset", () => PerRecentPartition(static p => p.Log is null ? null : p.NewestOffset), "{offset}", "Offset of the newest message in the log, for recently active partitions");
        _meter.CreateObservableGauge("sluice.partition.isr.size", () => PerRecentPartition(IsrSize), "{replica}", "In-sync replicas, for recently active partitions this broker leads");
        _meter.CreateObservableGauge("sluice.partitions.under_replicated", UnderReplicated, "{partition}", "Partitions this broker leads whose ISR is smaller than their replica set");
        _meter.CreateObservableGauge("sluice.partitions.led", Led, "{partition}", "Partitions this broker leads (open for publishing)");
        _meter.CreateObservableGauge("sluice.storage.segments", () => PerStreamLog(static l => l.SegmentCount), "{segment}", "Segment files of the partition logs this broker holds");
        _meter.CreateObservableGauge("sluice.storage.size", () => PerStreamLog(static l => l.SizeInBytes), "By", "Bytes of segment files of the partition logs this broker holds");
        _meter.CreateObservableGauge("sluice.cursor.lag", CursorLag, "{message}", "High watermark minus the stored cursor offset, for cursors this broker stored or read recently");
        _meter.CreateObservableGauge("sluice.consumer_group.lag", GroupLag, "{message}", "Sum of the lag of a consumer group's cursors over its partitions, for cursors this broker stored or read recently");
        _meter.CreateObservableUpDownCounter("sluice.connections", Connections, "{connection}", "Open client and broker connections to the gRPC port");
    }

    public Meter Meter => _meter;

    /// <summary>What exports these instruments (the monitoring port, OTLP); null when nothing does. Disposed with this.</summary>
    public OpenTelemetry.Metrics.MeterProvider? Provider { get; set; }

    /// <summary>What exports this broker's spans (OTLP, `monitor.otlp.traces.enabled`); null when nothing does. Disposed with this.</summary>
    public OpenTelemetry.Trace.TracerProvider? Traces { get; set; }

    /// <summary>What the observable instruments read; set as the server starts.</summary>
    public Broker? Broker { get; set; }

    public ClusterNode? Cluster { get; set; }

    public GrpcServer? Grpc { get; set; }

    /// <summary>For <see cref="Sluice.Storage.Log.CommitLogOptions.FsyncObserver"/>.</summary>
    public Action<TimeSpan> FsyncObserver => _fsyncObserver ??= elapsed => _fsyncDuration.Record(elapsed.TotalSeconds);

    private Action<TimeSpan>? _fsyncObserver; // one delegate for every partition's log, not one each

    public void PublishAcked(long receivedAt)
    {
        if (_publishDuration.Enabled)
        {
            _publishDuration.Record(Stopwatch.GetElapsedTime(receivedAt).TotalSeconds);
        }
    }

    public void LeaderChanged(string stream) => _leaderChanges.Add(1, new KeyValuePair<string, object?>("messaging.destination.name", stream));

    /// <summary>Whether gRPC calls are timed now (something listens to the call-duration histogram).</summary>
    public bool RpcTimed => _rpcDuration.Enabled;

    /// <summary>One finished gRPC call. <paramref name="path"/> must be a registered method's (others are counted as "_OTHER").</summary>
    public void RpcEnded(string path, GrpcStatusCode status, long startedAt)
    {
        if (!_rpcDuration.Enabled)
        {
            return;
        }

        var code = (int)status;
        var byCode = _rpcTags.GetOrAdd(path, NewRpcTags);
        if ((uint)code < (uint)byCode.Length)
        {
            _rpcDuration.Record(Stopwatch.GetElapsedTime(startedAt).TotalSeconds, byCode[code]);
        }
    }

    private static KeyValuePair<string, object?>[][] NewRpcTags(string path)
    {
        // "/proto.API/Publish" → service "proto.API", method "Publish".
        var slash = path.LastIndexOf('/');
        var service = slash > 1 ? path[1..slash] : "_OTHER";
        var method = slash > 1 ? path[(slash + 1)..] : "_OTHER";
        var byCode = new KeyValuePair<string, object?>[17][];
        for (var code = 0; code < byCode.Length; code++)
        {
            byCode[code] = [GrpcSystem, new("rpc.service", service), new("rpc.method", method), new("rpc.grpc.status_code", code)];
        }

        return byCode;
    }

    /// <summary>The partitions whose own series are reported: traffic within <see cref="RecentWindow"/>, newest first, capped.</summary>
    internal Partition[] RecentPartitions()
    {
        var now = Environment.TickCount64;
        lock (_selectionLock)
        {
            // The instruments of one scrape share one selection (each would otherwise sort every partition again).
            if (_recentAt != long.MinValue && now - _recentAt < 250)
            {
                return _recent;
            }

            var window = (long)RecentWindow.TotalMilliseconds;
            var active = new List<(Partition Partition, long At)>();
            foreach (var stream in Broker?.Streams ?? [])
            {
                foreach (var partition in stream.Partitions)
                {
                    var at = partition.Traffic.LastActive;
                    if (at != 0 && now - at <= window)
                    {
                        active.Add((partition, at));
                    }
                }
            }

            if (active.Count > _partitionSeriesMax)
            {
                active.Sort(static (a, b) => b.At.CompareTo(a.At));
                active.RemoveRange(_partitionSeriesMax, active.Count - _partitionSeriesMax);
            }

            _recent = [.. active.Select(a => a.Partition)];
            _recentAt = now;
            return _recent;
        }
    }

    private IEnumerable<Measurement<long>> PerStream(Func<PartitionTraffic, long> read)
    {
        foreach (var stream in Broker?.Streams ?? [])
        {
            long total = 0;
            foreach (var partition in stream.Partitions)
            {
                total += read(partition.Traffic);
            }

            yield return new Measurement<long>(total, new KeyValuePair<string, object?>("messaging.destination.name", stream.Name));
        }
    }

    private IEnumerable<Measurement<long>> PerStreamLog(Func<Sluice.Storage.Log.CommitLog, long> read)
    {
        foreach (var stream in Broker?.Streams ?? [])
        {
            long total = 0;
            var any = false;
            foreach (var partition in stream.Partitions)
            {
                if (partition.Log is { } log)
                {
                    any = true;
                    try
                    {
                        total += read(log);
                    }
                    catch (ObjectDisposedException)
                    {
                        // Closed between the check and the read (a pause, a lost leadership): it holds nothing open now.
                    }
                }
            }

            if (any)
            {
                yield return new Measurement<long>(total, new KeyValuePair<string, object?>("messaging.destination.name", stream.Name));
            }
        }
    }

    private IEnumerable<Measurement<long>> PerRecentPartition(Func<Partition, long?> read)
    {
        foreach (var partition in RecentPartitions())
        {
            if (read(partition) is { } value)
            {
                yield return new Measurement<long>(value, PartitionTags(partition));
            }
        }
    }

    private long? IsrSize(Partition partition) =>
        partition.Runtime is null ? null
        : partition.Runtime.Replication is { } replication ? replication.Isr.Count
        : Cluster is null ? 1 : null;

    private static KeyValuePair<string, object?>[] PartitionTags(Partition partition) =>
        [new("messaging.destination.name", partition.Stream.Name), new("messaging.destination.partition.id", partition.Id.ToString(System.Globalization.CultureInfo.InvariantCulture))];

    private Measurement<long> UnderReplicated()
    {
        long count = 0;
        foreach (var stream in Broker?.Streams ?? [])
        {
            foreach (var partition in stream.Partitions)
            {
                if (partition.Runtime?.Replication is { } replication && replication.Isr.Count < replication.Replicas.Count)
                {
                    count++;
                }
            }
        }

        return new Measurement<long>(count);
    }

    private Measurement<long> Led()
    {
        long count = 0;
        foreach (var stream in Broker?.Streams ?? [])
        {
            foreach (var partition in stream.Partitions)
            {
                if (partition.Runtime is not null)
                {
                    count++;
                }
            }
        }

        return new Measurement<long>(count);
    }

    private IEnumerable<Measurement<long>> CursorLag()
    {
        foreach (var (cursor, partition, offset) in KnownCursors())
        {
            if (CursorStore.Lag(partition.HighWatermark, offset) is not { } lag)
            {
                continue;
            }

            yield return new Measurement<long>(lag,
                new("sluice.cursor.id", cursor), new("messaging.destination.name", partition.Stream.Name),
                new("messaging.destination.partition.id", partition.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
    }

    private IEnumerable<Measurement<long>> GroupLag()
    {
        var byGroup = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (cursor, partition, offset) in KnownCursors())
        {
            if (cursor.StartsWith(CursorStore.GroupCursorPrefix, StringComparison.Ordinal) && CursorStore.Lag(partition.HighWatermark, offset) is { } lag)
            {
                var group = cursor[CursorStore.GroupCursorPrefix.Length..];
                byGroup[group] = byGroup.GetValueOrDefault(group) + lag;
            }
        }

        foreach (var (group, lag) in byGroup)
        {
            yield return new Measurement<long>(lag, new KeyValuePair<string, object?>("messaging.consumer.group.name", group));
        }
    }

    private IEnumerable<(string Cursor, Partition Partition, long Offset)> KnownCursors()
    {
        if (Broker is not { } broker)
        {
            yield break;
        }

        foreach (var (cursor, stream, id, offset) in broker.Cursors.Known())
        {
            if (broker.TryGetStream(stream, out var s) && s.TryGetPartition(id, out var partition) && partition.Log is not null)
            {
                yield return (cursor, partition, offset);
            }
        }
    }

    private Measurement<long> Connections() => new(Grpc?.ActiveConnections ?? 0);

    public void Dispose()
    {
        Traces?.Dispose(); // flushes the spans still queued
        Provider?.Dispose(); // flushes a last OTLP export
        _meter.Dispose();
    }
}
