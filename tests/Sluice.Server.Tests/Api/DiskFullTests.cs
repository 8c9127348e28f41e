using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.TestKit;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Api;

/// <summary>
/// A full file system answers RESOURCE_EXHAUSTED "no space left on device" (not INTERNAL), leaves no half-created
/// stream, and the server starts again once there is room. Needs root for a small tmpfs (CI runs as root).
/// </summary>
public sealed class DiskFullTests
{
    [Fact]
    public async Task A_full_disk_answers_ResourceExhausted_on_create_and_publish_and_the_server_restarts()
    {
        using var mount = new SmallTmpfs(16 << 20);
        await using var h = await StartAsync(o => o with { DataDir = mount.Path });
        await h.CreateStreamAsync("a", "a");
        Assert.NotNull(await h.PublishAsync("a", "before"));
        var filler = mount.Fill();

        var ex = await ThrowsGrpcAsync(GrpcStatusCode.ResourceExhausted, () => h.CreateStreamAsync("b", "b", partitions: 2));
        Assert.Equal("no space left on device", ex.Detail);
        Assert.Equal(["a"], (await h.MetadataAsync()).StreamMetadata.Select(s => s.Name));
        Assert.False(Directory.Exists(Path.Combine(mount.Path, "streams", "b")), "the failed create removed its directories");

        var big = new string('x', 256 * 1024); // needs new pages, which a full tmpfs refuses
        ex = await ThrowsGrpcAsync(GrpcStatusCode.ResourceExhausted, () => h.PublishAsync("a", big));
        Assert.Equal("no space left on device", ex.Detail);

        await using (var call = h.Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser))
        {
            await call.WriteAsync(new PublishRequest { Stream = "a", CorrelationId = "c1", Value = ByteString.CopyFromUtf8(big), AckPolicy = AckPolicy.Leader });
            Assert.True(await call.MoveNextAsync().AsTask().WaitAsync(CallTimeout));
            Assert.Equal(("c1", "no space left on device"), (call.Current.CorrelationId, call.Current.AsyncError.Message));
        }

        File.Delete(filler);
        await h.RestartAsync();
        Assert.Equal(["a"], (await h.MetadataAsync()).StreamMetadata.Select(s => s.Name));
        await h.CreateStreamAsync("b", "b", partitions: 2);
        Assert.NotNull(await h.PublishAsync("a", "after"));
        Assert.NotNull(await h.PublishAsync("b", "after", partition: 1));
    }

    [Fact]
    public async Task When_the_metadata_log_cannot_grow_the_server_answers_ResourceExhausted_and_still_stops_and_starts()
    {
        using var mount = new SmallTmpfs(16 << 20);
        await using var h = await StartAsync(o => o with { DataDir = mount.Path });
        await h.CreateStreamAsync("a", "a", partitions: 2);
        await h.CreateStreamAsync("b", "b");
        var filler = mount.Fill();

        // Each readonly change is one small metadata write: the store's log fills its last page, then fails.
        GrpcException? refused = null;
        for (var i = 0; i < 1000 && refused is null; i++)
        {
            refused = await Record.ExceptionAsync(() => h.SetReadonlyAsync("b", i % 2 == 0)) as GrpcException;
        }

        Assert.NotNull(refused);
        Assert.Equal((GrpcStatusCode.ResourceExhausted, "no space left on device"), (refused.StatusCode, refused.Detail));

        File.Delete(filler);
        await h.RestartAsync(); // the shutdown's own metadata writes fail on the faulted store; it still closes everything
        Assert.Equal(["a", "b"], (await h.MetadataAsync()).StreamMetadata.Select(s => s.Name));
        Assert.NotNull(await h.PublishAsync("a", "after", partition: 1));
    }
}
