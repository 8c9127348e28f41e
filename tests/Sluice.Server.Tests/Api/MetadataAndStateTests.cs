using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Health;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Api;

public sealed class MetadataAndStateTests
{
    [Fact]
    public async Task Behaviour29_FetchMetadata_advertises_the_configured_host_and_the_bound_port()
    {
        await using var h = await StartAsync(o => o with { Host = "localhost" });
        var metadata = await h.MetadataAsync();
        var broker = Assert.Single(metadata.Brokers);
        Assert.Equal("localhost", broker.Host);
        Assert.Equal(h.Server.Port, broker.Port);
        Assert.Equal(h.Server.ServerId, broker.Id);
    }

    [Fact]
    public async Task FetchMetadata_for_unknown_streams_reports_UNKNOWN_STREAM()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        var metadata = await h.MetadataAsync("foo", "nope");
        Assert.Equal(2, metadata.StreamMetadata.Count);
        Assert.Equal(StreamMetadata.Types.Error.Ok, metadata.StreamMetadata[0].Error);
        Assert.Equal(("nope", StreamMetadata.Types.Error.UnknownStream), (metadata.StreamMetadata[1].Name, metadata.StreamMetadata[1].Error));
    }

    [Fact]
    public async Task Behaviour30_partition_metadata_not_found_and_message_timestamps()
    {
        await using var h = await StartAsync();
        await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.PartitionMetadataAsync("foo"));
        await h.CreateStreamAsync("foo", "foo");
        await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.PartitionMetadataAsync("foo", 1));
        var before = await h.PartitionMetadataAsync("foo");
        Assert.Equal((0L, 0L), (before.MessagesReceivedTimestamps.FirstTimestamp, before.MessagesReceivedTimestamps.LatestTimestamp));

        await h.PublishAsync("foo", "1");
        var first = await h.PartitionMetadataAsync("foo");
        Assert.NotEqual(0, first.MessagesReceivedTimestamps.FirstTimestamp);
        Assert.Equal(first.MessagesReceivedTimestamps.FirstTimestamp, first.MessagesReceivedTimestamps.LatestTimestamp);

        await h.PublishAsync("foo", "2");
        var second = await h.PartitionMetadataAsync("foo");
        Assert.Equal(first.MessagesReceivedTimestamps.FirstTimestamp, second.MessagesReceivedTimestamps.FirstTimestamp);
        Assert.True(second.MessagesReceivedTimestamps.LatestTimestamp > first.MessagesReceivedTimestamps.LatestTimestamp);
        Assert.Equal(1, second.HighWatermark);
        Assert.Equal(1, second.NewestOffset);
    }

    [Fact]
    public async Task A_partition_being_paused_reports_its_offsets_while_it_closes()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        for (var i = 0; i < 3; i++)
        {
            await h.PublishAsync("foo", "m" + i);
        }

        // The close waits for an append in progress: hold the partition's write gate as one would.
        Assert.True(h.Server.Broker.TryGetStream("foo", out var stream));
        var gate = stream.Partitions[0].Runtime!.WriteGate;
        await gate.WaitAsync();
        var pausing = h.PauseAsync("foo");
        try
        {
            await WaitUntilAsync(async () => (await h.PartitionMetadataAsync("foo")).Paused, "the partition to show as paused");
            var closing = await h.PartitionMetadataAsync("foo");
            Assert.Equal((2L, 2L), (closing.NewestOffset, closing.HighWatermark));
        }
        finally
        {
            gate.Release();
        }

        await pausing;
        var paused = await h.PartitionMetadataAsync("foo");
        Assert.Equal((2L, 2L), (paused.NewestOffset, paused.HighWatermark));
    }

    [Fact]
    public async Task Behaviour30_pause_and_readonly_timestamps_keep_first_and_move_latest()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PauseAsync("foo");
        var p1 = (await h.PartitionMetadataAsync("foo")).PauseTimestamps;
        Assert.NotEqual(0, p1.FirstTimestamp);
        Assert.Equal(p1.FirstTimestamp, p1.LatestTimestamp);
        await h.PauseAsync("foo");
        var p2 = (await h.PartitionMetadataAsync("foo")).PauseTimestamps;
        Assert.Equal(p1.FirstTimestamp, p2.FirstTimestamp);
        Assert.True(p2.LatestTimestamp > p1.LatestTimestamp);

        await h.SetReadonlyAsync("foo", true);
        var r1 = (await h.PartitionMetadataAsync("foo")).ReadonlyTimestamps;
        Assert.NotEqual(0, r1.FirstTimestamp);
        await h.SetReadonlyAsync("foo", true);
        var r2 = (await h.PartitionMetadataAsync("foo")).ReadonlyTimestamps;
        Assert.Equal(r1.FirstTimestamp, r2.FirstTimestamp);
        Assert.True(r2.LatestTimestamp > r1.LatestTimestamp);
    }

    [Fact]
    public async Task Behaviour31_pause_all_partitions_then_publish_resumes_only_that_partition()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo", partitions: 2);
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.PauseAsync("bar"));
        Assert.Equal("stream not found", ex.Detail);
        await h.PauseAsync("foo");
        await h.PauseAsync("foo");
        var metadata = await h.MetadataAsync("foo");
        Assert.All(metadata.StreamMetadata[0].Partitions.Values, p => Assert.True(p.Paused));
        Assert.Equal((0, 0), (metadata.Brokers[0].PartitionCount, metadata.Brokers[0].LeaderCount));

        Assert.NotNull(await h.PublishAsync("foo", "x", partition: 0));
        Assert.False((await h.PartitionMetadataAsync("foo", 0)).Paused);
        Assert.True((await h.PartitionMetadataAsync("foo", 1)).Paused);
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Earliest });
        Assert.Equal("x", (await ReadAsync(sub, 1))[0].Value.ToStringUtf8());
    }

    [Fact]
    public async Task Behaviour32_pause_missing_partition_is_NotFound_and_resumeAll_resumes_every_partition()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo", partitions: 2);
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.PauseAsync("foo", false, 99));
        Assert.Equal("partition does not exist", ex.Detail);
        await h.PauseAsync("foo", true, 0, 1);
        await h.PublishAsync("foo", "x", partition: 1);
        Assert.False((await h.PartitionMetadataAsync("foo", 0)).Paused);
        Assert.False((await h.PartitionMetadataAsync("foo", 1)).Paused);
    }

    [Fact]
    public async Task Behaviour32_after_a_resumeAll_pause_a_publish_to_an_unpaused_partition_resumes_the_paused_one()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo", partitions: 2);
        await h.PauseAsync("foo", true, 0);
        Assert.Equal(0, (await h.PublishAsync("foo", "x", partition: 1))!.Offset);
        Assert.False((await h.PartitionMetadataAsync("foo", 0)).Paused);
        Assert.Equal(0, (await h.PublishAsync("foo", "y", partition: 0))!.Offset);
    }

    [Fact]
    public async Task Pause_closes_the_partition_log_and_keeps_its_offsets()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PublishManyAsync("foo", 3);
        await h.PauseAsync("foo");
        Assert.True(h.Server.Broker.TryGetStream("foo", out var stream));
        Assert.Null(stream.Partitions[0].Log);
        var metadata = await h.PartitionMetadataAsync("foo");
        Assert.Equal((2L, 2L, true), (metadata.HighWatermark, metadata.NewestOffset, metadata.Paused));
        Assert.Equal(3, (await h.PublishAsync("foo", "after"))!.Offset);
    }

    [Fact]
    public async Task Behaviour33_readonly_partitions_refuse_publishes()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo", partitions: 2);
        await h.SetReadonlyAsync("foo", true);
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => h.PublishAsync("foo", "x", partition: 0));
        Assert.Equal("readonly partition: 0", ex.Detail);
        await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => h.PublishAsync("foo", "x", partition: 1));

        await h.SetReadonlyAsync("foo", false);
        await h.SetReadonlyAsync("foo", true, 0);
        await h.SetReadonlyAsync("foo", true, 0);
        await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => h.PublishAsync("foo", "x", partition: 0));
        Assert.NotNull(await h.PublishAsync("foo", "x", partition: 1));
        Assert.True((await h.PartitionMetadataAsync("foo", 0)).Readonly);

        await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.SetReadonlyAsync("missing", true));
        var missing = await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.SetReadonlyAsync("foo", true, 99));
        Assert.Equal("partition does not exist", missing.Detail);
    }

    [Fact]
    public async Task Health_reports_SERVING_for_the_server_and_proto_API()
    {
        await using var h = await StartAsync();
        foreach (var service in new[] { "", "proto.API" })
        {
            var response = await h.Channel.UnaryAsync("/grpc.health.v1.Health/Check", new HealthCheckRequest { Service = service }, HealthCheckResponse.Parser, CallTimeout);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
        }
    }

    [Fact]
    public async Task Auto_pause_pauses_an_idle_partition_and_publishing_resumes_it()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo", configure: r => r.AutoPauseTime = new NullableInt64 { Value = 100 });
        await h.PublishAsync("foo", "x");
        await WaitUntilAsync(async () => (await h.PartitionMetadataAsync("foo")).Paused, "the idle partition auto-paused");
        Assert.NotNull(await h.PublishAsync("foo", "y"));
        Assert.False((await h.PartitionMetadataAsync("foo")).Paused);
    }

    [Fact]
    public async Task Auto_pause_is_disabled_by_subscribers_when_asked()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("watched", "w", configure: r =>
        {
            r.AutoPauseTime = new NullableInt64 { Value = 150 };
            r.AutoPauseDisableIfSubscribers = new NullableBool { Value = true };
        });
        await h.CreateStreamAsync("control", "c", configure: r => r.AutoPauseTime = new NullableInt64 { Value = 150 });
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "watched", Resume = true });
        await WaitUntilAsync(async () => (await h.PartitionMetadataAsync("control")).Paused, "the control stream auto-paused");
        await h.PublishAsync("control", "wake");
        await WaitUntilAsync(async () => (await h.PartitionMetadataAsync("control")).Paused, "the control stream auto-paused again");
        // A whole idle period passed while the subscriber was there: without it, the watched stream would have paused too.
        Assert.False((await h.PartitionMetadataAsync("watched")).Paused);
    }

    [Fact]
    public async Task Pause_and_readonly_of_a_missing_stream_answer_as_Liftbridge_with_and_without_partitions()
    {
        // Checked against Liftbridge v1.9.0: an empty partition list is expanded first, and that lookup says "not found".
        await using var h = await StartAsync();
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.PauseAsync("missing"));
        Assert.Equal("stream not found", ex.Detail);
        ex = await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.PauseAsync("missing", false, 0));
        Assert.Equal("stream does not exist", ex.Detail);
        ex = await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.SetReadonlyAsync("missing", true));
        Assert.Equal("stream not found", ex.Detail);
        ex = await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.SetReadonlyAsync("missing", true, 0));
        Assert.Equal("stream does not exist", ex.Detail);
    }

    [Fact]
    public async Task Setting_readonly_false_moves_the_readonly_latest_timestamp_as_setting_it_true_does()
    {
        // Checked against Liftbridge v1.9.0: every SetStreamReadonly call records a readonly event, whatever the value.
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.SetReadonlyAsync("foo", false);
        var r0 = (await h.PartitionMetadataAsync("foo")).ReadonlyTimestamps;
        Assert.NotEqual(0, r0.FirstTimestamp);
        Assert.Equal(r0.FirstTimestamp, r0.LatestTimestamp);
        await h.SetReadonlyAsync("foo", true);
        var r1 = (await h.PartitionMetadataAsync("foo")).ReadonlyTimestamps;
        await h.SetReadonlyAsync("foo", false);
        var p2 = await h.PartitionMetadataAsync("foo");
        Assert.False(p2.Readonly);
        Assert.Equal(r0.FirstTimestamp, p2.ReadonlyTimestamps.FirstTimestamp);
        Assert.True(p2.ReadonlyTimestamps.LatestTimestamp > r1.LatestTimestamp);

        await h.RestartAsync(); // and they are saved
        Assert.Equal(p2.ReadonlyTimestamps, (await h.PartitionMetadataAsync("foo")).ReadonlyTimestamps);
    }

    [Fact]
    public async Task A_resumeAll_pause_is_lifted_for_every_partition_by_a_publish_or_a_resume_subscription_and_recorded()
    {
        await using var h = await StartAsync(o => o with { Activity = o.Activity with { Enabled = true } });
        await h.CreateStreamAsync("foo", "foo", partitions: 3);
        async Task<bool[]> PausedAsync() => [.. (await h.MetadataAsync("foo")).StreamMetadata[0].Partitions.OrderBy(p => p.Key).Select(p => p.Value.Paused)];

        await h.PauseAsync("foo", resumeAll: true);
        Assert.NotNull(await h.PublishAsync("foo", "x", partition: 1));
        Assert.Equal(new[] { false, false, false }, await PausedAsync());

        await h.PauseAsync("foo", resumeAll: true);
        await using (var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", Partition = 2, Resume = true }))
        {
            Assert.Equal(new[] { false, false, false }, await PausedAsync());
        }

        // The flag is the stream's, set by the latest pause (as Liftbridge): a later pause without it resumes one partition.
        await h.PauseAsync("foo", true, 0, 1);
        await h.PauseAsync("foo", false, 2);
        Assert.NotNull(await h.PublishAsync("foo", "y", partition: 0));
        Assert.Equal(new[] { false, true, true }, await PausedAsync());

        await using var activity = await h.SubscribeAsync(new SubscribeRequest { Stream = "__activity", StartPosition = StartPosition.Earliest });
        var events = (await ReadAsync(activity, 9)).Select(m => ActivityStreamEvent.Parser.ParseFrom(m.Value)).ToList();
        var resumes = events.Where(e => e.Op == ActivityStreamOp.ResumeStream).Select(e => e.ResumeStreamOp.Partitions.Order().ToArray()).ToList();
        Assert.Equal([[0, 1, 2], [0, 1, 2], [0]], resumes);
    }
}
