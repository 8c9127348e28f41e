using System.Globalization;
using System.Text;
using System.Text.Json;
using Sluice.Bench.Histograms;
using Sluice.Bench.Options;

namespace Sluice.Bench.Reports;

/// <summary>Ack latency percentiles in microseconds.</summary>
public sealed record LatencySummary(long Count, long Min, double Mean, long P50, long P95, long P99, long P999, long Max)
{
    public static LatencySummary? From(LatencyHistogram histogram)
    {
        ArgumentNullException.ThrowIfNull(histogram);
        return histogram.TotalCount == 0
            ? null
            : new LatencySummary(
                histogram.TotalCount,
                histogram.Min,
                histogram.Mean,
                histogram.ValueAtPercentile(50),
                histogram.ValueAtPercentile(95),
                histogram.ValueAtPercentile(99),
                histogram.ValueAtPercentile(99.9),
                histogram.Max);
    }
}

/// <summary>What one run measured; printed as text or JSON.</summary>
public sealed record BenchReport
{
    public required BenchOptions Options { get; init; }

    /// <summary>Messages published with an ack (or sent, with ack policy none) or read.</summary>
    public required long Messages { get; init; }

    public required long Errors { get; init; }

    public required long Bytes { get; init; }

    public required double DurationSeconds { get; init; }

    public LatencySummary? Latency { get; init; }

    public string? FirstError { get; init; }

    /// <summary>Whether --create-stream made a new stream (false: it existed); null without the flag.</summary>
    public bool? StreamCreated { get; init; }

    public double? ServerCpuSeconds { get; init; }

    /// <summary>Each peak RSS of <see cref="ServerProcesses"/>, summed.</summary>
    public long? ServerPeakRssKb { get; init; }

    /// <summary>Each measured server process on its own (<see cref="ServerCpuSeconds"/> is their sum).</summary>
    public IReadOnlyList<Runs.ProcessUsage> ServerProcesses { get; init; } = [];

    public double? StealPercent { get; init; }

    public required double ClientCpuSeconds { get; init; }

    public required long ClientAllocatedBytes { get; init; }

    public required int ClientGen0 { get; init; }

    public required int ClientGen1 { get; init; }

    public required int ClientGen2 { get; init; }

    public double MessagesPerSecond => DurationSeconds > 0 ? Messages / DurationSeconds : 0;

    public double BytesPerSecond => DurationSeconds > 0 ? Bytes / DurationSeconds : 0;

    public double? ServerCpuMicrosecondsPerMessage => ServerCpuSeconds is { } s && Messages > 0 ? PerMessage(s) : null;

    public double ClientCpuMicrosecondsPerMessage => Messages > 0 ? ClientCpuSeconds * 1e6 / Messages : 0;

    public double ClientAllocatedBytesPerMessage => Messages > 0 ? (double)ClientAllocatedBytes / Messages : 0;

    public string ToText()
    {
        var o = Options;
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        var shape = o.Mode == BenchMode.Producer
            ? string.Create(c, $"producer: {o.Concurrent} publisher(s) on {o.Connections} connection(s), pub-batch {o.PubBatch}, ack {o.AckPolicy.ToString().ToLowerInvariant()}, {o.MessageSize} B, {o.Partitions} partition(s)")
            : string.Create(c, $"consumer: partition {o.Partition} from the start, {o.MessageSize} B expected");
        var where = o.InProcess ? "in-process server" : string.Join(",", o.ServersOrDefault);
        text.AppendLine(c, $"target      {Target(o.Target)} ({where}), stream {o.Stream}");
        text.AppendLine(c, $"mode        {shape}");
        text.AppendLine(c, $"messages    {Messages:N0} (errors {Errors:N0})");
        text.AppendLine(c, $"duration    {DurationSeconds:F3} s");
        text.AppendLine(c, $"throughput  {MessagesPerSecond:N0} msgs/s, {BytesPerSecond / 1e6:F1} MB/s");
        if (Latency is { } l)
        {
            text.AppendLine(c, $"latency µs  min {l.Min}, mean {l.Mean:F1}, p50 {l.P50}, p95 {l.P95}, p99 {l.P99}, p99.9 {l.P999}, max {l.Max}");
        }

        if (ServerCpuSeconds is { } cpu)
        {
            text.AppendLine(c, $"server      cpu {ServerCpuMicrosecondsPerMessage:F2} µs/msg ({cpu:F2} s), peak rss {ServerPeakRssKb / 1024.0:F1} MiB");
            if (ServerProcesses.Count > 1)
            {
                foreach (var p in ServerProcesses)
                {
                    text.AppendLine(c, $"  pid {p.Pid,-7} cpu {PerMessage(p.CpuSeconds):F2} µs/msg ({p.CpuSeconds:F2} s), peak rss {p.PeakRssKb / 1024.0:F1} MiB");
                }
            }
        }

        text.AppendLine(c, $"{(o.InProcess ? "process" : "client"),-11} cpu {ClientCpuMicrosecondsPerMessage:F2} µs/msg, alloc {ClientAllocatedBytesPerMessage:F0} B/msg, gc {ClientGen0}/{ClientGen1}/{ClientGen2}");
        if (StealPercent is { } steal)
        {
            text.AppendLine(c, $"steal       {steal:F2} %");
        }

        if (FirstError is not null)
        {
            text.AppendLine(c, $"first error {FirstError}");
        }

        return text.ToString();
    }

    public string ToJson()
    {
        var o = Options;
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("target", Target(o.Target));
            json.WriteString("mode", o.Mode == BenchMode.Producer ? "producer" : "consumer");
            json.WriteString("servers", string.Join(",", o.ServersOrDefault));
            json.WriteString("stream", o.Stream);
            json.WriteString("subject", o.Subject);
            json.WriteNumber("message_size", o.MessageSize);
            json.WriteNumber("pub_batch", o.PubBatch);
            json.WriteNumber("concurrent", o.Concurrent);
            json.WriteNumber("connections", o.Connections);
            json.WriteNumber("partitions", o.Partitions);
            json.WriteString("ack_policy", o.AckPolicy.ToString().ToLowerInvariant());
            json.WriteBoolean("in_process", o.InProcess);
            if (StreamCreated is { } created)
            {
                json.WriteBoolean("stream_created", created);
            }

            json.WriteNumber("messages", Messages);
            json.WriteNumber("errors", Errors);
            json.WriteNumber("bytes", Bytes);
            json.WriteNumber("duration_s", Math.Round(DurationSeconds, 6));
            json.WriteNumber("msgs_per_sec", Math.Round(MessagesPerSecond, 1));
            json.WriteNumber("bytes_per_sec", Math.Round(BytesPerSecond, 1));
            json.WriteNumber("mb_per_sec", Math.Round(BytesPerSecond / 1e6, 3));
            if (Latency is { } l)
            {
                json.WriteStartObject("latency_us");
                json.WriteNumber("count", l.Count);
                json.WriteNumber("min", l.Min);
                json.WriteNumber("mean", Math.Round(l.Mean, 2));
                json.WriteNumber("p50", l.P50);
                json.WriteNumber("p95", l.P95);
                json.WriteNumber("p99", l.P99);
                json.WriteNumber("p99_9", l.P999);
                json.WriteNumber("max", l.Max);
                json.WriteEndObject();
            }
            else
            {
                json.WriteNull("latency_us");
            }

            json.WriteStartObject("server");
            if (ServerCpuSeconds is { } cpu)
            {
                json.WriteNumber("cpu_s", Math.Round(cpu, 3));
                json.WriteNumber("cpu_us_per_msg", Math.Round(ServerCpuMicrosecondsPerMessage ?? 0, 3));
                json.WriteNumber("peak_rss_kb", ServerPeakRssKb ?? 0);
                json.WriteStartArray("processes");
                foreach (var p in ServerProcesses)
                {
                    json.WriteStartObject();
                    json.WriteNumber("pid", p.Pid);
                    json.WriteNumber("cpu_s", Math.Round(p.CpuSeconds, 3));
                    json.WriteNumber("cpu_us_per_msg", Math.Round(PerMessage(p.CpuSeconds), 3));
                    json.WriteNumber("peak_rss_kb", p.PeakRssKb);
                    json.WriteEndObject();
                }

                json.WriteEndArray();
            }

            json.WriteEndObject();
            json.WriteStartObject("client");
            json.WriteNumber("cpu_s", Math.Round(ClientCpuSeconds, 3));
            json.WriteNumber("cpu_us_per_msg", Math.Round(ClientCpuMicrosecondsPerMessage, 3));
            json.WriteNumber("allocated_bytes", ClientAllocatedBytes);
            json.WriteNumber("allocated_bytes_per_msg", Math.Round(ClientAllocatedBytesPerMessage, 1));
            json.WriteNumber("gc_gen0", ClientGen0);
            json.WriteNumber("gc_gen1", ClientGen1);
            json.WriteNumber("gc_gen2", ClientGen2);
            json.WriteEndObject();
            if (StealPercent is { } steal)
            {
                json.WriteNumber("steal_percent", Math.Round(steal, 3));
            }
            else
            {
                json.WriteNull("steal_percent");
            }

            json.WriteString("first_error", FirstError);
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private double PerMessage(double seconds) => Messages > 0 ? seconds * 1e6 / Messages : 0;

    private static string Target(BenchTarget target) => target == BenchTarget.JetStream ? "jetstream" : "sluice";
}
