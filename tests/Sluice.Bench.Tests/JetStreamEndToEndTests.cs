using System.Text.Json;
using Sluice.TestKit;

namespace Sluice.Bench.Tests;

/// <summary>The tool against a real nats-server with JetStream on loopback: counts, not timings.</summary>
public class JetStreamEndToEndTests
{
    private static async Task<JsonElement> RunJsonAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        var exit = await Program.RunAsync([.. args, "--output", "json", "--timeout", "40"], output, error, timeout.Token);
        Assert.True(exit == 0, $"exit {exit}: {error}\n{output}");
        using var document = JsonDocument.Parse(output.ToString());
        return document.RootElement.Clone();
    }

    [Fact]
    public async Task Windowed_and_synchronous_producers_then_a_consumer_see_every_message()
    {
        await using var nats = await NatsServerProcess.StartAsync(new NatsServerProcessOptions { JetStream = true });
        string[] common = ["--target", "jetstream", "--servers", nats.Url, "--stream", "e2e", "--subject", "e2e.subject", "--ms", "100"];

        var windowed = await RunJsonAsync(["producer", .. common, "--create-stream", "-n", "3000", "--pub-batch", "50", "-c", "2", "--server-pid", nats.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Assert.Equal("jetstream", windowed.GetProperty("target").GetString());
        Assert.True(windowed.GetProperty("stream_created").GetBoolean());
        Assert.Equal(3000, windowed.GetProperty("messages").GetInt64());
        Assert.Equal(0, windowed.GetProperty("errors").GetInt64());
        Assert.Equal(3000 * 100, windowed.GetProperty("bytes").GetInt64());
        Assert.Equal(3000, windowed.GetProperty("latency_us").GetProperty("count").GetInt64());
        Assert.True(windowed.GetProperty("server").GetProperty("cpu_s").GetDouble() >= 0);
        Assert.True(windowed.GetProperty("server").GetProperty("peak_rss_kb").GetInt64() > 0);

        // Four synchronous publishers on two shared connections: each has its own PubAck inbox.
        var sync = await RunJsonAsync(["producer", .. common, "-n", "500", "-c", "4", "--connections", "2"]);
        Assert.Equal(2, sync.GetProperty("connections").GetInt32());
        Assert.Equal(500, sync.GetProperty("messages").GetInt64());
        Assert.Equal(0, sync.GetProperty("errors").GetInt64());
        Assert.Equal(500, sync.GetProperty("latency_us").GetProperty("count").GetInt64());
        Assert.True(sync.GetProperty("latency_us").GetProperty("p50").GetInt64() <= sync.GetProperty("latency_us").GetProperty("max").GetInt64());

        var noAck = await RunJsonAsync(["producer", .. common, "-n", "500", "--ack-policy", "none", "--pub-batch", "10"]);
        Assert.Equal(500, noAck.GetProperty("messages").GetInt64());
        Assert.Equal(JsonValueKind.Null, noAck.GetProperty("latency_us").ValueKind);

        // 4,000 stored; reading 3,600 from the start proves the consumer starts at the beginning and stops at N.
        var consumer = await RunJsonAsync(["consumer", .. common, "-n", "3600"]);
        Assert.Equal(3600, consumer.GetProperty("messages").GetInt64());
        Assert.Equal(3600 * 100, consumer.GetProperty("bytes").GetInt64());

        var all = await RunJsonAsync(["consumer", .. common, "-n", "4000", "--delete-stream"]);
        Assert.Equal(4000, all.GetProperty("messages").GetInt64());
    }

    [Fact]
    public async Task Partitions_map_to_one_stream_each_and_are_read_separately()
    {
        await using var nats = await NatsServerProcess.StartAsync(new NatsServerProcessOptions { JetStream = true });
        string[] common = ["--target", "jetstream", "--servers", nats.Url, "--stream", "parts", "--subject", "parts"];
        var produced = await RunJsonAsync(["producer", .. common, "--create-stream", "-n", "900", "-p", "3", "--pub-batch", "20"]);
        Assert.Equal(900, produced.GetProperty("messages").GetInt64());

        var second = await RunJsonAsync(["consumer", .. common, "-n", "300", "--partition", "2"]);
        Assert.Equal(300, second.GetProperty("messages").GetInt64());
    }

    [Fact]
    public async Task A_consumer_run_with_a_timeout_longer_than_a_minute_reads_every_message()
    {
        // compare.sh passes --timeout 1800; the consumer's pull options must not be derived from it.
        await using var nats = await NatsServerProcess.StartAsync(new NatsServerProcessOptions { JetStream = true });
        string[] common = ["--target", "jetstream", "--servers", nats.Url, "--stream", "long", "--subject", "long", "--output", "json", "--timeout", "1800"];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        using var output = new StringWriter();
        using var error = new StringWriter();
        Assert.Equal(0, await Program.RunAsync(["producer", .. common, "--create-stream", "-n", "200", "--pub-batch", "20"], output, error, timeout.Token));

        using var consumed = new StringWriter();
        var exit = await Program.RunAsync(["consumer", .. common, "-n", "200"], consumed, error, timeout.Token);
        Assert.True(exit == 0, $"exit {exit}: {error}\n{consumed}");
        using var document = JsonDocument.Parse(consumed.ToString());
        Assert.Equal(200, document.RootElement.GetProperty("messages").GetInt64());
    }

    [Fact]
    public async Task A_missing_stream_fails_the_run_with_a_message()
    {
        await using var nats = await NatsServerProcess.StartAsync(new NatsServerProcessOptions { JetStream = true });
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Program.RunAsync(
            ["producer", "--target", "jetstream", "--servers", nats.Url, "--stream", "absent", "--subject", "absent", "-n", "5", "--timeout", "20"],
            output, error, CancellationToken.None);
        Assert.Equal(1, exit);
        Assert.Contains("errors 5", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("No responders", output.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_missing_stream_fails_a_windowed_run_with_the_same_message()
    {
        // The windowed mode gets failures as TryPublishAsync results, not exceptions; they must read the same.
        await using var nats = await NatsServerProcess.StartAsync(new NatsServerProcessOptions { JetStream = true });
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Program.RunAsync(
            ["producer", "--target", "jetstream", "--servers", nats.Url, "--stream", "absent", "--subject", "absent", "-n", "5", "--pub-batch", "5", "--timeout", "20"],
            output, error, CancellationToken.None);
        Assert.Equal(1, exit);
        Assert.Contains("errors 5", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("No responders", output.ToString(), StringComparison.OrdinalIgnoreCase);
    }
}
