using System.Text.Json;

namespace Sluice.Cli.Tests;

public class ClusterStatusSingleNodeTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    [Fact]
    public async Task A_single_node_reports_itself_without_a_controller_and_exits_0()
    {
        var json = await broker.RunOkAsync("cluster", "status", "-o", "json");
        using var status = JsonDocument.Parse(Assert.Single(json));
        Assert.False(status.RootElement.GetProperty("clustered").GetBoolean());
        Assert.Equal("", status.RootElement.GetProperty("controller").GetString());
        var only = Assert.Single(status.RootElement.GetProperty("brokers").EnumerateArray());
        Assert.Equal(broker.Server.ServerId, only.GetProperty("id").GetString());
        Assert.Equal(0, status.RootElement.GetProperty("underReplicated").GetArrayLength());

        var text = await broker.RunOkAsync("cluster", "status");
        Assert.Contains(text, l => l.StartsWith("1 broker, a single node (no controller)", StringComparison.Ordinal));
    }
}
