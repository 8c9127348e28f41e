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
}
