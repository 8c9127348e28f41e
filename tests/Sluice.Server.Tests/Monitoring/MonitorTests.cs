using System.Net;
using System.Text.Json;
using Sluice.Protocol.Api;
using Sluice.Server.Configuration;
using Sluice.Server.Monitoring;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Monitoring;

/// <summary>The monitoring port of a real server: /metrics scraped and parsed, health, readiness and the JSON views.</summary>
public sealed class MonitorTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    internal static ServerOptions WithMonitor(ServerOptions o) => o with { Monitor = o.Monitor with { Listen = new HostPort("127.0.0.1", 0) } };

    internal static HttpClient NewClient(HttpMessageHandler? handler = null) => new(handler ?? new SocketsHttpHandler { UseProxy = false }) { Timeout = Timeout };

    /// <summary>GET over exactly the given HTTP version (h2c with prior knowledge for 2.0 on http://).</summary>
    internal static async Task<(HttpStatusCode Status, string Body, Version Version, string? ContentType)> GetAsync(HttpClient http, string url, Version version)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url) { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var response = await http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response.Version, response.Content.Headers.ContentType?.MediaType);
    }

    internal static async Task<PrometheusText> ScrapeAsync(HttpClient http, int port, Version? version = null)
    {
        var (status, body, actual, _) = await GetAsync(http, $"http://127.0.0.1:{port}/metrics", version ?? HttpVersion.Version11);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(version ?? HttpVersion.Version11, actual);
        return PrometheusText.Parse(body);
    }

    [Fact]
    public async Task Metrics_count_exactly_what_was_published_and_read_over_HTTP_1_1_and_HTTP_2()
    {
        await using var h = await BrokerHarness.StartAsync(WithMonitor);
        var port = h.Server.MonitorPort!.Value;
        await h.CreateStreamAsync("orders", "orders.subject", partitions: 2);
        var published0 = new[] { "a", "bb", "ccc", "dddd", "eeeee" };
        foreach (var value in published0)
        {
            await h.PublishAsync("orders", value, partition: 0);
        }

        await h.PublishAsync("orders", "xy", partition: 1, key: "k1");
        await h.PublishAsync("orders", "xyz", partition: 1);
        await h.PublishAsync("orders", "w", partition: 1);
        await using (var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "orders", Partition = 0, StartPosition = StartPosition.Earliest }))
        {
            await BrokerHarness.ReadAsync(sub, published0.Length);
        }

        using var http = NewClient();
        foreach (var version in new[] { HttpVersion.Version11, HttpVersion.Version20 })
        {
            var metrics = await ScrapeAsync(http, port, version);
            var stream = ("messaging_destination_name", "orders");
            (string, string) P(int id) => ("messaging_destination_partition_id", id.ToString(System.Globalization.CultureInfo.InvariantCulture));

            Assert.Equal("counter", metrics.Types["sluice_stream_received_messages_total"]);
            Assert.Equal(8, metrics.Value("sluice_stream_received_messages_total", stream));
            Assert.Equal(15 + 2 + 2 + 3 + 1, metrics.Value("sluice_stream_received_size_bytes_total", stream)); // keys count: "k1"
            Assert.Equal(5, metrics.Value("sluice_partition_received_messages_total", stream, P(0)));
            Assert.Equal(3, metrics.Value("sluice_partition_received_messages_total", stream, P(1)));
            Assert.Equal(5, metrics.Value("sluice_stream_sent_messages_total", stream));
            Assert.Equal(15, metrics.Value("sluice_stream_sent_size_bytes_total", stream));
            Assert.Equal(5, metrics.Value("sluice_partition_sent_messages_total", stream, P(0)));
            Assert.Equal(4, metrics.Value("sluice_partition_high_watermark", stream, P(0)));
            Assert.Equal(2, metrics.Value("sluice_partition_newest_offset", stream, P(1)));
            Assert.Equal(1, metrics.Value("sluice_partition_isr_size", stream, P(0)));
            Assert.Equal(0, metrics.Value("sluice_partitions_under_replicated"));
            Assert.Equal(2, metrics.Value("sluice_storage_segments", stream));
            Assert.True(metrics.Value("sluice_storage_size_bytes", stream) > 15);
            Assert.True(metrics.Value("sluice_connections") >= 1);

            // One ack latency sample per appended batch (each unary publish is its own batch here), in seconds.
            Assert.Equal("histogram", metrics.Types["sluice_publish_duration_seconds"]);
            Assert.Equal(8, metrics.Value("sluice_publish_duration_seconds_count"));
            Assert.Single(metrics.Find("sluice_publish_duration_seconds_bucket", ("le", "0.0001")));
            Assert.Equal(8, metrics.Value("sluice_publish_duration_seconds_bucket", ("le", "+Inf")));

            var publish = new[] { ("rpc_system", "grpc"), ("rpc_service", "proto.API"), ("rpc_method", "Publish"), ("rpc_grpc_status_code", "0") };
            Assert.Equal(8, metrics.Value("rpc_server_call_duration_seconds_count", publish));
            Assert.Equal(1, metrics.Value("rpc_server_call_duration_seconds_count", ("rpc_method", "CreateStream"), ("rpc_grpc_status_code", "0")));

            Assert.Contains(metrics.Samples, s => s.Name.StartsWith("dotnet_gc_", StringComparison.Ordinal)); // runtime instrumentation
        }
    }

    [Fact]
    public async Task Past_the_2000_series_limit_stream_totals_stay_exact_and_partition_series_are_capped_without_an_overflow_series()
    {
        const int streams = 5, partitionsEach = 500, cap = 100; // 2,500 active partitions: past OpenTelemetry's 2,000 per instrument
        await using var h = await BrokerHarness.StartAsync(o => WithMonitor(o) with { Monitor = WithMonitor(o).Monitor with { PartitionSeriesMax = cap } });
        for (var s = 0; s < streams; s++)
        {
            await h.CreateStreamAsync("wide" + s, "wide" + s, partitions: partitionsEach);
        }

        await Parallel.ForEachAsync(Enumerable.Range(0, streams * partitionsEach), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
            await h.PublishAsync("wide" + (i / partitionsEach), "v" + i, partition: i % partitionsEach));

        using var http = NewClient();
        var metrics = await ScrapeAsync(http, h.Server.MonitorPort!.Value);
        for (var s = 0; s < streams; s++)
        {
            Assert.Equal(partitionsEach, metrics.Value("sluice_stream_received_messages_total", ("messaging_destination_name", "wide" + s)));
        }

        Assert.Equal(cap, metrics.Find("sluice_partition_received_messages_total").Count());
        Assert.Equal(cap, metrics.Find("sluice_partition_high_watermark").Count());
        Assert.DoesNotContain(metrics.Samples, sample => sample.Labels.ContainsKey("otel_metric_overflow"));
    }

    [Fact]
    public async Task A_failed_call_is_counted_under_its_status_code()
    {
        await using var h = await BrokerHarness.StartAsync(WithMonitor);
        await Assert.ThrowsAsync<Sluice.Protocol.Grpc.GrpcException>(() => h.PublishAsync("no-such-stream", "x"));
        using var http = NewClient();
        var metrics = await ScrapeAsync(http, h.Server.MonitorPort!.Value);
        Assert.Equal(1, metrics.Value("rpc_server_call_duration_seconds_count", ("rpc_method", "Publish"), ("rpc_grpc_status_code", "5"))); // NOT_FOUND
    }


    [Fact]
    public async Task Cursor_and_group_lag_count_the_messages_past_the_stored_cursor_and_leave_out_cursors_not_stored_yet()
    {
        await using var h = await BrokerHarness.StartAsync(o => WithMonitor(o) with { Cursors = o.Cursors with { Partitions = 1 } });
        await h.CreateStreamAsync("orders", "orders.subject", partitions: 2);
        await h.PublishManyAsync("orders", 10, partition: 0);
        await h.PublishManyAsync("orders", 4, partition: 1);
        Task Set(string cursor, int partition, long offset) => h.CallAsync("SetCursor",
            new SetCursorRequest { CursorId = cursor, Stream = "orders", Partition = partition, Offset = offset }, SetCursorResponse.Parser);
        await Set("reader", 0, 6);            // handled 0..6 of 0..9: 3 left
        await Set("__group:billing", 0, 9);   // caught up on partition 0
        await Set("__group:billing", 1, 0);   // 1..3 left on partition 1
        await Set("__group:audit", 0, -1);    // stored, but nothing handled yet: no lag (Kafka's "-")

        using var http = NewClient();
        var metrics = await ScrapeAsync(http, h.Server.MonitorPort!.Value);
        var stream = ("messaging_destination_name", "orders");
        Assert.Equal(3, metrics.Value("sluice_cursor_lag", ("sluice_cursor_id", "reader"), stream, ("messaging_destination_partition_id", "0")));
        Assert.Equal(3, metrics.Value("sluice_consumer_group_lag", ("messaging_consumer_group_name", "billing")));
        Assert.Empty(metrics.Find("sluice_consumer_group_lag", ("messaging_consumer_group_name", "audit")));
        Assert.Empty(metrics.Find("sluice_cursor_lag", ("sluice_cursor_id", "__group:audit")));
    }
    [Fact]
    public async Task Fsync_latency_is_recorded_in_seconds_when_durability_is_always()
    {
        await using var h = await BrokerHarness.StartAsync(o => WithMonitor(o) with { Storage = o.Storage with { Durability = DurabilityMode.Always } });
        await h.CreateStreamAsync("durable", "durable.subject");
        await h.PublishAsync("durable", "one");
        using var http = NewClient();
        var metrics = await ScrapeAsync(http, h.Server.MonitorPort!.Value);
        Assert.Equal("histogram", metrics.Types["sluice_storage_fsync_duration_seconds"]);
        Assert.True(metrics.Value("sluice_storage_fsync_duration_seconds_count") >= 1);
        Assert.Single(metrics.Find("sluice_storage_fsync_duration_seconds_bucket", ("le", "0.001")));
    }

    [Fact]
    public async Task A_connection_that_sends_nothing_is_closed_and_does_not_block_others()
    {
        await using var h = await BrokerHarness.StartAsync(WithMonitor);
        var port = h.Server.MonitorPort!.Value;
        using var silent = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await silent.ConnectAsync(System.Net.IPAddress.Loopback, port);

        using var http = new HttpClient();
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync(new Uri($"http://127.0.0.1:{port}/healthz"))).StatusCode);

        // The server gives up on the silent one (after 10 s): the read ends with 0 bytes or a reset.
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var buffer = new byte[16];
        try
        {
            Assert.Equal(0, await silent.ReceiveAsync(buffer, System.Net.Sockets.SocketFlags.None, limit.Token));
        }
        catch (System.Net.Sockets.SocketException)
        {
            // reset: closed as well
        }
    }

    [Fact]
    public async Task Healthz_and_readyz_answer_on_a_started_single_node()
    {
        await using var h = await BrokerHarness.StartAsync(WithMonitor);
        using var http = NewClient();
        var port = h.Server.MonitorPort!.Value;
        var health = await GetAsync(http, $"http://127.0.0.1:{port}/healthz", HttpVersion.Version11);
        Assert.Equal((HttpStatusCode.OK, "ok\n"), (health.Status, health.Body));
        var ready = await GetAsync(http, $"http://127.0.0.1:{port}/readyz", HttpVersion.Version20);
        Assert.Equal((HttpStatusCode.OK, "ready\n"), (ready.Status, ready.Body));
    }

    [Fact]
    public async Task Readyz_answers_503_with_the_reason_until_the_server_has_recovered_and_again_while_it_stops()
    {
        using var dir = new TempDirectory("sluice-monitor");
        var options = WithMonitor(ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dir.Path });
        using var metrics = new ServerMetrics(options.Monitor.PartitionSeriesMax);
        metrics.Provider = MetricsPipeline.Build(options, metrics);
        await using var monitor = await MonitorServer.StartAsync(options, metrics.Provider!, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, CancellationToken.None);
        using var http = NewClient();
        var url = $"http://127.0.0.1:{monitor.Port}";

        // What the port answers between binding and the end of recovery (SluiceServer opens it before the data).
        var early = await GetAsync(http, url + "/readyz", HttpVersion.Version11);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, early.Status);
        Assert.Contains("recovering", early.Body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(http, url + "/healthz", HttpVersion.Version11)).Status);
        var view = await GetAsync(http, url + "/v1/streams", HttpVersion.Version11);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, view.Status);

        monitor.NotReady("stopping");
        var stopping = await GetAsync(http, url + "/readyz", HttpVersion.Version20);
        Assert.Equal((HttpStatusCode.ServiceUnavailable, "not ready: stopping\n"), (stopping.Status, stopping.Body));
    }

    [Fact]
    public async Task The_JSON_views_describe_the_server_its_streams_partitions_cluster_and_groups()
    {
        await using var h = await BrokerHarness.StartAsync(WithMonitor);
        await h.CreateStreamAsync("views", "views.subject", partitions: 2);
        await h.PublishManyAsync("views", 3, partition: 1);
        await h.SetReadonlyAsync("views", true, 0);
        using var http = NewClient();
        var url = $"http://127.0.0.1:{h.Server.MonitorPort}";

        async Task<JsonElement> View(string path)
        {
            var (status, body, _, contentType) = await GetAsync(http, url + path, HttpVersion.Version11);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal("application/json", contentType);
            return JsonDocument.Parse(body).RootElement;
        }

        var server = await View("/v1/server");
        Assert.Equal(h.Server.ServerId, server.GetProperty("server_id").GetString());
        Assert.False(server.GetProperty("clustered").GetBoolean());
        Assert.Equal(h.Server.Port, server.GetProperty("port").GetInt32());
        Assert.True(server.GetProperty("uptime_seconds").GetDouble() >= 0);
        Assert.True(server.GetProperty("memory").GetProperty("working_set_bytes").GetInt64() > 0);
        Assert.Equal("never", server.GetProperty("config").GetProperty("storage_durability").GetString());
        Assert.True(server.GetProperty("streams").GetInt32() >= 1);

        var streams = (await View("/v1/streams?internal=false")).GetProperty("streams").EnumerateArray().ToList();
        var views = Assert.Single(streams);
        Assert.Equal("views", views.GetProperty("name").GetString());
        Assert.Equal(2, views.GetProperty("partitions").GetInt32());
        Assert.Equal(3, views.GetProperty("received_messages").GetInt64());

        var partitions = (await View("/v1/partitions?stream=views")).GetProperty("partitions").EnumerateArray().ToList();
        Assert.Equal(2, partitions.Count);
        var p0 = partitions.Single(p => p.GetProperty("partition").GetInt32() == 0);
        var p1 = partitions.Single(p => p.GetProperty("partition").GetInt32() == 1);
        Assert.True(p0.GetProperty("readonly").GetBoolean());
        Assert.False(p1.GetProperty("readonly").GetBoolean());
        Assert.False(p1.GetProperty("paused").GetBoolean());
        Assert.Equal(h.Server.ServerId, p1.GetProperty("leader").GetString());
        Assert.Equal([h.Server.ServerId], p1.GetProperty("isr").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.Equal(2, p1.GetProperty("high_watermark").GetInt64());
        Assert.Equal(2, p1.GetProperty("newest_offset").GetInt64());
        Assert.Equal(-1, p0.GetProperty("high_watermark").GetInt64());
        Assert.True(p1.GetProperty("size_bytes").GetInt64() > 0);

        var cluster = await View("/v1/cluster");
        Assert.False(cluster.GetProperty("clustered").GetBoolean());
        Assert.Equal(h.Server.ServerId, cluster.GetProperty("controller").GetString());
        var broker = Assert.Single(cluster.GetProperty("brokers").EnumerateArray().ToList());
        Assert.Equal(h.Server.ServerId, broker.GetProperty("id").GetString());
        Assert.Equal(h.Server.Port, broker.GetProperty("port").GetInt32());

        Assert.Empty((await View("/v1/groups")).GetProperty("groups").EnumerateArray());
    }

    [Fact]
    public async Task The_monitoring_port_serves_HTTPS_with_the_gRPC_ports_certificate_over_both_HTTP_versions()
    {
        using var certDir = new TempDirectory("sluice-monitor-tls");
        var cert = TestCertificate.CreateSelfSigned(certDir);
        await using var h = await BrokerHarness.StartAsync(o => WithMonitor(o) with { Tls = o.Tls with { Cert = cert.CertificatePath, Key = cert.KeyPath } });
        var trusted = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(File.ReadAllText(cert.CertificatePath));
        using var http = NewClient(new SocketsHttpHandler
        {
            UseProxy = false,
            SslOptions = new System.Net.Security.SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, presented, _, _) => presented is not null && presented.GetRawCertData().SequenceEqual(trusted.GetRawCertData()),
            },
        });
        foreach (var version in new[] { HttpVersion.Version11, HttpVersion.Version20 })
        {
            var (status, body, actual, _) = await GetAsync(http, $"https://127.0.0.1:{h.Server.MonitorPort}/readyz", version);
            Assert.Equal((HttpStatusCode.OK, "ready\n", version), (status, body, actual));
        }
    }

    [Fact]
    public async Task Without_monitor_listen_no_monitoring_port_is_opened()
    {
        await using var h = await BrokerHarness.StartAsync();
        Assert.Null(h.Server.MonitorPort);
    }
}
