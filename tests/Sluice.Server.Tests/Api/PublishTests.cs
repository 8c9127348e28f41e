using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Api;

public sealed class PublishTests
{
    [Fact]
    public async Task Behaviour12_message_above_replication_max_bytes_is_InvalidArgument()
    {
        await using var h = await StartAsync(o => o with { Clustering = o.Clustering with { ReplicationMaxBytes = 1024 } });
        await h.CreateStreamAsync("foo", "foo");
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.PublishAsync("foo", new string('x', 1025)));
        Assert.Equal("message exceeds max replication size", ex.Detail);
        Assert.NotNull(await h.PublishAsync("foo", new string('x', 1000)));
    }

    [Fact]
    public async Task Behaviour13_unary_publish_validation_and_fire_and_forget()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo", partitions: 2);
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CallAsync("Publish", new PublishRequest(), PublishResponse.Parser));
        Assert.Equal("no stream provided", ex.Detail);
        ex = await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.CallAsync("Publish", new PublishRequest { Stream = "bar" }, PublishResponse.Parser));
        Assert.Equal("no such stream: bar", ex.Detail);

        var acked = await h.CallAsync("Publish", new PublishRequest { Stream = "foo", Partition = 1, Value = ByteString.CopyFromUtf8("v") }, PublishResponse.Parser);
        Assert.NotNull(acked.Ack);
        Assert.Equal(0, acked.Ack.Offset);

        var none = await h.CallAsync("Publish", new PublishRequest { Stream = "foo", Partition = 1, AckPolicy = AckPolicy.None }, PublishResponse.Parser);
        Assert.Null(none.Ack);

        // Without a deadline Publish does not wait for the ack either (Liftbridge's fire-and-forget).
        var noDeadline = await h.Channel.UnaryAsync("/proto.API/Publish", new PublishRequest { Stream = "foo", Partition = 1 }, PublishResponse.Parser);
        Assert.Null(noDeadline.Ack);
        await WaitUntilAsync(async () => (await h.PartitionMetadataAsync("foo", 1)).HighWatermark == 2, "all three messages committed");
    }

    [Fact]
    public async Task Behaviour36_publish_to_missing_stream_or_partition_is_NotFound()
    {
        await using var h = await StartAsync();
        await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.PublishAsync("nope", "x"));
        await h.CreateStreamAsync("foo", "foo");
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.PublishAsync("foo", "x", partition: 42));
        Assert.Equal("no such partition: 42", ex.Detail);
    }

    [Fact]
    public async Task Ack_carries_stream_subjects_offset_correlation_and_timestamps()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo.bar");
        var response = await h.CallAsync("Publish", new PublishRequest { Stream = "foo", Value = ByteString.CopyFromUtf8("v"), CorrelationId = "c1", AckInbox = "inbox", AckPolicy = AckPolicy.All }, PublishResponse.Parser);
        var ack = response.Ack;
        Assert.Equal("foo", ack.Stream);
        Assert.Equal("foo.bar", ack.PartitionSubject);
        Assert.Equal("foo.bar", ack.MsgSubject);
        Assert.Equal(0, ack.Offset);
        Assert.Equal("c1", ack.CorrelationId);
        Assert.Equal("inbox", ack.AckInbox);
        Assert.Equal(AckPolicy.All, ack.AckPolicy);
        Assert.True(ack.ReceptionTimestamp > 0);
        Assert.True(ack.CommitTimestamp >= ack.ReceptionTimestamp);
        Assert.Equal(Ack.Types.Error.Ok, ack.AckError);
    }

    [Fact]
    public async Task Quirk05_ack_partitionSubject_is_the_partitions_own_subject()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo", partitions: 3);
        var ack = await h.PublishAsync("foo", "x", partition: 2);
        Assert.Equal("foo.2", ack!.PartitionSubject);
        Assert.Equal("foo.2", ack.MsgSubject);
        Assert.Equal("foo", (await h.PublishAsync("foo", "x", partition: 0))!.PartitionSubject);
    }

    private static PublishRequest Async(string stream, string correlationId, long expectedOffset = -1, AckPolicy policy = AckPolicy.Leader, int partition = 0, string value = "v") => new()
    {
        Stream = stream,
        Partition = partition,
        CorrelationId = correlationId,
        ExpectedOffset = expectedOffset,
        AckPolicy = policy,
        Value = ByteString.CopyFromUtf8(value),
    };

    private static async Task<PublishResponse> NextAsync(Sluice.Client.Grpc.GrpcDuplexCall<PublishRequest, PublishResponse> call)
    {
        Assert.True(await call.MoveNextAsync().AsTask().WaitAsync(CallTimeout));
        return call.Current;
    }

    [Fact]
    public async Task PublishAsync_pipelines_many_publishes_correlated_by_id()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo", partitions: 2);
        await using var call = h.Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        const int count = 2000;
        for (var i = 0; i < count; i++)
        {
            await call.WriteAsync(Async("foo", "c" + i, partition: i % 2));
        }

        await call.CompleteRequestsAsync();
        var seen = new HashSet<string>();
        var offsets = new Dictionary<int, List<long>> { [0] = [], [1] = [] };
        await foreach (var response in call.ReadAllAsync().WithCancellation(new CancellationTokenSource(CallTimeout).Token))
        {
            Assert.Null(response.AsyncError);
            Assert.Equal(response.CorrelationId, response.Ack.CorrelationId);
            Assert.True(seen.Add(response.CorrelationId));
            offsets[response.Ack.PartitionSubject == "foo" ? 0 : 1].Add(response.Ack.Offset);
        }

        Assert.Equal(count, seen.Count);
        Assert.Equal(Enumerable.Range(0, count / 2).Select(i => (long)i), offsets[0].Order());
        Assert.Equal(Enumerable.Range(0, count / 2).Select(i => (long)i), offsets[1].Order());
    }

    [Fact]
    public async Task PublishAsync_reports_precondition_failures_as_async_errors()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.SetReadonlyAsync("foo", true);
        await using var call = h.Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        await call.WriteAsync(Async("missing", "a"));
        var r = await NextAsync(call);
        Assert.Equal(("a", PublishAsyncError.Types.Code.NotFound, "no such stream: missing"), (r.CorrelationId, r.AsyncError.Code, r.AsyncError.Message));
        Assert.NotNull(r.Ack);
        await call.WriteAsync(Async("", "b"));
        r = await NextAsync(call);
        Assert.Equal(("b", PublishAsyncError.Types.Code.NotFound), (r.CorrelationId, r.AsyncError.Code));
        await call.WriteAsync(Async("foo", "c", partition: 5));
        r = await NextAsync(call);
        Assert.Equal(("c", PublishAsyncError.Types.Code.NotFound, "no such partition: 5"), (r.CorrelationId, r.AsyncError.Code, r.AsyncError.Message));
        await call.WriteAsync(Async("foo", "d"));
        r = await NextAsync(call);
        Assert.Equal(("d", PublishAsyncError.Types.Code.Readonly), (r.CorrelationId, r.AsyncError.Code));
    }

    [Fact]
    public async Task Behaviour25_occ_stream_with_AckPolicy_NONE_is_BAD_REQUEST()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("occ", "occ", configure: r => r.OptimisticConcurrencyControl = new NullableBool { Value = true });
        await using var call = h.Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        await call.WriteAsync(Async("occ", "a", expectedOffset: 0, policy: AckPolicy.None));
        var r = await NextAsync(call);
        Assert.Equal(PublishAsyncError.Types.Code.BadRequest, r.AsyncError.Code);
        Assert.Equal("stream with concurrency control must have AckPolicy set", r.AsyncError.Message);
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.PublishAsync("occ", "x", policy: AckPolicy.None, expectedOffset: 0));
        Assert.Equal("stream with concurrency control must have AckPolicy set", ex.Detail);
    }

    [Fact]
    public async Task Behaviour26_occ_wrong_expected_offset_is_INCORRECT_OFFSET_and_minus_one_means_any()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("occ", "occ", configure: r => r.OptimisticConcurrencyControl = new NullableBool { Value = true });
        await using var call = h.Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        await call.WriteAsync(Async("occ", "a", expectedOffset: 100));
        var r = await NextAsync(call);
        Assert.Equal(("a", PublishAsyncError.Types.Code.IncorrectOffset, "incorrect expected offset"), (r.CorrelationId, r.AsyncError.Code, r.AsyncError.Message));
        await call.WriteAsync(Async("occ", "b", expectedOffset: -1));
        r = await NextAsync(call);
        Assert.Null(r.AsyncError);
        Assert.Equal(0, r.Ack.Offset);
    }

    [Fact]
    public async Task Behaviour27_Quirk03_occ_expected_offset_zero_is_a_real_expectation()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("occ", "occ", configure: r => r.OptimisticConcurrencyControl = new NullableBool { Value = true });
        Assert.Equal(0, (await h.PublishAsync("occ", "a", expectedOffset: 0))!.Offset);
        Assert.Equal(1, (await h.PublishAsync("occ", "b", expectedOffset: 1))!.Offset);
        await using var second = h.Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        await second.WriteAsync(Async("occ", "c", expectedOffset: 0));
        Assert.Equal(PublishAsyncError.Types.Code.IncorrectOffset, (await NextAsync(second)).AsyncError.Code);
        var next = (await h.PartitionMetadataAsync("occ")).NewestOffset + 1;
        await second.WriteAsync(Async("occ", "d", expectedOffset: next));
        var r = await NextAsync(second);
        Assert.Null(r.AsyncError);
        Assert.Equal(2, r.Ack.Offset);
    }

    [Fact]
    public async Task Quirk04_unary_incorrect_offset_is_Unknown_incorrect_expected_offset()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("occ", "occ", configure: r => r.OptimisticConcurrencyControl = new NullableBool { Value = true });
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.Unknown, () => h.PublishAsync("occ", "x", expectedOffset: 7));
        Assert.Equal("incorrect expected offset", ex.Detail);
    }

    [Fact]
    public async Task Quirk14_error_acks_are_sent_even_with_AckPolicy_NONE()
    {
        await using var h = await StartAsync(o => o with { Clustering = o.Clustering with { ReplicationMaxBytes = 100 } });
        await h.CreateStreamAsync("foo", "foo");
        await using var call = h.Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        await call.WriteAsync(Async("foo", "ok", policy: AckPolicy.None));          // success with NONE: no response
        await call.WriteAsync(Async("foo", "big", policy: AckPolicy.None, value: new string('x', 200)));
        var r = await NextAsync(call);
        Assert.Equal(("big", PublishAsyncError.Types.Code.BadRequest, "message exceeds max replication size"), (r.CorrelationId, r.AsyncError.Code, r.AsyncError.Message));
        await WaitUntilAsync(async () => (await h.PartitionMetadataAsync("foo")).HighWatermark == 0, "the NONE message committed");
    }

    [Fact]
    public async Task PublishAsync_waits_for_in_flight_acks_after_the_client_half_closes()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await using var call = h.Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        for (var i = 0; i < 100; i++)
        {
            await call.WriteAsync(Async("foo", "c" + i));
        }

        await call.CompleteRequestsAsync();
        var count = 0;
        await foreach (var _ in call.ReadAllAsync())
        {
            count++;
        }

        Assert.Equal(100, count);
    }

    [Fact]
    public async Task PublishToSubject_routes_to_every_matching_stream_and_returns_the_first_ack()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("exact", "foo.bar");
        await h.CreateStreamAsync("wild", "foo.*");
        await h.CreateStreamAsync("tail", "foo.>");
        await h.CreateStreamAsync("other", "baz");
        await h.CreateStreamAsync("parts", "foo", partitions: 2); // partition 1 listens on foo.1
        var response = await h.CallAsync("PublishToSubject", new PublishToSubjectRequest { Subject = "foo.bar", Value = ByteString.CopyFromUtf8("hello"), Key = ByteString.CopyFromUtf8("key") }, PublishToSubjectResponse.Parser);
        Assert.NotNull(response.Ack);
        Assert.Equal("foo.bar", response.Ack.MsgSubject);
        foreach (var stream in new[] { "exact", "wild", "tail" })
        {
            await WaitUntilAsync(async () => (await h.PartitionMetadataAsync(stream)).HighWatermark == 0, stream + " got the message");
        }

        await h.CallAsync("PublishToSubject", new PublishToSubjectRequest { Subject = "foo.1", Value = ByteString.CopyFromUtf8("p1") }, PublishToSubjectResponse.Parser);
        await WaitUntilAsync(async () => (await h.PartitionMetadataAsync("parts", 1)).HighWatermark == 0, "partition 1 got foo.1");
        Assert.Equal(-1, (await h.PartitionMetadataAsync("parts", 0)).HighWatermark);
        Assert.Equal(-1, (await h.PartitionMetadataAsync("other")).HighWatermark);

        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "wild", StartPosition = StartPosition.Earliest });
        var message = (await ReadAsync(sub, 1))[0];
        Assert.Equal("hello", message.Value.ToStringUtf8());
        Assert.Equal("key", message.Key.ToStringUtf8());
        Assert.Equal("foo.bar", message.Subject);
    }

    [Fact]
    public async Task PublishToSubject_leaves_a_readonly_partition_unchanged_and_acks_from_the_writable_ones()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("locked", "foo");
        await h.SetReadonlyAsync("locked", true);
        var request = new PublishToSubjectRequest { Subject = "foo", Value = ByteString.CopyFromUtf8("x") };

        // Only a readonly partition listens: nothing is stored and no ack comes (DEADLINE_EXCEEDED, as Liftbridge).
        await ThrowsGrpcAsync(GrpcStatusCode.DeadlineExceeded, () => h.CallAsync("PublishToSubject", request, PublishToSubjectResponse.Parser, TimeSpan.FromMilliseconds(300)));
        await h.CreateStreamAsync("open", "foo");
        var ack = (await h.CallAsync("PublishToSubject", request, PublishToSubjectResponse.Parser)).Ack;
        Assert.Equal(("open", 0L), (ack.Stream, ack.Offset));
        Assert.Equal(-1, (await h.PartitionMetadataAsync("locked")).HighWatermark);
    }

    [Fact]
    public async Task PublishToSubject_leaves_a_paused_partition_paused_and_unchanged()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        await h.PauseAsync("foo");
        var request = new PublishToSubjectRequest { Subject = "foo", Value = ByteString.CopyFromUtf8("x") };
        await ThrowsGrpcAsync(GrpcStatusCode.DeadlineExceeded, () => h.CallAsync("PublishToSubject", request, PublishToSubjectResponse.Parser, TimeSpan.FromMilliseconds(300)));
        var metadata = await h.PartitionMetadataAsync("foo");
        Assert.Equal((true, -1L), (metadata.Paused, metadata.HighWatermark));
    }

    [Fact]
    public async Task PublishToSubject_with_no_matching_stream_times_out_unless_no_ack_is_wanted()
    {
        await using var h = await StartAsync();
        var request = new PublishToSubjectRequest { Subject = "nobody.listens", Value = ByteString.CopyFromUtf8("x") };

        // With a deadline and an ack policy, no ack ever comes: DEADLINE_EXCEEDED, as Liftbridge.
        await ThrowsGrpcAsync(GrpcStatusCode.DeadlineExceeded, () => h.CallAsync("PublishToSubject", request, PublishToSubjectResponse.Parser, TimeSpan.FromMilliseconds(300)));

        // Without a deadline, or with AckPolicy NONE, it is fire-and-forget: an empty response at once.
        Assert.Null((await h.Channel.UnaryAsync("/proto.API/PublishToSubject", request, PublishToSubjectResponse.Parser, timeout: null)).Ack);
        var none = request.Clone();
        none.AckPolicy = AckPolicy.None;
        Assert.Null((await h.CallAsync("PublishToSubject", none, PublishToSubjectResponse.Parser)).Ack);
    }

    [Theory]
    [InlineData("Publish")]
    [InlineData("PublishAsync")]
    public async Task A_publish_whose_string_field_is_not_UTF8_is_refused_and_stores_nothing(string method)
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("foo", "foo");
        var request = new PublishRequest { Stream = "foo", Value = ByteString.CopyFromUtf8("v"), AckPolicy = AckPolicy.Leader }.ToByteArray();
        byte[] badCorrelationId = [.. request, (7 << 3) | 2, 3, (byte)'a', 0xFF, (byte)'b'];
        var frame = new byte[5 + badCorrelationId.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)badCorrelationId.Length);
        badCorrelationId.CopyTo(frame, 5);

        await using var client = await Http2.RawH2Client.ConnectAndHandshakeAsync(h.Server.Port);
        await client.SendRequestAsync(1, endStream: false, "/proto.API/" + method);
        await client.SendDataAsync(1, frame, endStream: true);
        var response = await client.ReadResponseAsync(1);

        Assert.Equal("13", response.Trailer("grpc-status"));
        Assert.Equal("Failed to parse PublishRequest: String is invalid UTF-8.", Uri.UnescapeDataString(response.Trailer("grpc-message") ?? string.Empty));
        Assert.Equal(0, (await h.PublishAsync("foo", "next"))!.Offset); // nothing was stored before it
    }

    [Theory]
    [InlineData(AckPolicy.None, true)]
    [InlineData(AckPolicy.Leader, true)]
    [InlineData(AckPolicy.All, true)]
    [InlineData(AckPolicy.None, false)]
    [InlineData(AckPolicy.Leader, false)]
    public async Task An_oversized_unary_publish_is_InvalidArgument_whatever_the_ack_policy_and_deadline(AckPolicy policy, bool deadline)
    {
        await using var h = await StartAsync(o => o with { Clustering = o.Clustering with { ReplicationMaxBytes = 100 } });
        await h.CreateStreamAsync("foo", "foo");
        var request = new PublishRequest { Stream = "foo", Value = ByteString.CopyFromUtf8(new string('x', 200)), AckPolicy = policy };
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.Channel.UnaryAsync("/proto.API/Publish", request, PublishResponse.Parser, deadline ? CallTimeout : null));
        Assert.Equal("message exceeds max replication size", ex.Detail);
        Assert.Equal(0, (await h.PublishAsync("foo", "small"))!.Offset); // nothing was stored before it
    }

    [Theory]
    [InlineData(AckPolicy.None, true)]
    [InlineData(AckPolicy.Leader, true)]
    [InlineData(AckPolicy.Leader, false)]
    public async Task An_oversized_PublishToSubject_is_InvalidArgument_whatever_the_ack_policy_and_deadline(AckPolicy policy, bool deadline)
    {
        await using var h = await StartAsync(o => o with { Clustering = o.Clustering with { ReplicationMaxBytes = 100 } });
        await h.CreateStreamAsync("foo", "foo");
        var request = new PublishToSubjectRequest { Subject = "foo", Value = ByteString.CopyFromUtf8(new string('x', 200)), AckPolicy = policy };
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.Channel.UnaryAsync("/proto.API/PublishToSubject", request, PublishToSubjectResponse.Parser, deadline ? CallTimeout : null));
        Assert.Equal("message exceeds max replication size", ex.Detail);
        Assert.Equal(0, (await h.PublishAsync("foo", "small"))!.Offset);
    }

    [Theory]
    [InlineData(AckPolicy.None)]
    [InlineData(AckPolicy.Leader)]
    [InlineData(AckPolicy.All)]
    public async Task An_oversized_PublishAsync_message_is_BAD_REQUEST_whatever_the_ack_policy(AckPolicy policy)
    {
        await using var h = await StartAsync(o => o with { Clustering = o.Clustering with { ReplicationMaxBytes = 100 } });
        await h.CreateStreamAsync("foo", "foo");
        await using var call = h.Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        await call.WriteAsync(Async("foo", "big", policy: policy, value: new string('x', 200)));
        var r = await NextAsync(call);
        Assert.Equal(("big", PublishAsyncError.Types.Code.BadRequest, "message exceeds max replication size"), (r.CorrelationId, r.AsyncError.Code, r.AsyncError.Message));
        Assert.Equal(0, (await h.PublishAsync("foo", "small"))!.Offset);
    }
}
