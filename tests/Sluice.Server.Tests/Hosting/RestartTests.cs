using Sluice.Protocol.Api;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Hosting;

public sealed class RestartTests
{
    [Fact]
    public async Task Streams_partition_state_cursors_and_messages_survive_a_restart()
    {
        await using var h = await StartAsync(o => o with { Cursors = o.Cursors with { Partitions = 2 } });
        await h.CreateStreamAsync("foo", "foo.sub", partitions: 3);
        await h.CreateStreamAsync("bar", "bar");
        await h.PublishManyAsync("foo", 4, partition: 1);
        await h.PublishManyAsync("bar", 2);
        await h.PauseAsync("foo", false, 2);
        await h.SetReadonlyAsync("bar", true);
        await h.CallAsync("SetCursor", new SetCursorRequest { CursorId = "c", Stream = "foo", Partition = 1, Offset = 3 }, SetCursorResponse.Parser);
        var serverId = h.Server.ServerId;
        var before = await h.PartitionMetadataAsync("foo", 1);

        await h.RestartAsync();

        Assert.Equal(serverId, h.Server.ServerId);
        var metadata = await h.MetadataAsync("foo", "bar");
        Assert.Equal("foo.sub", metadata.StreamMetadata[0].Subject);
        Assert.Equal(3, metadata.StreamMetadata[0].Partitions.Count);
        Assert.True(metadata.StreamMetadata[0].Partitions[2].Paused);
        Assert.False(metadata.StreamMetadata[0].Partitions[1].Paused);
        Assert.True(metadata.StreamMetadata[1].Partitions[0].Readonly);
        var after = await h.PartitionMetadataAsync("foo", 1);
        Assert.Equal((3L, 3L), (after.HighWatermark, after.NewestOffset));
        Assert.Equal(before.MessagesReceivedTimestamps, after.MessagesReceivedTimestamps);
        Assert.Equal(3, (await h.CallAsync("FetchCursor", new FetchCursorRequest { CursorId = "c", Stream = "foo", Partition = 1 }, FetchCursorResponse.Parser)).Offset);

        await using (var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", Partition = 1, StartPosition = StartPosition.Earliest }))
        {
            Assert.Equal(["0", "1", "2", "3"], (await ReadAsync(sub, 4)).Select(m => m.Value.ToStringUtf8()));
        }

        Assert.Equal(4, (await h.PublishAsync("foo", "next", partition: 1))!.Offset);
        Assert.Equal(0, (await h.PublishAsync("foo", "resumed", partition: 2))!.Offset);
    }

    [Fact]
    public async Task A_deleted_stream_stays_deleted_after_a_restart()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.DeleteStreamAsync("foo");
        await h.RestartAsync();
        Assert.Empty((await h.MetadataAsync()).StreamMetadata);
    }
}
