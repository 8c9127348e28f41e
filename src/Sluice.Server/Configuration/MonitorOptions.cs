namespace Sluice.Server.Configuration;

/// <summary>`monitor.*`: the monitoring port (Sluice only; docs/operations.md).</summary>
public sealed record MonitorOptions
{
    public static MonitorOptions Default { get; } = new();

    /// <summary>`monitor.listen` (flag `--monitor-listen`): where /metrics, /healthz, /readyz and /v1/* are served; null = off.</summary>
    public HostPort? Listen { get; init; }

    /// <summary>
    /// `monitor.partition.series.max`: most partitions reported with series of their own (the recently active ones);
    /// stream-level series stay exact whatever this is. Default 1000.
    /// </summary>
    public int PartitionSeriesMax { get; init; } = 1000;

    /// <summary>
    /// `monitor.otlp.endpoint`: an OpenTelemetry collector to push the same metrics to (OTLP); null = none. With
    /// http/protobuf a URL without a path gets `/v1/metrics`. Independent of <see cref="Listen"/>.
    /// </summary>
    public Uri? OtlpEndpoint { get; init; }

    /// <summary>`monitor.otlp.protocol`: `grpc` (default, port 4317 by convention) or `http/protobuf` (4318).</summary>
    public OtlpProtocol OtlpProtocol { get; init; } = OtlpProtocol.Grpc;

    /// <summary>`monitor.otlp.interval`: how often metrics are pushed. Default 60 s, OpenTelemetry's.</summary>
    public TimeSpan OtlpInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// `monitor.otlp.traces.enabled`: also export spans (ActivitySource "Sluice.Server") to <see cref="OtlpEndpoint"/>. Default
    /// false: metrics only, and no span is ever started (docs/operations.md "Traces").
    /// </summary>
    public bool OtlpTraces { get; init; }

    /// <summary>
    /// `monitor.otlp.traces.sample.ratio`: the share of publishes that start a trace of their own (no sampled parent).
    /// A publish whose client sent a trace context follows the client's sampling decision. Default 0.01.
    /// </summary>
    public double TraceSampleRatio { get; init; } = 0.01;
}

/// <summary>How OTLP is carried.</summary>
public enum OtlpProtocol
{
    Grpc,
    HttpProtobuf,
}
