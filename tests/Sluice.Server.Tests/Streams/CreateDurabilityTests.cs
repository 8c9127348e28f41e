using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Protocol.Api;
using Sluice.Server.Configuration;
using Sluice.Server.Streams;
using Sluice.Storage.Metadata.Embedded;
using Sluice.TestKit;
using Broker = Sluice.Server.Streams.Broker;

namespace Sluice.Server.Tests.Streams;

/// <summary>Under durability "always" a new stream's directories and their parents are fsynced before CreateStream returns.</summary>
public sealed class CreateDurabilityTests
{
    private static async Task<List<string>> SyncedDuringCreateAsync(TempDirectory dir, DurabilityMode durability)
    {
        var options = ServerOptions.Default with { DataDir = dir.Path, Storage = StorageOptions.Default with { Durability = durability } };
        var synced = new ConcurrentQueue<string>();
        await using var store = await EmbeddedMetadataStore.OpenAsync(dir.Sub("metadata"));
        var context = new BrokerContext(options, "durable") { SyncDirectory = path => synced.Enqueue(Path.GetFullPath(path)) };
        await using var broker = await Broker.OpenAsync(context, store, NullLoggerFactory.Instance, CancellationToken.None);
        await broker.CreateStreamAsync(new CreateStreamRequest { Name = "d", Subject = "d", Partitions = 3 }, internalStream: false, CancellationToken.None);
        return [.. synced];
    }

    [Fact]
    public async Task Under_durability_always_the_new_directories_and_their_parents_are_synced()
    {
        using var dir = new TempDirectory("durable");
        var synced = await SyncedDuringCreateAsync(dir, DurabilityMode.Always);
        var data = Path.GetFullPath(dir.Path);
        var streams = Path.Combine(data, "streams");
        string[] expected = [Path.Combine(streams, "d", "0"), Path.Combine(streams, "d", "1"), Path.Combine(streams, "d", "2"), Path.Combine(streams, "d"), streams, data];
        Assert.All(expected, path => Assert.Contains(path, synced));
        Assert.True(synced.IndexOf(Path.Combine(streams, "d")) < synced.IndexOf(streams), "a directory before its parent");
    }

    [Fact]
    public async Task Without_durability_always_no_directory_is_synced()
    {
        using var dir = new TempDirectory("durable");
        Assert.Empty(await SyncedDuringCreateAsync(dir, DurabilityMode.Never));
    }
}
