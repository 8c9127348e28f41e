using System.Text.Json;
using Sluice.Client;
using Sluice.Client.Grpc;
using Sluice.Protocol.Api;

namespace Sluice.Cli.Tests;

public class GroupCommandTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    /// <summary>Members join over the raw API (as any Liftbridge client does); the group's position is its cursor.</summary>
    private async Task JoinAsync(string group, string consumer, string stream)
    {
        using var channel = new GrpcChannel(new Uri($"http://{broker.Servers}"));
        await channel.UnaryAsync("/proto.API/JoinConsumerGroup", new JoinConsumerGroupRequest { GroupId = group, ConsumerId = consumer, Streams = { stream } },
            JoinConsumerGroupResponse.Parser, TimeSpan.FromSeconds(10));
    }

    private async Task PublishAndCommitAsync(string stream, int partition, int messages, long? cursor, string group)
    {
        await using var client = await SluiceClient.ConnectAsync([broker.Servers]);
        for (var i = 0; i < messages; i++)
        {
            await client.PublishAsync(stream, System.Text.Encoding.UTF8.GetBytes($"m{i}"), new MessageOptions { Partition = partition });
        }

        if (cursor is { } offset)
        {
            await client.SetCursorAsync("__group:" + group, stream, partition, offset);
        }
    }

    [Fact]
    public async Task List_and_describe_show_members_committed_offsets_and_lag()
    {
        await broker.RunOkAsync("stream", "create", "clicks", "--subject", "clicks", "--partitions", "2");
        await JoinAsync("reporting", "r1", "clicks");
        await JoinAsync("reporting", "r2", "clicks");
        await PublishAndCommitAsync("clicks", 0, 4, cursor: 0, "reporting");   // offsets 0..3, processed 0: lag 3
        await PublishAndCommitAsync("clicks", 1, 2, cursor: null, "reporting"); // no cursor: no lag

        var listed = await broker.RunOkAsync("group", "list", "-o", "json");
        using (var groups = JsonDocument.Parse(Assert.Single(listed)))
        {
            var reporting = Assert.Single(groups.RootElement.EnumerateArray(), g => g.GetProperty("groupId").GetString() == "reporting");
            Assert.Equal(broker.Server.ServerId, reporting.GetProperty("coordinator").GetString());
            Assert.Equal(2, reporting.GetProperty("members").GetInt32());
            Assert.Equal(["clicks"], reporting.GetProperty("streams").EnumerateArray().Select(s => s.GetString()));
        }

        var table = await broker.RunOkAsync("group", "list");
        Assert.Contains(table, l => l.Contains("GROUP", StringComparison.Ordinal) && l.Contains("COORDINATOR", StringComparison.Ordinal));
        Assert.Contains(table, l => l.Contains("reporting", StringComparison.Ordinal) && l.Contains("clicks", StringComparison.Ordinal));

        var described = await broker.RunOkAsync("group", "describe", "reporting", "-o", "json");
        using (var description = JsonDocument.Parse(Assert.Single(described)))
        {
            var root = description.RootElement;
            Assert.Equal(["r1", "r2"], root.GetProperty("members").EnumerateArray().Select(m => m.GetProperty("consumerId").GetString()));
            Assert.All(root.GetProperty("members").EnumerateArray(), m => Assert.Equal(JsonValueKind.Number, m.GetProperty("lastHeartbeatAgeMs").ValueKind));
            var partitions = root.GetProperty("partitions").EnumerateArray().ToArray();
            Assert.Equal([0, 1], partitions.Select(p => p.GetProperty("partition").GetInt32()));
            Assert.Equal((0, 3, 3), (partitions[0].GetProperty("committedOffset").GetInt64(), partitions[0].GetProperty("highWatermark").GetInt64(), partitions[0].GetProperty("lag").GetInt64()));
            Assert.Equal(JsonValueKind.Null, partitions[1].GetProperty("committedOffset").ValueKind);
            Assert.Equal(JsonValueKind.Null, partitions[1].GetProperty("lag").ValueKind);
            Assert.Equal(JsonValueKind.Null, root.GetProperty("totalLag").ValueKind); // unknown while a partition has no cursor
        }

        var text = await broker.RunOkAsync("group", "describe", "reporting");
        Assert.Contains(text, l => l.StartsWith($"group reporting, coordinator {broker.Server.ServerId}, epoch ", StringComparison.Ordinal) && l.EndsWith("2 members, total lag unknown", StringComparison.Ordinal));
        Assert.Contains(text, l => l.Contains("LAST HEARTBEAT", StringComparison.Ordinal));
        Assert.Contains(text, l => l.Contains("COMMITTED", StringComparison.Ordinal) && l.Contains("LAG", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Stream_describe_shows_the_groups_reading_each_partition_with_their_lag()
    {
        await broker.RunOkAsync("stream", "create", "views", "--subject", "views", "--partitions", "2");
        await JoinAsync("audit", "a1", "views");
        await PublishAndCommitAsync("views", 1, 5, cursor: 3, "audit"); // offsets 0..4, processed 0..3: lag 1

        var described = await broker.RunOkAsync("stream", "describe", "views", "-o", "json");
        using (var description = JsonDocument.Parse(Assert.Single(described)))
        {
            var partitions = description.RootElement.GetProperty("partitions").EnumerateArray().ToArray();
            var onOne = Assert.Single(partitions[1].GetProperty("groups").EnumerateArray());
            Assert.Equal(("audit", "a1", 3, 1), (onOne.GetProperty("group").GetString(), onOne.GetProperty("member").GetString(), onOne.GetProperty("committedOffset").GetInt64(), onOne.GetProperty("lag").GetInt64()));
            Assert.Equal("audit", Assert.Single(partitions[0].GetProperty("groups").EnumerateArray()).GetProperty("group").GetString());
        }

        var table = await broker.RunOkAsync("stream", "describe", "views");
        var header = table.ToList().FindIndex(l => l.Contains("GROUP", StringComparison.Ordinal) && l.Contains("LAG", StringComparison.Ordinal));
        Assert.True(header >= 0, string.Join('\n', table));
        Assert.Contains(table.Skip(header), l => l.Contains("audit", StringComparison.Ordinal) && l.TrimEnd().EndsWith('1'));

        // A stream no group reads keeps the partition table only.
        await broker.RunOkAsync("stream", "create", "unread", "--subject", "unread");
        Assert.DoesNotContain(await broker.RunOkAsync("stream", "describe", "unread"), l => l.Contains("GROUP", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Describing_an_unknown_group_fails_with_one_line()
    {
        var (code, process) = await broker.RunAsync("group", "describe", "nobody");
        await using (process)
        {
            Assert.Equal(1, code);
            Assert.Equal("sluice: consumer group nobody does not exist", Assert.Single(process.Stderr));
        }
    }
}
