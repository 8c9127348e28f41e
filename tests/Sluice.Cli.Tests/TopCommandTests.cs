using System.Text;
using System.Text.Json;
using Sluice.Client;

namespace Sluice.Cli.Tests;

public class TopCommandTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    [Fact]
    public async Task Top_ranks_the_partition_being_published_to_first_with_its_rate()
    {
        await using var client = await SluiceClient.ConnectAsync([broker.Servers]);
        await client.CreateStreamAsync("top-busy", "top-busy", StreamOptions.Default with { Partitions = 2 });
        await client.CreateStreamAsync("top-idle", "top-idle");
        await client.PublishAsync("top-idle", Encoding.UTF8.GetBytes("once"));

        using var stop = new CancellationTokenSource();
        var publishing = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await client.PublishAsync("top-busy", Encoding.UTF8.GetBytes("m"), MessageOptions.Default with { Partition = 1 });
            }
        });
        IReadOnlyList<string> json;
        IReadOnlyList<string> table;
        try
        {
            json = await broker.RunOkAsync("top", "--iterations", "3", "--interval", "300ms", "--stream", "top-busy", "--stream", "top-idle", "-o", "json");
            table = await broker.RunOkAsync("top", "--iterations", "2", "--interval", "200ms", "--stream", "top-busy", "--limit", "1");
        }
        finally
        {
            await stop.CancelAsync();
            await publishing;
        }

        Assert.Equal(2, json.Count); // the first of three samples is the baseline
        foreach (var line in json)
        {
            using var sample = JsonDocument.Parse(line);
            Assert.Equal(3, sample.RootElement.GetProperty("partitions").GetInt32());
            var busiest = sample.RootElement.GetProperty("busiest").EnumerateArray().ToArray();
            Assert.Equal(3, busiest.Length);
            Assert.Equal("top-busy", busiest[0].GetProperty("stream").GetString());
            Assert.Equal(1, busiest[0].GetProperty("partition").GetInt32());
            Assert.True(busiest[0].GetProperty("messagesPerSecond").GetDouble() > 0, line);
            Assert.True(busiest[0].GetProperty("newestOffset").GetInt64() > 0, line);
            var idle = Assert.Single(busiest, b => b.GetProperty("stream").GetString() == "top-idle");
            Assert.Equal(0, idle.GetProperty("messagesPerSecond").GetDouble());
            Assert.Equal(0, idle.GetProperty("newestOffset").GetInt64());
            Assert.Equal(0, sample.RootElement.GetProperty("underReplicated").GetInt32());
        }

        Assert.Contains(table, l => l.Contains("2 partitions", StringComparison.Ordinal) && l.Contains("msgs/s in total", StringComparison.Ordinal));
        Assert.Contains(table, l => l.Contains("MSGS/S", StringComparison.Ordinal));
        Assert.Single(table, l => l.Contains("top-busy", StringComparison.Ordinal)); // --limit 1
    }

    [Fact]
    public async Task Top_refuses_a_non_positive_interval()
    {
        var (code, process) = await broker.RunAsync("top", "--interval", "0s", "--iterations", "1");
        await using (process)
        {
            Assert.Equal(2, code);
            Assert.Contains(process.Stderr, l => l.Contains("--interval and --limit must be positive", StringComparison.Ordinal));
        }
    }
}
