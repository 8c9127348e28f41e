using Microsoft.Extensions.DependencyInjection;
using Sluice.Client.Tests.Fakes;
using Sluice.Protocol.Api;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>Stream administration, metadata and cursors against the fake cluster.</summary>
public sealed class AdminTests
{
    [Fact]
    public async Task Metadata_of_80000_partitions_past_grpcs_usual_4_MiB_is_received_and_a_smaller_limit_is_honoured()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 3);
        await using var client = await ConnectAsync(cluster);
        for (var i = 0; i < 8; i++)
        {
            await client.CreateStreamAsync("wide" + i, "wide" + i, new StreamOptions { Partitions = 10_000 });
        }

        var metadata = await client.FetchMetadataAsync();
        Assert.Equal(80_000, Enumerable.Range(0, 8).Sum(i => metadata.PartitionCountForStream("wide" + i)));

        // With gRPC's usual limit a client still connects and publishes (its refreshes ask only for the streams it
        // uses), but the metadata of every stream is refused.
        await using var small = await ConnectAsync(cluster, FastOptions with { MaxReceiveMessageSize = 4 * 1024 * 1024 });
        await small.PublishAsync("wide3", "x"u8.ToArray(), new MessageOptions { Partitioner = Partitioners.RoundRobin });
        Assert.Equal(10_000, small.Metadata.PartitionCountForStream("wide3"));
        var error = await Assert.ThrowsAnyAsync<SluiceException>(() => small.FetchMetadataAsync());
        Assert.Contains("larger than max", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_clients_own_refreshes_ask_only_for_the_streams_it_uses()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 2);
        await using (var admin = await ConnectAsync(cluster))
        {
            foreach (var name in new[] { "a", "b", "c" })
            {
                await admin.CreateStreamAsync(name, name);
            }
        }

        await using var client = await ConnectAsync(cluster);
        // Connecting names only the cursors stream (an empty list would mean every stream).
        Assert.Equal(["__cursors"], cluster.Requests<FetchMetadataRequest>("FetchMetadata")[^1].Streams);
        Assert.Empty(client.Metadata.Streams);
        Assert.Equal(2, client.Metadata.Brokers.Count);

        await client.PublishAsync("a", "1"u8.ToArray());
        Assert.Equal(["a"], cluster.Requests<FetchMetadataRequest>("FetchMetadata")[^1].Streams);
        Assert.Equal(["a"], client.Metadata.Streams.Keys);

        await client.FetchPartitionMetadataAsync("b", 0);
        Assert.Equal(["a", "b"], cluster.Requests<FetchMetadataRequest>("FetchMetadata")[^1].Streams.Order(StringComparer.Ordinal));
        Assert.Equal(["a", "b"], client.Metadata.Streams.Keys.Order(StringComparer.Ordinal));

        // An unfiltered fetch asks for everything and caches it until the next refresh.
        var all = await client.FetchMetadataAsync();
        Assert.Empty(cluster.Requests<FetchMetadataRequest>("FetchMetadata")[^1].Streams);
        Assert.Equal(3, all.Streams.Count);
        Assert.Same(all, client.Metadata);

        // A stream that does not exist is asked for, comes back as an error entry and stays out of the cache.
        await Assert.ThrowsAsync<NoSuchStreamException>(() => client.PublishAsync("nope", "x"u8.ToArray(), new MessageOptions { Partitioner = Partitioners.RoundRobin }));
        Assert.Contains("nope", cluster.Requests<FetchMetadataRequest>("FetchMetadata")[^1].Streams);
        Assert.Null(client.Metadata.GetStream("nope"));
    }

    [Fact]
    public async Task CreateStream_sends_every_option_with_durations_in_milliseconds()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 3);
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo.*", "full", new StreamOptions
        {
            Group = "g",
            ReplicationFactor = 3,
            Partitions = 4,
            RetentionMaxBytes = 1024,
            RetentionMaxMessages = 100,
            RetentionMaxAge = TimeSpan.FromMinutes(2),
            CleanerInterval = TimeSpan.FromSeconds(7),
            SegmentMaxBytes = 2048,
            SegmentMaxAge = TimeSpan.FromHours(1),
            CompactMaxGoroutines = 3,
            CompactEnabled = true,
            AutoPauseTime = TimeSpan.FromMilliseconds(1500),
            AutoPauseDisableIfSubscribers = true,
            MinIsr = 2,
            OptimisticConcurrencyControl = true,
            Encryption = false,
        });

        var r = Assert.Single(cluster.Requests<CreateStreamRequest>("CreateStream"));
        Assert.Equal(("foo.*", "full", "g", 3, 4), (r.Subject, r.Name, r.Group, r.ReplicationFactor, r.Partitions));
        Assert.Equal(1024, r.RetentionMaxBytes.Value);
        Assert.Equal(100, r.RetentionMaxMessages.Value);
        Assert.Equal(120_000, r.RetentionMaxAge.Value);
        Assert.Equal(7_000, r.CleanerInterval.Value);
        Assert.Equal(2048, r.SegmentMaxBytes.Value);
        Assert.Equal(3_600_000, r.SegmentMaxAge.Value);
        Assert.Equal(3, r.CompactMaxGoroutines.Value);
        Assert.True(r.CompactEnabled.Value);
        Assert.Equal(1_500, r.AutoPauseTime.Value);
        Assert.True(r.AutoPauseDisableIfSubscribers.Value);
        Assert.Equal(2, r.MinIsr.Value);
        Assert.True(r.OptimisticConcurrencyControl.Value);
        Assert.False(r.Encryption.Value);

        var metadata = await client.FetchMetadataAsync();
        Assert.Equal(4, metadata.PartitionCountForStream("full"));
    }

    [Fact]
    public async Task CreateStream_leaves_unset_options_null_and_supports_max_replication()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 2);
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("bar", "bar", StreamOptions.Default with { MaxReplication = true });
        var r = Assert.Single(cluster.Requests<CreateStreamRequest>("CreateStream"));
        Assert.Equal(-1, r.ReplicationFactor);
        Assert.Equal(1, r.Partitions);
        Assert.Null(r.RetentionMaxAge);
        Assert.Null(r.CompactEnabled);
        Assert.Null(r.MinIsr);
        Assert.Null(r.Encryption);
        Assert.Equal(2, (await client.FetchPartitionMetadataAsync("bar", 0)).Replicas.Count);
    }

    [Fact]
    public async Task CreateStream_twice_throws_StreamExists_and_negative_partitions_fail_locally()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "bar");
        var ex = await Assert.ThrowsAsync<StreamExistsException>(() => client.CreateStreamAsync("foo", "bar"));
        Assert.Contains("stream already exists", ex.Message);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.CreateStreamAsync("foo", "neg", StreamOptions.Default with { Partitions = -1 }));
        Assert.Equal(2, cluster.CallCount("CreateStream")); // the negative one never left the client
    }

    [Fact]
    public async Task Server_validation_errors_keep_their_status_and_text()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        var ex = await Assert.ThrowsAsync<SluiceException>(() => client.CreateStreamAsync("foo bar", "x"));
        Assert.Equal(Sluice.Protocol.Grpc.GrpcStatusCode.InvalidArgument, ex.StatusCode);
        Assert.Contains("Subject is invalid", ex.Message);
    }

    [Fact]
    public async Task DeleteStream_removes_it_and_a_missing_stream_is_NoSuchStream()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");
        await client.DeleteStreamAsync("foo");
        Assert.Null(cluster.GetStream("foo"));
        var ex = await Assert.ThrowsAsync<NoSuchStreamException>(() => client.DeleteStreamAsync("foo"));
        Assert.Contains("stream does not exist", ex.Message);
    }

    [Fact]
    public async Task PauseStream_sends_partitions_and_resume_all_and_missing_partitions_are_NoSuchPartition()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with { Partitions = 2 });

        await client.PauseStreamAsync("foo", new PauseStreamOptions { Partitions = [0], ResumeAll = true });
        var request = Assert.Single(cluster.Requests<PauseStreamRequest>("PauseStream"));
        Assert.Equal([0], request.Partitions);
        Assert.True(request.ResumeAll);
        Assert.True((await client.FetchPartitionMetadataAsync("foo", 0)).Paused);
        Assert.False((await client.FetchPartitionMetadataAsync("foo", 1)).Paused);

        await client.PauseStreamAsync("foo");
        Assert.True((await client.FetchPartitionMetadataAsync("foo", 1)).Paused);

        await Assert.ThrowsAsync<NoSuchPartitionException>(() => client.PauseStreamAsync("foo", new PauseStreamOptions { Partitions = [99] }));
        await Assert.ThrowsAsync<NoSuchPartitionException>(() => client.PauseStreamAsync("missing"));
    }

    [Fact]
    public async Task SetStreamReadonly_turns_partitions_readonly_and_back()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with { Partitions = 2 });

        await client.SetStreamReadonlyAsync("foo", new SetStreamReadonlyOptions { Partitions = [1] });
        Assert.False((await client.FetchPartitionMetadataAsync("foo", 0)).Readonly);
        var p1 = await client.FetchPartitionMetadataAsync("foo", 1);
        Assert.True(p1.Readonly);
        Assert.NotNull(p1.ReadonlyTimestamps.Latest);

        await client.SetStreamReadonlyAsync("foo", new SetStreamReadonlyOptions { Readonly = false });
        Assert.False((await client.FetchPartitionMetadataAsync("foo", 1)).Readonly);
        var last = cluster.Requests<SetStreamReadonlyRequest>("SetStreamReadonly")[^1];
        Assert.False(last.Readonly);
        Assert.Empty(last.Partitions);

        await Assert.ThrowsAsync<NoSuchPartitionException>(() => client.SetStreamReadonlyAsync("foo", new SetStreamReadonlyOptions { Partitions = [99] }));
    }

    [Fact]
    public async Task FetchMetadata_reports_brokers_streams_and_partitions()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 2);
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with { Partitions = 2, ReplicationFactor = 2 });
        await client.PublishAsync("foo", Bytes("a"));
        await client.PublishAsync("foo", Bytes("b"));

        var metadata = await client.FetchMetadataAsync();
        Assert.Equal(cluster.Addresses.Order(), metadata.Addresses.Order());
        var broker = metadata.GetBroker("broker-0")!;
        Assert.Equal(("127.0.0.1", cluster[0].Port), (broker.Host, broker.Port));
        Assert.Equal(2, broker.PartitionCount);
        Assert.Equal(1, broker.LeaderCount);

        var stream = metadata.GetStream("foo")!;
        Assert.Equal("foo", stream.Subject);
        Assert.True(stream.CreationTime > DateTimeOffset.UtcNow.AddMinutes(-1));
        var p0 = stream.GetPartition(0)!;
        Assert.Equal("broker-0", p0.LeaderId);
        Assert.Equal(metadata.GetBroker("broker-0"), p0.Leader);
        Assert.Equal(2, p0.Replicas.Count);
        Assert.Equal(2, p0.Isr.Count);
        Assert.Equal(1, p0.HighWatermark);
        Assert.Equal(1, p0.NewestOffset);
        Assert.False(p0.Paused);
        Assert.NotNull(p0.MessagesReceivedTimestamps.First);
        Assert.True(p0.MessagesReceivedTimestamps.Latest >= p0.MessagesReceivedTimestamps.First);
        Assert.Null(p0.PauseTimestamps.First);
        Assert.Same(metadata, client.Metadata); // an unfiltered fetch refreshes the cache

        var filtered = await client.FetchMetadataAsync(new FetchMetadataOptions { Streams = ["foo", "nope"] });
        Assert.Equal(["foo"], filtered.Streams.Keys);
        Assert.Equal(["foo", "nope"], cluster.Requests<FetchMetadataRequest>("FetchMetadata")[^1].Streams);
    }

    [Fact]
    public async Task FetchPartitionMetadata_goes_to_the_leader()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 3);
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with { Partitions = 3 });
        foreach (var p in new[] { 0, 1, 2 })
        {
            var info = await client.FetchPartitionMetadataAsync("foo", p);
            Assert.Equal(p, info.Id);
            Assert.Equal(1, cluster.CallCount("FetchPartitionMetadata", info.LeaderId));
        }

        await Assert.ThrowsAsync<NoSuchPartitionException>(() => client.FetchPartitionMetadataAsync("foo", 7));
        await Assert.ThrowsAsync<NoSuchStreamException>(() => client.FetchPartitionMetadataAsync("nope", 0));
    }

    [Fact]
    public async Task Cursors_are_routed_to_the_leader_of_the_hashed_cursors_partition()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 3, cursorPartitions: 5);
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo", StreamOptions.Default with { Partitions = 5 });

        Assert.Equal(-1, await client.FetchCursorAsync("abc", "foo", 2));
        await client.SetCursorAsync("abc", "foo", 2, 5);
        Assert.Equal(5, await client.FetchCursorAsync("abc", "foo", 2));
        await client.SetCursorAsync("abc", "foo", 2, 10);
        Assert.Equal(10, await client.FetchCursorAsync("abc", "foo", 2));
        for (var p = 0; p < 5; p++)
        {
            await client.SetCursorAsync("id-" + p, "foo", p, p); // the fake refuses non-leaders, so each must route right
        }

        // Nothing was ever sent to a broker that does not lead the cursor's partition.
        Assert.DoesNotContain(cluster.Calls, c => c.Method is "SetCursor" or "FetchCursor" && c.Broker != LeaderOf(c.Request));

        string LeaderOf(Google.Protobuf.IMessage request)
        {
            var (id, stream, partition) = request switch
            {
                SetCursorRequest s => (s.CursorId, s.Stream, s.Partition),
                FetchCursorRequest f => (f.CursorId, f.Stream, f.Partition),
                _ => throw new InvalidOperationException(),
            };
            return cluster.GetStream("__cursors")!.Partitions[FakeCluster.CursorPartition(id, stream, partition, 5)].Leader;
        }
    }

    [Fact]
    public async Task Cursors_disabled_gives_the_server_error()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        var ex = await Assert.ThrowsAsync<SluiceException>(() => client.SetCursorAsync("abc", "foo", 0, 1));
        Assert.Contains("Cursors stream does not exist", ex.Message);
    }

    [Fact]
    public async Task Connect_fails_over_across_seed_addresses_and_learns_every_broker()
    {
        await using var cluster = await FakeCluster.StartAsync(brokers: 2);
        await cluster[0].StopAsync();
        await using var client = await SluiceClient.ConnectAsync([$"127.0.0.1:{cluster[0].Port}", cluster[1].Address], FastOptions);
        Assert.Equal([cluster[1].Address], client.Metadata.Addresses);
        await client.CreateStreamAsync("foo", "foo"); // resilient RPC moves past the dead address
    }

    [Fact]
    public async Task Connect_to_nothing_is_BrokerUnavailable()
    {
        await using var cluster = await FakeCluster.StartAsync();
        var address = cluster[0].Address;
        await cluster[0].StopAsync();
        await Assert.ThrowsAsync<BrokerUnavailableException>(() => SluiceClient.ConnectAsync([address], FastOptions));
    }

    [Fact]
    public async Task Dependency_injection_registers_one_lazily_connecting_client()
    {
        await using var cluster = await FakeCluster.StartAsync();
        var services = new ServiceCollection();
        services.AddSluiceClient(cluster.Addresses, o => o with { AckWaitTime = TimeSpan.FromSeconds(3) });
        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<SluiceClient>();
        Assert.Same(client, provider.GetRequiredService<SluiceClient>());
        Assert.Equal(TimeSpan.FromSeconds(3), client.Options.AckWaitTime);
        Assert.Equal(0, cluster.CallCount("FetchMetadata")); // nothing until first use
        await client.CreateStreamAsync("foo", "foo");
        Assert.NotNull(await client.PublishAsync("foo", Bytes("x")));
    }
}
