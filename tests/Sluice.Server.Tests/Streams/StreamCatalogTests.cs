using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Protocol.Api;
using Sluice.Protocol.Internal;
using Sluice.Server.Configuration;
using Sluice.Server.Streams;
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Streams;

/// <summary>The catalog's writes stay within etcd's default limits (128 operations, 1.5 MiB) whatever the partition count.</summary>
public sealed class StreamCatalogTests
{
    private static StreamRecord Record(string name, int partitions) =>
        new() { Request = new CreateStreamRequest { Name = name, Subject = name, Partitions = partitions, ReplicationFactor = 1 } };

    private static MessageStream Stream(StreamRecord record, string dir)
    {
        var stream = new MessageStream(record, 1, StreamSettings.Resolve(record.Request, ServerOptions.Default));
        stream.Partitions = Enumerable.Range(0, record.Request.Partitions)
            .Select(id => new Partition(stream, id, Path.Combine(dir, id.ToString(System.Globalization.CultureInfo.InvariantCulture)), null, _ => Task.CompletedTask, NullLogger.Instance))
            .ToArray();
        return stream;
    }

    [Fact]
    public async Task Create_is_one_transaction_of_two_operations_for_the_largest_stream()
    {
        using var dir = new TempDirectory("catalog");
        // Two operations per transaction at most: a create that needed one per partition would fail here.
        await using var store = await EmbeddedMetadataStore.OpenAsync(dir.Sub("meta"), MetadataStoreOptions.Default with { MaxTxnOps = 2 });
        var catalog = new StreamCatalog(store);
        await catalog.CreateAsync(Record("wide", StreamLimits.MaxPartitions), CancellationToken.None);
        await Assert.ThrowsAsync<StreamExistsException>(() => catalog.CreateAsync(Record("wide", 1), CancellationToken.None));

        var loaded = Assert.Single(await catalog.LoadAsync(CancellationToken.None));
        Assert.Equal(StreamLimits.MaxPartitions, loaded.Record.Request.Partitions);
        Assert.Empty(loaded.Partitions); // no partition key: every partition in its initial state
    }

    [Fact]
    public async Task Partition_states_of_a_thousand_partitions_are_written_in_chunks_under_etcds_limits()
    {
        using var dir = new TempDirectory("catalog");
        await using var store = await EmbeddedMetadataStore.OpenAsync(dir.Sub("meta"), MetadataStoreOptions.Default); // etcd's 128
        var catalog = new StreamCatalog(store);
        var record = Record("wide", 1000);
        await catalog.CreateAsync(record, CancellationToken.None);
        var stream = Stream(record, dir.Sub("wide"));
        foreach (var partition in stream.Partitions)
        {
            partition.MarkPaused(true, 42);
        }

        record.ResumeAll = true;
        await catalog.UpdateAsync(stream, stream.Partitions, includeStream: true, CancellationToken.None);

        var loaded = Assert.Single(await catalog.LoadAsync(CancellationToken.None));
        Assert.True(loaded.Record.ResumeAll);
        Assert.Equal(1000, loaded.Partitions.Count);
        Assert.All(loaded.Partitions.Values, p => Assert.True(p.Paused));
    }

    [Fact]
    public async Task Partition_keys_without_a_stream_key_are_ignored_and_removed_at_load()
    {
        using var dir = new TempDirectory("catalog");
        await using var store = await EmbeddedMetadataStore.OpenAsync(dir.Sub("meta"));
        var catalog = new StreamCatalog(store);
        await catalog.CreateAsync(Record("kept", 1), CancellationToken.None);
        foreach (var name in new[] { "ghost", "kept-not" })
        {
            await store.TxnAsync(new TxnRequest
            {
                Success = [RequestOp.ForPut(new PutRequest(KeyRanges.Utf8(StreamCatalog.PartitionsPrefix + name + "/0"), new PartitionStateRecord { Paused = true }.ToByteArray()))],
            });
        }

        var loaded = Assert.Single(await catalog.LoadAsync(CancellationToken.None));
        Assert.Equal("kept", loaded.Record.Request.Name);
        Assert.Empty((await store.GetPrefixAsync(StreamCatalog.PartitionsPrefix)).Kvs);
    }

    [Fact]
    public async Task Create_clears_partition_keys_left_under_the_name()
    {
        using var dir = new TempDirectory("catalog");
        await using var store = await EmbeddedMetadataStore.OpenAsync(dir.Sub("meta"));
        var catalog = new StreamCatalog(store);
        await store.TxnAsync(new TxnRequest
        {
            Success = [RequestOp.ForPut(new PutRequest(KeyRanges.Utf8(StreamCatalog.PartitionsPrefix + "s/0"), new PartitionStateRecord { Paused = true, Readonly = true }.ToByteArray()))],
        });
        await catalog.CreateAsync(Record("s", 1), CancellationToken.None);
        Assert.Empty(Assert.Single(await catalog.LoadAsync(CancellationToken.None)).Partitions);
    }
}
