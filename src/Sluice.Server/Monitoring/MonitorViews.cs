using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Sluice.Server.Hosting;
using Sluice.Server.Streams;

namespace Sluice.Server.Monitoring;

/// <summary>
/// The monitoring port's JSON views (/v1/server, /v1/streams, /v1/partitions, /v1/cluster, /v1/groups), in the spirit of
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

    /// <summary>The consumer groups this broker knows of, with their members' assignments.</summary>
    public static void Groups(Utf8JsonWriter json, SluiceServer server, IQueryCollection query)
    {
        json.WriteStartObject();
        json.WriteStartArray("groups");
        foreach (var group in server.Groups.Snapshot().OrderBy(g => g.Id, StringComparer.Ordinal))
        {
            json.WriteStartObject();
            json.WriteString("id", group.Id);
            json.WriteString("coordinator", group.Coordinator);
            json.WriteNumber("epoch", group.Epoch);
            json.WriteStartArray("members");
            foreach (var member in group.Record.Members)
            {
                json.WriteStartObject();
                json.WriteString("id", member.Id);
                WriteStrings(json, "streams", member.Streams);
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
            json.WriteEndObject();
        }

        json.WriteEndArray();
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
