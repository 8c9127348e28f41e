using System.Diagnostics.Metrics;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Sluice.Server.Configuration;

namespace Sluice.Server.Monitoring;

/// <summary>
/// The OpenTelemetry meter provider that reads a server's <see cref="ServerMetrics"/> (and the runtime's and the NATS
/// attachment's meters) for the monitoring port's /metrics and, when configured, pushes them to an OTLP collector.
/// </summary>
internal static class MetricsPipeline
{
    /// <summary>Null when neither `monitor.listen` nor `monitor.otlp.endpoint` is set: then nothing listens and histograms cost nothing.</summary>
    public static MeterProvider? Build(ServerOptions options, ServerMetrics metrics)
    {
        var monitor = options.Monitor;
        if (monitor.Listen is null && monitor.OtlpEndpoint is null)
        {
            return null;
        }

        var ownMeter = metrics.Meter;
        var builder = Sdk.CreateMeterProviderBuilder()
            .ConfigureResource(resource => resource.AddService("sluice", serviceVersion: typeof(MetricsPipeline).Assembly.GetName().Version?.ToString()))
            .AddMeter(ServerMetrics.MeterName, "Sluice.Server.Nats")
            .AddRuntimeInstrumentation()
            // Another server in the same process (the tests' clusters) has a meter of the same name: only this one's counts.
            .AddView(instrument => instrument.Meter.Name != ServerMetrics.MeterName ? null
                : !ReferenceEquals(instrument.Meter, ownMeter) ? MetricStreamConfiguration.Drop
                : CardinalityFor(instrument, monitor.PartitionSeriesMax));
        if (monitor.Listen is not null)
        {
            builder.AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0); // a scrape right after a publish sees it
        }

        if (monitor.OtlpEndpoint is { } endpoint)
        {
            // The exporter retries and logs (its EventSource) on its own thread: a dead collector never reaches the broker.
            builder.AddOtlpExporter((exporter, reader) =>
            {
                exporter.Protocol = monitor.OtlpProtocol == OtlpProtocol.HttpProtobuf ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
                exporter.Endpoint = monitor.OtlpProtocol == OtlpProtocol.HttpProtobuf && endpoint.AbsolutePath is "" or "/"
                    ? new Uri(endpoint, "/v1/metrics") // set in code, the exporter takes the URL as the full signal path
                    : endpoint;
                reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = (int)Math.Min(int.MaxValue, monitor.OtlpInterval.TotalMilliseconds);
                reader.TemporalityPreference = MetricReaderTemporalityPreference.Cumulative;
            });
        }

        return builder.Build();
    }

    /// <summary>Every instrument keeps OpenTelemetry's default of 2,000 series, except per-partition ones when the cap is higher.</summary>
    private static MetricStreamConfiguration? CardinalityFor(Instrument instrument, int partitionSeriesMax) =>
        instrument.Name.StartsWith("sluice.partition.", StringComparison.Ordinal) && partitionSeriesMax >= 2000
            ? new MetricStreamConfiguration { CardinalityLimit = partitionSeriesMax + 1 }
            : null;
}
