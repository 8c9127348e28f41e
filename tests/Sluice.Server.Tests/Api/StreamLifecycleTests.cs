using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Api;

public sealed class StreamLifecycleTests
{
    [Fact]
    public async Task Behaviour01_CreateStream_twice_answers_AlreadyExists()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("bar", "foo");
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.AlreadyExists, () => h.CreateStreamAsync("bar", "foo"));
        Assert.Equal("stream already exists", ex.Detail);
    }

    [Fact]
    public async Task Behaviour01_stream_names_are_unique_across_subjects()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("bar", "foo");
        await ThrowsGrpcAsync(GrpcStatusCode.AlreadyExists, () => h.CreateStreamAsync("bar", "other"));
    }

    [Theory]
    [InlineData("__cursors")]
    [InlineData("__activity")]
    public async Task Behaviour02_reserved_names_are_rejected_for_create_and_delete(string name)
    {
        await using var h = await StartAsync();
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync(name, "foo"));
        Assert.Equal("Stream is reserved", ex.Detail);
        ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.DeleteStreamAsync(name));
        Assert.Equal("Stream is reserved", ex.Detail);
    }

    [Theory]
    [InlineData("foo bar")]
    [InlineData("")]
    [InlineData("foo..bar")]
    [InlineData("foo.")]
    [InlineData("foo\tbar")]
    public async Task Behaviour03_invalid_subject_is_InvalidArgument(string subject)
    {
        await using var h = await StartAsync();
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync("s", subject));
        Assert.Equal("Subject is invalid", ex.Detail);
    }

    [Fact]
    public async Task Behaviour03_empty_name_is_InvalidArgument()
    {
        await using var h = await StartAsync();
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync("", "foo"));
        Assert.Equal("Name cannot be empty", ex.Detail);
    }

    [Fact]
    public async Task Wildcard_subjects_are_accepted()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("w", "foo.*.>");
    }

    [Fact]
    public async Task Behaviour04_replication_factor_above_cluster_size_is_InvalidArgument()
    {
        await using var h = await StartAsync();
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync("s", "foo", configure: r => r.ReplicationFactor = 2));
        Assert.Equal("Invalid replicationFactor 2, cluster size 1", ex.Detail);
        ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync("s", "foo", configure: r => r.ReplicationFactor = -2));
        Assert.Equal("Invalid replicationFactor -2", ex.Detail);
        await h.CreateStreamAsync("all", "foo", configure: r => r.ReplicationFactor = -1); // -1 = the cluster size
    }

    [Fact]
    public async Task Behaviour05_three_partitions_appear_in_metadata_with_this_server_as_leader()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo", partitions: 3);
        var metadata = await h.MetadataAsync();
        var broker = Assert.Single(metadata.Brokers);
        Assert.Equal(h.Server.ServerId, broker.Id);
        Assert.Equal(3, broker.PartitionCount);
        Assert.Equal(3, broker.LeaderCount);
        var stream = Assert.Single(metadata.StreamMetadata);
        Assert.Equal("foo", stream.Name);
        Assert.Equal([0, 1, 2], stream.Partitions.Keys.Order());
        Assert.All(stream.Partitions.Values, p =>
        {
            Assert.Equal(h.Server.ServerId, p.Leader);
            Assert.Equal([h.Server.ServerId], p.Replicas);
            Assert.Equal([h.Server.ServerId], p.Isr);
            Assert.Equal(-1, p.HighWatermark);
            Assert.Equal(-1, p.NewestOffset);
        });
        Assert.True(stream.CreationTimestamp > 0);
        for (var i = 0; i < 3; i++)
        {
            Assert.True(Directory.Exists(Path.Combine(h.DataDir, "streams", "foo", i.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        }
    }

    [Fact]
    public async Task Behaviour08_DeleteStream_missing_is_NotFound_and_delete_removes_the_data()
    {
        await using var h = await StartAsync();
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.DeleteStreamAsync("foo"));
        Assert.Equal("stream does not exist", ex.Detail);
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishAsync("foo", "x");
        await h.DeleteStreamAsync("foo");
        Assert.False(Directory.Exists(Path.Combine(h.DataDir, "streams", "foo")));
        await h.CreateStreamAsync("foo", "foo");
        var metadata = await h.PartitionMetadataAsync("foo");
        Assert.Equal(-1, metadata.NewestOffset);
    }

    [Fact]
    public async Task Quirk11_negative_partition_count_is_InvalidArgument()
    {
        await using var h = await StartAsync();
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync("s", "foo", partitions: -3));
        Assert.Equal("Invalid partitions -3", ex.Detail);
    }

    [Fact]
    public async Task Encryption_without_a_master_key_is_refused_with_FailedPrecondition()
    {
        await using var h = await StartAsync(o => o with { EncryptionKeySource = () => null });
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => h.CreateStreamAsync("s", "foo", configure: r => r.Encryption = new NullableBool { Value = true }));
        Assert.Contains("SLUICE_ENCRYPTION_KEY is not set", ex.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_names_that_would_escape_the_data_directory_are_rejected()
    {
        await using var h = await StartAsync();
        await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync("../evil", "foo"));
        await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync("..", "foo"));
    }
}
