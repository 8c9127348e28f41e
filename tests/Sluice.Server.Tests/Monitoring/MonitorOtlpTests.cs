using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sluice.Server.Configuration;
using Sluice.Server.Tests.Cluster;

namespace Sluice.Server.Tests.Monitoring;

/// <summary>`monitor.otlp.endpoint`: metrics pushed to a collector (here a tiny OTLP/HTTP receiver in the test).</summary>
public sealed class MonitorOtlpTests
{
    [Fact]
    public async Task Metrics_are_pushed_to_an_OTLP_HTTP_collector()
    {
        await using var collector = await OtlpReceiver.StartAsync();
        await using var h = await BrokerHarness.StartAsync(o => o with
        {
            Monitor = o.Monitor with { OtlpEndpoint = new Uri($"http://127.0.0.1:{collector.Port}"), OtlpProtocol = OtlpProtocol.HttpProtobuf, OtlpInterval = TimeSpan.FromMilliseconds(200) },
        });
        Assert.Null(h.Server.MonitorPort); // OTLP needs no monitoring port
        await h.CreateStreamAsync("pushed-stream", "pushed.subject");
        await h.PublishAsync("pushed-stream", "one");

        // Metric names and attribute values travel as UTF-8 strings in the protobuf body.
        await ClusterHarness.WaitForAsync(
            () => collector.Bodies.Any(b => Contains(b, "sluice.stream.received.messages") && Contains(b, "pushed-stream")),
            "the collector received the stream's counter");
        Assert.All(collector.ContentTypes, t => Assert.Equal("application/x-protobuf", t));
    }

    [Fact]
    public async Task A_dead_collector_does_not_disturb_the_server()
    {
        int deadPort;
        using (var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            deadPort = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        await using var h = await BrokerHarness.StartAsync(o => MonitorTests.WithMonitor(o) with
        {
            Monitor = MonitorTests.WithMonitor(o).Monitor with { OtlpEndpoint = new Uri($"http://127.0.0.1:{deadPort}"), OtlpProtocol = OtlpProtocol.HttpProtobuf, OtlpInterval = TimeSpan.FromMilliseconds(100) },
        });
        await h.CreateStreamAsync("undisturbed", "undisturbed.subject");
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(i, (await h.PublishAsync("undisturbed", "m" + i))!.Offset);
        }

        using var http = MonitorTests.NewClient();
        var metrics = await MonitorTests.ScrapeAsync(http, h.Server.MonitorPort!.Value);
        Assert.Equal(3, metrics.Value("sluice_stream_received_messages_total", ("messaging_destination_name", "undisturbed")));
    }

    private static bool Contains(byte[] body, string text) => body.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;

    /// <summary>Accepts OTLP/HTTP metric exports (POST /v1/metrics) and keeps their bodies; answers an empty success.</summary>
    private sealed class OtlpReceiver : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private OtlpReceiver(WebApplication app) => _app = app;

        public ConcurrentQueue<byte[]> Bodies { get; } = new();

        public ConcurrentQueue<string?> ContentTypes { get; } = new();

        public int Port { get; private set; }

        public static async Task<OtlpReceiver> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            var receiver = new OtlpReceiver(app);
            app.MapPost("/v1/metrics", async (HttpContext http) =>
            {
                using var body = new MemoryStream();
                await http.Request.Body.CopyToAsync(body);
                receiver.Bodies.Enqueue(body.ToArray());
                receiver.ContentTypes.Enqueue(http.Request.ContentType);
                return Results.Bytes([], "application/x-protobuf"); // an empty ExportMetricsServiceResponse
            });
            await app.StartAsync();
            receiver.Port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
            return receiver;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
