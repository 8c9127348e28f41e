using System.Net;
using System.Text;
using Sluice.Server.Configuration;
using Sluice.Server.Tests.Cluster;

namespace Sluice.Server.Tests.Monitoring;

/// <summary>`monitor.otlp.endpoint`: metrics pushed to a collector (here a tiny OTLP/HTTP receiver in the test).</summary>
public sealed class MonitorOtlpTests
{
    [Fact]
    public async Task Metrics_are_pushed_to_an_OTLP_HTTP_collector()
    {
        await using var collector = await OtlpReceiver.StartAsync("/v1/metrics");
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
}
