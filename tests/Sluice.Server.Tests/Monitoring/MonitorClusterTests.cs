using System.Net;
using System.Text.Json;
using Sluice.Protocol.Api;
using Sluice.Server.Tests.Cluster;

namespace Sluice.Server.Tests.Monitoring;

/// <summary>The monitoring port on brokers of an in-process cluster (the cluster tests' harness, embedded metadata).</summary>
public sealed class MonitorClusterTests
{
    [Fact]
    public async Task Each_broker_is_ready_reports_the_cluster_and_counts_only_what_it_leads()
    {
        await using var cluster = await ClusterHarness.StartAsync(3, MonitorTests.WithMonitor);
        using var http = MonitorTests.NewClient();
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("watched", replicationFactor: 3));
        for (var i = 0; i < 4; i++)
        {
            await cluster.Brokers[1].PublishAsync("watched", "m" + i, policy: AckPolicy.All);
        }

        var leader = cluster.Leader("watched")!;
        foreach (var broker in cluster.Brokers)
        {
            var port = broker.Server.MonitorPort!.Value;
            var ready = await MonitorTests.GetAsync(http, $"http://127.0.0.1:{port}/readyz", HttpVersion.Version11);
            Assert.Equal((HttpStatusCode.OK, "ready\n"), (ready.Status, ready.Body));

            var view = JsonDocument.Parse((await MonitorTests.GetAsync(http, $"http://127.0.0.1:{port}/v1/cluster", HttpVersion.Version20)).Body).RootElement;
            Assert.True(view.GetProperty("clustered").GetBoolean());
            Assert.Equal(["b1", "b2", "b3"], view.GetProperty("brokers").EnumerateArray().Select(b => b.GetProperty("id").GetString()!).Order().ToArray());
            Assert.Contains(view.GetProperty("controller").GetString(), new[] { "b1", "b2", "b3" });

            // Each broker's meter is its own, though all three live in this process under one meter name.
            var metrics = await MonitorTests.ScrapeAsync(http, port);
            var stream = ("messaging_destination_name", "watched");
            Assert.Equal(broker == leader ? 4 : 0, metrics.Value("sluice_stream_received_messages_total", stream));
            Assert.Equal(0, metrics.Value("sluice_partitions_under_replicated"));
            if (broker == leader)
            {
                Assert.Equal(3, metrics.Value("sluice_partition_isr_size", stream));
                Assert.Equal(3, metrics.Value("sluice_partition_high_watermark", stream));
            }
        }

        // The leader goes: the brokers left see the partition's leader change.
        await leader.StopAsync();
        await ClusterHarness.WaitForAsync(() => cluster.Leader("watched") is { } l && l != leader, "another broker leads");
        var survivor = cluster.Leader("watched")!;
        var after = await MonitorTests.ScrapeAsync(http, survivor.Server.MonitorPort!.Value);
        Assert.True(after.Value("sluice_partition_leader_changes_total", ("messaging_destination_name", "watched")) >= 1);
    }

    [Fact]
    public async Task Web_console_actions_sent_to_a_broker_that_is_not_the_controller_apply_to_the_whole_cluster()
    {
        await using var cluster = await ClusterHarness.StartAsync(3, MonitorTests.WithMonitor);
        using var http = MonitorTests.NewClient(new SocketsHttpHandler { UseProxy = false, UseCookies = false });
        var controller = cluster.Brokers[0].Server.Cluster!.View.Current.Controller?.BrokerId;
        var other = cluster.Brokers.First(b => b.Options.Clustering.ServerId != controller);
        var origin = $"http://127.0.0.1:{other.Server.MonitorPort}";

        // The token the console page hands out, sent back as cookie and header, as the page's script does.
        using var page = await http.GetAsync(origin + "/console/");
        var token = page.Headers.GetValues("Set-Cookie").Single().Split(';')[0].Split('=')[1];
        async Task<(HttpStatusCode, string)> SendAsync(HttpMethod method, string path, string? json = null)
        {
            using var request = new HttpRequestMessage(method, origin + path);
            request.Headers.Add("Cookie", "sluice_csrf=" + token);
            request.Headers.Add("X-Sluice-Csrf", token);
            request.Headers.Add("Origin", origin);
            if (json is not null)
            {
                request.Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
            }

            using var response = await http.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        var created = await SendAsync(HttpMethod.Post, "/v1/streams", """{"name":"from-console","subject":"from.console","partitions":2,"replication_factor":3}""");
        Assert.Equal(HttpStatusCode.OK, created.Item1);
        await ClusterHarness.WaitForAsync(() => cluster.Brokers.All(b => b.Server.Broker.TryGetStream("from-console", out var s) && s.Partitions.Length == 2), "every broker has the stream");
        Assert.Equal(HttpStatusCode.Conflict, (await SendAsync(HttpMethod.Post, "/v1/streams", """{"name":"from-console","subject":"x"}""")).Item1);

        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Post, "/v1/streams/from-console/pause", """{"partitions":[1]}""")).Item1);
        await ClusterHarness.WaitForAsync(() => cluster.Brokers.All(b => b.Server.Broker.TryGetStream("from-console", out var s) && s.Partitions[1].IsPaused && !s.Partitions[0].IsPaused), "partition 1 paused on every broker");

        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Delete, "/v1/streams/from-console")).Item1);
        await ClusterHarness.WaitForAsync(() => cluster.Brokers.All(b => !b.Server.Broker.TryGetStream("from-console", out _)), "the stream is gone from every broker");
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(HttpMethod.Delete, "/v1/streams/from-console")).Item1);
    }
}
