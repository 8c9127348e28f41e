using System.Diagnostics;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Sluice.Server.Configuration;

namespace Sluice.Server.Monitoring;

/// <summary>
/// The OpenTelemetry tracer provider that exports the broker's spans (<see cref="ServerTracing"/>) to the OTLP collector
/// of `monitor.otlp.endpoint`, when `monitor.otlp.traces.enabled` is set. It is also what makes spans exist at all:
/// without it (and without another ActivityListener in the process) no span is started.
/// </summary>
internal static class TracingPipeline
{
    /// <summary>Null when traces are not exported: then nothing listens to "Sluice.Server" and tracing costs nothing.</summary>
    public static TracerProvider? Build(ServerOptions options, string brokerId)
    {
        var monitor = options.Monitor;
        if (!monitor.OtlpTraces)
        {
            return null;
        }

        // The configuration loader refuses this too; options built in code reach here unchecked.
        var endpoint = monitor.OtlpEndpoint ?? throw new InvalidOperationException("monitor.otlp.traces.enabled is set but no collector is: set monitor.otlp.endpoint");

        var exporterOptions = new OtlpExporterOptions
        {
            Protocol = monitor.OtlpProtocol == OtlpProtocol.HttpProtobuf ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc,
            Endpoint = monitor.OtlpProtocol == OtlpProtocol.HttpProtobuf && endpoint.AbsolutePath is "" or "/"
                ? new Uri(endpoint, "/v1/traces") // as for metrics: set in code, the URL is the full signal path
                : endpoint,
        };

        // The exporter batches on its own thread (OpenTelemetry's defaults: up to 2048 queued spans, dropped beyond
        // that, sent every 5 s or per 512): a slow or dead collector never holds up a publish.
        var export = new BatchActivityExportProcessor(new OtlpTraceExporter(exporterOptions));
        return Sdk.CreateTracerProviderBuilder()
            .ConfigureResource(resource => resource.AddService("sluice", serviceVersion: typeof(TracingPipeline).Assembly.GetName().Version?.ToString(), serviceInstanceId: brokerId))
            .AddSource(ServerTracing.SourceName)
            // ServerTracing.StartPublish samples publishes (parent-based, `monitor.otlp.traces.sample.ratio` for
            // roots) before starting a span; what reaches this sampler is already chosen, and the other spans are
            // children of a sampled publish.
            .SetSampler(new ParentBasedSampler(new AlwaysOnSampler()))
            .AddProcessor(new OwnSpans(brokerId, export))
            .Build();
    }

    /// <summary>
    /// Passes on only this broker's spans: several brokers in one process (tests, benchmarks) share the ActivitySource,
    /// and each one's provider sees every span. A span's <see cref="ServerTracing.BrokerIdTag"/> says whose it is.
    /// </summary>
    private sealed class OwnSpans(string brokerId, BaseProcessor<Activity> export) : CompositeProcessor<Activity>([export])
    {
        public override void OnStart(Activity data)
        {
            // Tags are set after the start: the export processor does nothing on start anyway.
        }

        public override void OnEnd(Activity data)
        {
            if (data.GetTagItem(ServerTracing.BrokerIdTag) is string id && id == brokerId)
            {
                base.OnEnd(data);
            }
        }
    }
}
