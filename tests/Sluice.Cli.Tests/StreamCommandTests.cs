using System.Text.Json;

namespace Sluice.Cli.Tests;

public class StreamCommandTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    [Fact]
    public async Task A_stream_is_created_listed_described_and_deleted()
    {
        var created = await broker.RunOkAsync("stream", "create", "orders", "--subject", "shop.orders", "--partitions", "2",
            "--retention-max-age", "24h", "--segment-max-bytes", "1048576", "-o", "json");
        using (var change = JsonDocument.Parse(Assert.Single(created)))
        {
            Assert.Equal("orders", change.RootElement.GetProperty("stream").GetString());
            Assert.Equal("created", change.RootElement.GetProperty("action").GetString());
            Assert.Equal([0, 1], change.RootElement.GetProperty("partitions").EnumerateArray().Select(p => p.GetInt32()));
        }

        var list = await broker.RunOkAsync("stream", "list", "--output", "json");
        using (var streams = JsonDocument.Parse(Assert.Single(list)))
        {
            var orders = Assert.Single(streams.RootElement.EnumerateArray(), s => s.GetProperty("name").GetString() == "orders");
            Assert.Equal("shop.orders", orders.GetProperty("subject").GetString());
            Assert.Equal(2, orders.GetProperty("partitions").GetInt32());
        }

        var described = await broker.RunOkAsync("stream", "describe", "orders", "-o", "json");
        using (var description = JsonDocument.Parse(Assert.Single(described)))
        {
            var partitions = description.RootElement.GetProperty("partitions").EnumerateArray().ToArray();
            Assert.Equal([0, 1], partitions.Select(p => p.GetProperty("id").GetInt32()));
            foreach (var partition in partitions)
            {
                Assert.Equal(broker.Server.ServerId, partition.GetProperty("leader").GetString());
                Assert.Equal([broker.Server.ServerId], partition.GetProperty("replicas").EnumerateArray().Select(r => r.GetString()));
                Assert.Equal([broker.Server.ServerId], partition.GetProperty("isr").EnumerateArray().Select(r => r.GetString()));
                Assert.Equal(-1, partition.GetProperty("highWatermark").GetInt64());
                Assert.Equal(-1, partition.GetProperty("newestOffset").GetInt64());
                Assert.False(partition.GetProperty("paused").GetBoolean());
                Assert.False(partition.GetProperty("readonly").GetBoolean());
            }
        }

        var table = await broker.RunOkAsync("stream", "describe", "orders");
        Assert.Contains(table, l => l.Contains("stream orders, subject shop.orders, 2 partitions", StringComparison.Ordinal));
        Assert.Contains(table, l => l.Contains("PARTITION", StringComparison.Ordinal) && l.Contains("HIGH WATERMARK", StringComparison.Ordinal));
        Assert.DoesNotContain(table, l => l.Contains('\u001b', StringComparison.Ordinal)); // no ANSI when redirected

        var textList = await broker.RunOkAsync("stream", "list");
        Assert.Contains(textList, l => l.Contains("orders", StringComparison.Ordinal) && l.Contains("shop.orders", StringComparison.Ordinal));

        Assert.Equal(["deleted stream orders"], await broker.RunOkAsync("stream", "delete", "orders"));
        var after = await broker.RunOkAsync("stream", "list", "-o", "json");
        using (var streams = JsonDocument.Parse(Assert.Single(after)))
        {
            Assert.DoesNotContain(streams.RootElement.EnumerateArray(), s => s.GetProperty("name").GetString() == "orders");
        }

        var (code, describeGone) = await broker.RunAsync("stream", "describe", "orders");
        await using (describeGone)
        {
            Assert.Equal(1, code);
            Assert.Equal("sluice: stream orders does not exist", Assert.Single(describeGone.Stderr));
        }
    }

    [Fact]
    public async Task Pause_and_readonly_show_in_describe_and_readonly_refuses_publishes()
    {
        await broker.RunOkAsync("stream", "create", "gauges", "--subject", "gauges", "--partitions", "2");

        Assert.Equal(["paused stream gauges (partition 1)"], await broker.RunOkAsync("stream", "pause", "gauges", "--partitions", "1"));
        var paused = await DescribeAsync("gauges");
        Assert.Equal([false, true], paused.Select(p => p.GetProperty("paused").GetBoolean()));

        var readonlyChange = await broker.RunOkAsync("stream", "readonly", "gauges", "--partitions", "0", "-o", "json");
        using (var change = JsonDocument.Parse(Assert.Single(readonlyChange)))
        {
            Assert.Equal("readonly", change.RootElement.GetProperty("action").GetString());
            Assert.Equal([0], change.RootElement.GetProperty("partitions").EnumerateArray().Select(p => p.GetInt32()));
        }

        Assert.Equal([true, false], (await DescribeAsync("gauges")).Select(p => p.GetProperty("readonly").GetBoolean()));

        var (code, refused) = await broker.RunAsync("pub", "gauges", "42");
        await using (refused)
        {
            Assert.Equal(1, code);
            Assert.Contains("readonly", Assert.Single(refused.Stderr), StringComparison.Ordinal);
        }

        Assert.Equal(["stream gauges is writable (all 2 partitions)"], await broker.RunOkAsync("stream", "readonly", "gauges", "--off"));
        Assert.Equal(["partition 0 offset 0"], await broker.RunOkAsync("pub", "gauges", "42"));
        Assert.Equal([false, false], (await DescribeAsync("gauges")).Select(p => p.GetProperty("readonly").GetBoolean()));
    }

    [Fact]
    public async Task Creating_an_existing_stream_or_pausing_a_missing_partition_fails_with_one_line()
    {
        await broker.RunOkAsync("stream", "create", "twice", "--subject", "twice");

        var (code, again) = await broker.RunAsync("stream", "create", "twice", "--subject", "twice");
        await using (again)
        {
            Assert.Equal(1, code);
            Assert.Equal("sluice: stream twice already exists", Assert.Single(again.Stderr));
        }

        var (pauseCode, pause) = await broker.RunAsync("stream", "pause", "twice", "--partitions", "0,3");
        await using (pause)
        {
            Assert.Equal(1, pauseCode);
            Assert.Equal("sluice: stream twice has no partition 3 (it has 1)", Assert.Single(pause.Stderr));
        }

        var (deleteCode, delete) = await broker.RunAsync("stream", "delete", "never-created");
        await using (delete)
        {
            Assert.Equal(1, deleteCode);
            Assert.Equal("sluice: stream never-created does not exist", Assert.Single(delete.Stderr));
        }
    }

    [Fact]
    public async Task Metadata_lists_the_broker_and_the_streams()
    {
        await broker.RunOkAsync("stream", "create", "meta-a", "--subject", "meta.a", "--partitions", "3");

        var json = await broker.RunOkAsync("metadata", "-o", "json");
        using var metadata = JsonDocument.Parse(Assert.Single(json));
        var only = Assert.Single(metadata.RootElement.GetProperty("brokers").EnumerateArray());
        Assert.Equal(broker.Server.ServerId, only.GetProperty("id").GetString());
        Assert.Equal(broker.Server.Port, only.GetProperty("port").GetInt32());
        var stream = Assert.Single(metadata.RootElement.GetProperty("streams").EnumerateArray(), s => s.GetProperty("name").GetString() == "meta-a");
        Assert.Equal(3, stream.GetProperty("partitions").GetInt32());

        var text = await broker.RunOkAsync("metadata");
        Assert.Equal("1 broker", text[0]);
        Assert.Contains(text, l => l.Contains(broker.Server.ServerId, StringComparison.Ordinal) && l.Contains($":{broker.Server.Port}", StringComparison.Ordinal));
        Assert.Contains(text, l => l.Contains("meta-a", StringComparison.Ordinal) && l.Contains("meta.a", StringComparison.Ordinal));
    }

    private async Task<JsonElement[]> DescribeAsync(string stream)
    {
        var lines = await broker.RunOkAsync("stream", "describe", stream, "-o", "json");
        using var description = JsonDocument.Parse(Assert.Single(lines));
        return description.RootElement.GetProperty("partitions").EnumerateArray().Select(p => p.Clone()).ToArray();
    }
}
