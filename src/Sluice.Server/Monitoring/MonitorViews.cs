using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Sluice.Protocol.Admin;
using Sluice.Protocol.Api;
using Sluice.Protocol.Internal;
using Sluice.Server.Hosting;
using Sluice.Server.Streams;
using Sluice.Storage.Log;
using Broker = Sluice.Server.Streams.Broker;

namespace Sluice.Server.Monitoring;

/// <summary>
/// The monitoring port's JSON views (/v1/server, /v1/streams, /v1/partitions, /v1/cluster, /v1/groups, /v1/cursors, /v1/activity), in the spirit of
/// NATS's /varz: snake_case keys, numbers as numbers, written straight from the server's state (no reflection, so it stays
/// trimmable). Keys are documented in docs/operations.md; new keys may be added, existing ones keep their meaning.
/// </summary>
internal static class MonitorViews
{
    private static readonly DateTime ProcessStarted = Process.GetCurrentProcess().StartTime.ToUniversalTime();

    public static void Server(Utf8JsonWriter json, SluiceServer server, IQueryCollection query)
    {
        var options = server.Options;
        var broker = server.Broker;
        var now = DateTime.UtcNow;
        json.WriteStartObject();
        json.WriteString("server_id", server.ServerId);
        json.WriteString("version", typeof(MonitorViews).Assembly.GetName().Version?.ToString());
        json.WriteString("now", now);
        json.WriteString("start", server.StartedAt);
        json.WriteNumber("uptime_seconds", Math.Round((now - server.StartedAt).TotalSeconds, 3));
        json.WriteString("process_start", ProcessStarted);
        json.WriteString("host", server.AdvertisedHost);
        json.WriteNumber("port", server.Port);
        json.WriteBoolean("clustered", server.Cluster is not null);

        json.WriteStartObject("config");
        json.WriteString("listen", options.ListenEndpoint.ToString());
        json.WriteString("monitor_listen", options.Monitor.Listen?.ToString());
        json.WriteBoolean("tls", options.Tls.Enabled);
        json.WriteBoolean("tls_client_auth", options.Tls.ClientAuthEnabled);
        json.WriteString("grpc_transport", options.GrpcTransport.ToString().ToLowerInvariant());
        json.WriteNumber("grpc_max_connections", options.GrpcMaxConnections);
        json.WriteString("storage_durability", options.Storage.Durability.ToString().ToLowerInvariant());
        json.WriteNumber("storage_max_open_files", options.Storage.MaxOpenFiles);
        json.WriteBoolean("nats", options.Nats.Servers.Count > 0 || options.Nats.Embedded);
        json.WriteBoolean("etcd", options.Clustering.Etcd.Enabled);
        json.WriteString("namespace", options.Clustering.Namespace);
        json.WriteNumber("batch_max_messages", options.Batch.MaxMessages);
        json.WriteNumber("monitor_partition_series_max", options.Monitor.PartitionSeriesMax);
        json.WriteEndObject();

        using var process = Process.GetCurrentProcess();
        var gc = GC.GetGCMemoryInfo();
        json.WriteStartObject("memory");
        json.WriteNumber("working_set_bytes", process.WorkingSet64);
        json.WriteNumber("gc_heap_bytes", GC.GetTotalMemory(forceFullCollection: false));
        json.WriteNumber("gc_committed_bytes", gc.TotalCommittedBytes);
        json.WriteNumber("allocated_bytes_total", GC.GetTotalAllocatedBytes());
        json.WriteNumber("gc_collections_gen0", GC.CollectionCount(0));
        json.WriteNumber("gc_collections_gen2", GC.CollectionCount(2));
        json.WriteEndObject();

        json.WriteNumber("cpu_seconds", Math.Round(process.TotalProcessorTime.TotalSeconds, 3));
        json.WriteNumber("threads", process.Threads.Count);
        json.WriteNumber("connections", server.Grpc.ActiveConnections);
        var streams = 0;
        var partitions = 0;
        var led = 0;
        foreach (var stream in broker.Streams)
        {
            streams++;
            foreach (var partition in stream.Partitions)
            {
                partitions++;
                led += partition.Runtime is null ? 0 : 1;
            }
        }

        json.WriteNumber("streams", streams);
        json.WriteNumber("partitions", partitions);
        json.WriteNumber("partitions_led", led);
        json.WriteEndObject();
    }

    /// <summary>Every stream; `?internal=false` leaves out __cursors and __activity.</summary>
    public static void Streams(Utf8JsonWriter json, SluiceServer server, IQueryCollection query)
    {
        var withInternal = !string.Equals(query["internal"], "false", StringComparison.OrdinalIgnoreCase);
        json.WriteStartObject();
        json.WriteStartArray("streams");
        foreach (var stream in server.Broker.Streams.OrderBy(s => s.Name, StringComparer.Ordinal))
        {
            if (stream.IsInternal && !withInternal)
            {
                continue;
            }

            long messagesIn = 0, bytesIn = 0, messagesOut = 0, bytesOut = 0, size = 0;
            var segments = 0;
            foreach (var partition in stream.Partitions)
            {
                messagesIn += partition.Traffic.MessagesIn;
                bytesIn += partition.Traffic.BytesIn;
                messagesOut += partition.Traffic.MessagesOut;
                bytesOut += partition.Traffic.BytesOut;
                var (partitionSize, partitionSegments) = Disk(partition);
                size += partitionSize;
                segments += partitionSegments;
            }

            json.WriteStartObject();
            json.WriteString("name", stream.Name);
            json.WriteString("subject", stream.Subject);
            json.WriteString("group", stream.Group);
            json.WriteNumber("partitions", stream.Partitions.Length);
            json.WriteNumber("replication_factor", Math.Max(1, stream.Record.Replicas.FirstOrDefault()?.Replicas.Count ?? 1));
            json.WriteString("created", DateTime.UnixEpoch.AddTicks(stream.CreationTimestamp / 100));
            json.WriteBoolean("internal", stream.IsInternal);
            json.WriteBoolean("encrypted", stream.Settings.Encryption);
            json.WriteNumber("received_messages", messagesIn);
            json.WriteNumber("received_bytes", bytesIn);
            json.WriteNumber("sent_messages", messagesOut);
            json.WriteNumber("sent_bytes", bytesOut);
            json.WriteNumber("size_bytes", size);
            json.WriteNumber("segments", segments);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>Every partition (`?stream=NAME` for one stream's).</summary>
    public static void Partitions(Utf8JsonWriter json, SluiceServer server, IQueryCollection query)
    {
        var only = query["stream"].ToString();
        var self = server.ServerId;
        json.WriteStartObject();
        json.WriteStartArray("partitions");
        foreach (var stream in server.Broker.Streams.OrderBy(s => s.Name, StringComparer.Ordinal))
        {
            if (only.Length > 0 && stream.Name != only)
            {
                continue;
            }

            foreach (var partition in stream.Partitions)
            {
                var leadership = partition.Leadership;
                var (size, segments) = Disk(partition);
                json.WriteStartObject();
                json.WriteString("stream", stream.Name);
                json.WriteNumber("partition", partition.Id);
                json.WriteString("subject", partition.Subject);
                json.WriteString("leader", leadership is null ? (partition.IsOffline ? "" : self) : leadership.Leader);
                json.WriteBoolean("led_here", partition.Runtime is not null);
                WriteStrings(json, "replicas", leadership?.Replicas ?? [self]);
                WriteStrings(json, "isr", partition.Runtime?.Replication?.Isr ?? leadership?.Isr ?? (partition.IsOffline ? [] : [self]));
                json.WriteNumber("high_watermark", partition.HighWatermark);
                json.WriteNumber("newest_offset", partition.NewestOffset);
                json.WriteNumber("size_bytes", size);
                json.WriteNumber("segments", segments);
                json.WriteBoolean("paused", partition.IsPaused);
                json.WriteBoolean("readonly", partition.IsReadonly);
                json.WriteNumber("subscribers", partition.Subscribers);
                json.WriteNumber("received_messages", partition.Traffic.MessagesIn);
                json.WriteNumber("sent_messages", partition.Traffic.MessagesOut);
                if (partition.OfflineReason is { } offline)
                {
                    json.WriteString("offline", offline);
                }

                json.WriteEndObject();
            }
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    public static void Cluster(Utf8JsonWriter json, SluiceServer server, IQueryCollection query)
    {
        json.WriteStartObject();
        json.WriteBoolean("clustered", server.Cluster is not null);
        json.WriteString("server_id", server.ServerId);
        if (server.Cluster is { } node)
        {
            var snapshot = node.View.Current;
            json.WriteString("controller", snapshot.Controller?.BrokerId ?? "");
            json.WriteNumber("metadata_revision", snapshot.Revision);
            json.WriteBoolean("lease_live", node.IsLive);
        }
        else
        {
            json.WriteString("controller", server.ServerId); // a single node decides alone
        }

        json.WriteStartArray("brokers");
        foreach (var broker in server.BrokerList())
        {
            json.WriteStartObject();
            json.WriteString("id", broker.Id);
            json.WriteString("host", broker.Host);
            json.WriteNumber("port", broker.Port);
            json.WriteNumber("partitions", broker.PartitionCount);
            json.WriteNumber("leaders", broker.LeaderCount);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>
    /// The consumer groups this broker knows of, with their members' assignments and, per assigned partition, the group's
    /// committed offset and lag as `sluice group describe` computes them (asking the leaders and the coordinator in a cluster).
    /// </summary>
    public static async Task GroupsAsync(Utf8JsonWriter json, SluiceServer server, IQueryCollection query, CancellationToken cancellationToken)
    {
        json.WriteStartObject();
        json.WriteStartArray("groups");
        foreach (var group in server.Groups.Snapshot().OrderBy(g => g.Id, StringComparer.Ordinal))
        {
            DescribeConsumerGroupResponse described;
            try
            {
                described = await server.AdminApi.DescribeAsync(new DescribeConsumerGroupRequest { GroupId = group.Id }, cancellationToken).ConfigureAwait(false);
            }
            catch (NotFoundException)
            {
                continue; // the last member left since the snapshot
            }
            catch (Exception e) when (e is BrokerException or Sluice.Protocol.Grpc.GrpcException or Sluice.Storage.Metadata.MetadataUnavailableException)
            {
                // The metadata store or a peer failed: the group as this broker last saw it, without positions.
                json.WriteStartObject();
                json.WriteString("id", group.Id);
                json.WriteString("coordinator", group.Coordinator);
                json.WriteNumber("epoch", group.Epoch);
                json.WriteNull("lag");
                json.WriteStartArray("members");
                json.WriteEndArray();
                json.WriteStartArray("partitions");
                json.WriteEndArray();
                json.WriteString("error", e is Sluice.Storage.Metadata.MetadataUnavailableException ? "cluster metadata store (etcd) unavailable" : e.Message);
                json.WriteEndObject();
                continue;
            }

            json.WriteStartObject();
            json.WriteString("id", described.GroupId);
            json.WriteString("coordinator", described.Coordinator);
            json.WriteNumber("epoch", described.Epoch);
            long? total = null;
            foreach (var partition in described.Partitions)
            {
                if (partition.HasLag)
                {
                    total = (total ?? 0) + partition.Lag;
                }
            }

            WriteNumberOrNull(json, "lag", total);
            json.WriteStartArray("members");
            foreach (var member in described.Members)
            {
                json.WriteStartObject();
                json.WriteString("id", member.ConsumerId);
                WriteStrings(json, "streams", member.Streams);
                WriteNumberOrNull(json, "last_heartbeat_age_ms", member.HasLastHeartbeatAgeMs ? member.LastHeartbeatAgeMs : null);
                json.WriteStartArray("assignments");
                foreach (var assignment in member.Assignments)
                {
                    json.WriteStartObject();
                    json.WriteString("stream", assignment.Stream);
                    json.WriteStartArray("partitions");
                    foreach (var id in assignment.Partitions)
                    {
                        json.WriteNumberValue(id);
                    }

                    json.WriteEndArray();
                    json.WriteEndObject();
                }

                json.WriteEndArray();
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteStartArray("partitions");
            foreach (var partition in described.Partitions)
            {
                json.WriteStartObject();
                json.WriteString("stream", partition.Stream);
                json.WriteNumber("partition", partition.Partition);
                json.WriteString("consumer", partition.ConsumerId);
                WriteNumberOrNull(json, "committed_offset", partition.HasCommittedOffset ? partition.CommittedOffset : null);
                json.WriteNumber("high_watermark", partition.HighWatermark);
                json.WriteNumber("newest_offset", partition.NewestOffset);
                WriteNumberOrNull(json, "lag", partition.HasLag ? partition.Lag : null);
                if (partition.Error.Length > 0)
                {
                    json.WriteString("error", partition.Error);
                }

                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>Cursors read per request at most: a page an operator can read, and a bound on the work one request does.</summary>
    internal const int CursorsMax = 1000;

    /// <summary>Bytes of <c>__cursors</c> scanned per partition per request at most (cursor records are ~50 bytes: ~80,000 records).</summary>
    private const long CursorsScanBytesMax = 4L * 1024 * 1024;

    /// <summary>Bytes per reverse read step (as CursorStore scans).</summary>
    private const int ScanChunkBytes = 256 * 1024;

    /// <summary>
    /// The cursors stored in the <c>__cursors</c> partitions this broker holds (leader or replica), newest value per cursor,
    /// with the lag where this broker has the cursor's partition. A paused cursors partition this broker leads is resumed
    /// first, as a FetchCursor would. Partitions held elsewhere are listed under <c>elsewhere</c>.
    /// </summary>
    public static async Task CursorsAsync(Utf8JsonWriter json, SluiceServer server, IQueryCollection query, CancellationToken cancellationToken)
    {
        var broker = server.Broker;
        var only = query["stream"].ToString();
        json.WriteStartObject();
        if (!broker.TryGetStream(Broker.CursorsStreamName, out var cursorsStream))
        {
            json.WriteBoolean("enabled", false);
            json.WriteStartArray("cursors");
            json.WriteEndArray();
            json.WriteEndObject();
            return;
        }

        var found = new List<(string Cursor, string Stream, int Partition, long Offset, long Timestamp)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var elsewhere = new List<int>();
        var truncated = false;
        foreach (var partition in cursorsStream.Partitions)
        {
            if (partition.Log is null && partition.IsPaused && !partition.IsOffline && (partition.Leadership is null || partition.Leadership.Leader == server.ServerId))
            {
                await broker.ResumeAsync(partition, cancellationToken).ConfigureAwait(false);
            }

            if (partition.Log is not { } log)
            {
                elsewhere.Add(partition.Id);
                continue;
            }

            try
            {
                truncated |= !ScanCursors(log, only, seen, found, cancellationToken);
            }
            catch (Exception e) when (e is CommitLogClosedException or ObjectDisposedException)
            {
                elsewhere.Add(partition.Id); // closed while read (paused, or leadership moved): read nothing more from it
            }
        }

        json.WriteBoolean("enabled", true);
        json.WriteBoolean("truncated", truncated);
        WriteNumbers(json, "elsewhere", elsewhere);
        json.WriteStartArray("cursors");
        foreach (var cursor in found.OrderBy(c => c.Cursor, StringComparer.Ordinal).ThenBy(c => c.Stream, StringComparer.Ordinal).ThenBy(c => c.Partition))
        {
            json.WriteStartObject();
            json.WriteString("id", cursor.Cursor);
            if (cursor.Cursor.StartsWith(CursorStore.GroupCursorPrefix, StringComparison.Ordinal))
            {
                json.WriteString("group", cursor.Cursor[CursorStore.GroupCursorPrefix.Length..]);
            }

            json.WriteString("stream", cursor.Stream);
            json.WriteNumber("partition", cursor.Partition);
            json.WriteNumber("offset", cursor.Offset);
            json.WriteString("updated", DateTime.UnixEpoch.AddTicks(cursor.Timestamp / 100));
            long? lag = null;
            if (broker.TryGetStream(cursor.Stream, out var stream) && stream.TryGetPartition(cursor.Partition, out var target) && target.Log is not null)
            {
                json.WriteNumber("high_watermark", target.HighWatermark);
                lag = CursorStore.Lag(target.HighWatermark, cursor.Offset);
            }

            WriteNumberOrNull(json, "lag", lag);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>Newest first, the first value seen per key wins (the log is compacted, so older values may remain). False when a bound stopped it.</summary>
    private static bool ScanCursors(CommitLog log, string onlyStream, HashSet<string> seen, List<(string, string, int, long, long)> found, CancellationToken cancellationToken)
    {
        var highWatermark = log.HighWatermark;
        var next = highWatermark;
        long scanned = 0;
        while (next >= 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (scanned >= CursorsScanBytesMax || found.Count >= CursorsMax)
            {
                return false;
            }

            using var batch = log.ReadReverse(next, ScanChunkBytes);
            scanned += batch.SizeInBytes;
            foreach (var record in batch.Records)
            {
                if (record.Offset > highWatermark || record.Key is not { } key || record.Value is not { } value)
                {
                    continue;
                }

                var keyText = System.Text.Encoding.UTF8.GetString(key.Span);
                if (!seen.Add(keyText))
                {
                    continue;
                }

                Cursor cursor;
                try
                {
                    cursor = Cursor.Parser.ParseFrom(value.Span);
                }
                catch (Google.Protobuf.InvalidProtocolBufferException)
                {
                    continue; // not a cursor record (nothing but the server writes here)
                }

                if (onlyStream.Length == 0 || cursor.Stream == onlyStream)
                {
                    found.Add((cursor.CursorId, cursor.Stream, cursor.Partition, cursor.Offset, record.Timestamp));
                    if (found.Count >= CursorsMax)
                    {
                        return false;
                    }
                }
            }

            next = batch.IsEmpty ? -1 : batch.NextOffset;
        }

        return true;
    }

    /// <summary>Events returned by default and at most (`?limit=`): the activity stream keeps every event, the view shows the newest.</summary>
    internal const int ActivityDefault = 100;

    internal const int ActivityMax = 1000;

    /// <summary>
    /// The newest events of the activity stream (<c>__activity</c>, when <c>activity.stream.enabled</c>), newest first, when this
    /// broker holds its partition. Each event: its offset, time, operation and the operation's fields.
    /// </summary>
    public static void Activity(Utf8JsonWriter json, SluiceServer server, IQueryCollection query)
    {
        var limit = int.TryParse(query["limit"], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var asked) && asked > 0
            ? Math.Min(asked, ActivityMax)
            : ActivityDefault;
        json.WriteStartObject();
        if (!server.Broker.TryGetStream(Broker.ActivityStreamName, out var stream))
        {
            json.WriteBoolean("enabled", false);
            json.WriteStartArray("events");
            json.WriteEndArray();
            json.WriteEndObject();
            return;
        }

        json.WriteBoolean("enabled", true);
        var partition = stream.Partitions[0];
        json.WriteBoolean("here", partition.Log is not null);
        json.WriteString("leader", partition.Leadership?.Leader ?? server.ServerId);
        json.WriteStartArray("events");
        if (partition.Log is { } log)
        {
            try
            {
                WriteNewestEvents(json, log, limit);
            }
            catch (Exception e) when (e is CommitLogClosedException or ObjectDisposedException)
            {
                // closed while read (leadership moved, shutdown): the events written so far stand
            }
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void WriteNewestEvents(Utf8JsonWriter json, CommitLog log, int limit)
    {
        var highWatermark = log.HighWatermark;
        var next = highWatermark;
        var written = 0;
        while (next >= 0 && written < limit)
        {
            using var batch = log.ReadReverse(next, ScanChunkBytes);
            foreach (var record in batch.Records)
            {
                if (record.Offset > highWatermark || record.Value is not { } value || written >= limit)
                {
                    continue;
                }

                ActivityStreamEvent activity;
                try
                {
                    activity = ActivityStreamEvent.Parser.ParseFrom(value.Span);
                }
                catch (Google.Protobuf.InvalidProtocolBufferException)
                {
                    continue;
                }

                WriteActivity(json, record.Offset, record.Timestamp, activity);
                written++;
            }

            next = batch.IsEmpty ? -1 : batch.NextOffset;
        }
    }

    private static void WriteActivity(Utf8JsonWriter json, long offset, long timestamp, ActivityStreamEvent activity)
    {
        json.WriteStartObject();
        json.WriteNumber("offset", offset);
        json.WriteString("time", DateTime.UnixEpoch.AddTicks(timestamp / 100));
        json.WriteNumber("id", activity.Id);
        json.WriteString("op", activity.Op switch
        {
            ActivityStreamOp.CreateStream => "CreateStream",
            ActivityStreamOp.DeleteStream => "DeleteStream",
            ActivityStreamOp.PauseStream => "PauseStream",
            ActivityStreamOp.ResumeStream => "ResumeStream",
            ActivityStreamOp.SetStreamReadonly => "SetStreamReadonly",
            ActivityStreamOp.JoinConsumerGroup => "JoinConsumerGroup",
            ActivityStreamOp.LeaveConsumerGroup => "LeaveConsumerGroup",
            ActivityStreamOp.RebalanceConsumerGroup => "RebalanceConsumerGroup",
            var other => ((int)other).ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        switch (activity.Op)
        {
            case ActivityStreamOp.CreateStream when activity.CreateStreamOp is { } op:
                json.WriteString("stream", op.Stream);
                WriteNumbers(json, "partitions", op.Partitions);
                break;
            case ActivityStreamOp.DeleteStream when activity.DeleteStreamOp is { } op:
                json.WriteString("stream", op.Stream);
                break;
            case ActivityStreamOp.PauseStream when activity.PauseStreamOp is { } op:
                json.WriteString("stream", op.Stream);
                WriteNumbers(json, "partitions", op.Partitions);
                json.WriteBoolean("resume_all", op.ResumeAll);
                break;
            case ActivityStreamOp.ResumeStream when activity.ResumeStreamOp is { } op:
                json.WriteString("stream", op.Stream);
                WriteNumbers(json, "partitions", op.Partitions);
                break;
            case ActivityStreamOp.SetStreamReadonly when activity.SetStreamReadonlyOp is { } op:
                json.WriteString("stream", op.Stream);
                WriteNumbers(json, "partitions", op.Partitions);
                json.WriteBoolean("readonly", op.Readonly);
                break;
            case ActivityStreamOp.JoinConsumerGroup when activity.JoinConsumerGroupOp is { } op:
                json.WriteString("group", op.GroupId);
                json.WriteString("consumer", op.ConsumerId);
                WriteStrings(json, "streams", op.Streams);
                break;
            case ActivityStreamOp.LeaveConsumerGroup when activity.LeaveConsumerGroupOp is { } op:
                json.WriteString("group", op.GroupId);
                json.WriteString("consumer", op.ConsumerId);
                json.WriteBoolean("expired", op.Expired);
                break;
            default:
                break;
        }

        if (activity.ConsumerGroupRebalanceOp is { } rebalance)
        {
            json.WriteString("group", rebalance.GroupId);
            json.WriteNumber("epoch", rebalance.Epoch);
            json.WriteString("reason", rebalance.Reason);
            json.WriteBoolean("group_deleted", rebalance.Deleted);
        }

        json.WriteEndObject();
    }

    private static (long Size, int Segments) Disk(Partition partition)
    {
        if (partition.Log is not { } log)
        {
            return (0, 0);
        }

        try
        {
            return (log.SizeInBytes, log.SegmentCount);
        }
        catch (ObjectDisposedException)
        {
            return (0, 0); // closed while read (a pause): it holds nothing open now
        }
    }

    private static void WriteNumberOrNull(Utf8JsonWriter json, string name, long? value)
    {
        if (value is { } v)
        {
            json.WriteNumber(name, v);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private static void WriteNumbers(Utf8JsonWriter json, string name, IEnumerable<int> values)
    {
        json.WriteStartArray(name);
        foreach (var value in values)
        {
            json.WriteNumberValue(value);
        }

        json.WriteEndArray();
    }

    private static void WriteStrings(Utf8JsonWriter json, string name, IEnumerable<string> values)
    {
        json.WriteStartArray(name);
        foreach (var value in values)
        {
            json.WriteStringValue(value);
        }

        json.WriteEndArray();
    }
}
