using System.Text;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Hashing;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Streams;

public sealed class CursorTests
{
    private static Task<SetCursorResponse> SetAsync(BrokerHarness h, string cursorId, string stream, int partition, long offset) =>
        h.CallAsync("SetCursor", new SetCursorRequest { CursorId = cursorId, Stream = stream, Partition = partition, Offset = offset }, SetCursorResponse.Parser);

    private static async Task<long> FetchAsync(BrokerHarness h, string cursorId, string stream, int partition) =>
        (await h.CallAsync("FetchCursor", new FetchCursorRequest { CursorId = cursorId, Stream = stream, Partition = partition }, FetchCursorResponse.Parser)).Offset;

    [Fact]
    public void Crc32_ieee_matches_the_standard_check_values()
    {
        Assert.Equal(0xCBF43926u, Crc32Ieee.Compute("123456789"u8));
        Assert.Equal(0u, Crc32Ieee.Compute([]));
        Assert.Equal(0x414FA339u, Crc32Ieee.Compute(Encoding.ASCII.GetBytes("The quick brown fox jumps over the lazy dog")));
    }

    [Fact]
    public async Task Behaviour23_set_and_fetch_cursors_through_cache_and_log()
    {
        await using var h = await StartAsync(o => o with { Cursors = o.Cursors with { Partitions = 5 } });
        await h.CreateStreamAsync("foo", "foo", partitions: 5);
        Assert.Equal(-1, await FetchAsync(h, "abc", "foo", 2));
        await SetAsync(h, "abc", "foo", 2, 5);
        Assert.Equal(5, await FetchAsync(h, "abc", "foo", 2));
        await SetAsync(h, "abc", "foo", 2, 10);
        Assert.Equal(10, await FetchAsync(h, "abc", "foo", 2));

        // The record lands in partition crc32(key) % 5 of __cursors, with Liftbridge's Cursor layout.
        var key = "abc,foo,2";
        var partition = (int)(Crc32Ieee.Compute(Encoding.UTF8.GetBytes(key)) % 5);
        Assert.Equal(1, (await h.PartitionMetadataAsync("__cursors", partition)).HighWatermark);

        // Without the cache (a restart empties it) the value comes from a reverse scan of the log.
        await h.RestartAsync();
        Assert.Equal(10, await FetchAsync(h, "abc", "foo", 2));
        Assert.Equal(-1, await FetchAsync(h, "abc", "foo", 3));
    }

    [Fact]
    public async Task Behaviour23_empty_cursor_id_or_stream_is_InvalidArgument()
    {
        await using var h = await StartAsync(o => o with { Cursors = o.Cursors with { Partitions = 1 } });
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => SetAsync(h, "", "foo", 0, 1));
        Assert.Equal("No cursorId provided", ex.Detail);
        ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => SetAsync(h, "abc", "", 0, 1));
        Assert.Equal("No stream provided", ex.Detail);
        await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => FetchAsync(h, "", "foo", 0));
    }

    [Fact]
    public async Task Behaviour24_cursors_disabled_is_Internal()
    {
        await using var h = await StartAsync();
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.Internal, () => SetAsync(h, "abc", "foo", 0, 1));
        Assert.Equal("Cursors stream does not exist", ex.Detail);
        await ThrowsGrpcAsync(GrpcStatusCode.Internal, () => FetchAsync(h, "abc", "foo", 0));
    }

    [Fact]
    public async Task Cursors_stream_is_compacted_and_listed_in_metadata()
    {
        await using var h = await StartAsync(o => o with { Cursors = o.Cursors with { Partitions = 2 } });
        var metadata = await h.MetadataAsync(Sluice.Server.Streams.Broker.CursorsStreamName);
        Assert.Equal(StreamMetadata.Types.Error.Ok, metadata.StreamMetadata[0].Error);
        Assert.Equal("liftbridge-default.cursors", metadata.StreamMetadata[0].Subject);
        Assert.True(h.Server.Broker.TryGetStream(Sluice.Server.Streams.Broker.CursorsStreamName, out var stream));
        Assert.True(stream.Settings.CompactEnabled);
        Assert.True(stream.Settings.AutoPauseDisableIfSubscribers);
    }
}
