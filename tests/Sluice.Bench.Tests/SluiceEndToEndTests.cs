using System.Text.Json;

namespace Sluice.Bench.Tests;

/// <summary>The tool against a real Sluice server started in-process (--in-process): counts, not timings.</summary>
public class SluiceEndToEndTests
{
    private static async Task<JsonElement> RunJsonAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(50));
        var exit = await Program.RunAsync([.. args, "--output", "json", "--timeout", "45"], output, error, timeout.Token);
        Assert.True(exit == 0, $"exit {exit}: {error}\n{output}");
        using var document = JsonDocument.Parse(output.ToString());
        return document.RootElement.Clone();
    }

    [Fact]
    public async Task Windowed_producer_against_an_in_process_server_gets_every_ack()
    {
        var report = await RunJsonAsync("producer", "--in-process", "--create-stream", "-n", "2000", "--pub-batch", "50", "-c", "2", "-p", "2", "--ms", "100");
        Assert.Equal("sluice", report.GetProperty("target").GetString());
        Assert.True(report.GetProperty("in_process").GetBoolean());
        Assert.True(report.GetProperty("stream_created").GetBoolean());
        Assert.Equal(2000, report.GetProperty("messages").GetInt64());
        Assert.Equal(0, report.GetProperty("errors").GetInt64());
        Assert.Equal(2000 * 100, report.GetProperty("bytes").GetInt64());
        Assert.Equal(2000, report.GetProperty("latency_us").GetProperty("count").GetInt64());
        Assert.True(report.GetProperty("client").GetProperty("allocated_bytes").GetInt64() > 0);
    }

    [Fact]
    public async Task Synchronous_producer_records_one_latency_per_message()
    {
        var report = await RunJsonAsync("producer", "--in-process", "--create-stream", "-n", "300");
        Assert.Equal(300, report.GetProperty("messages").GetInt64());
        Assert.Equal(300, report.GetProperty("latency_us").GetProperty("count").GetInt64());
    }

    [Fact]
    public async Task Synchronous_publishers_spread_over_shared_connections_get_every_ack()
    {
        var report = await RunJsonAsync("producer", "--in-process", "--create-stream", "-n", "800", "-c", "8", "--connections", "3");
        Assert.Equal(8, report.GetProperty("concurrent").GetInt32());
        Assert.Equal(3, report.GetProperty("connections").GetInt32());
        Assert.Equal(800, report.GetProperty("messages").GetInt64());
        Assert.Equal(0, report.GetProperty("errors").GetInt64());
        Assert.Equal(800, report.GetProperty("latency_us").GetProperty("count").GetInt64());
    }

    [Fact]
    public async Task Consumer_reads_the_messages_it_filled_from_the_start()
    {
        var report = await RunJsonAsync("consumer", "--in-process", "-n", "1500", "--ms", "64");
        Assert.Equal("consumer", report.GetProperty("mode").GetString());
        Assert.Equal(1500, report.GetProperty("messages").GetInt64());
        Assert.Equal(1500 * 64, report.GetProperty("bytes").GetInt64());
    }

    [Fact]
    public async Task Publishing_to_a_missing_stream_counts_errors_and_exits_1()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Program.RunAsync(["producer", "--in-process", "-n", "5", "--stream", "absent", "--timeout", "30"], output, error, CancellationToken.None);
        Assert.Equal(1, exit);
        Assert.Contains("errors 5", output.ToString(), StringComparison.Ordinal);
    }
}
