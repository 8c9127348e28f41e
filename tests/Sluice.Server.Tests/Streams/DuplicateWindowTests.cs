using System.Text;
using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Envelopes;
using Sluice.Protocol.Grpc;
using Sluice.Server.Streams;
using Sluice.Server.Tests.Nats;
using Sluice.Storage.Log;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Streams;

/// <summary>Idempotent publishing: a repeat of a message id within the window is acked with its first offset and not stored.</summary>
public sealed class DuplicateWindowTests
{
    private const string IdHeader = DuplicateWindow.HeaderName;

    private static PublishRequest Request(string stream, string value, string? id, long expectedOffset = -1, string correlationId = "")
    {
        var request = new PublishRequest
        {
            Stream = stream,
            Value = ByteString.CopyFromUtf8(value),
            AckPolicy = AckPolicy.Leader,
            ExpectedOffset = expectedOffset,
            CorrelationId = correlationId,
        };
        if (id is not null)
        {
            request.Headers[IdHeader] = ByteString.CopyFromUtf8(id);
        }

        return request;
    }

    private static async Task<Ack> PublishAsync(BrokerHarness h, string stream, string value, string? id, long expectedOffset = -1, string correlationId = "") =>
        (await h.CallAsync("Publish", Request(stream, value, id, expectedOffset, correlationId), PublishResponse.Parser)).Ack;

    /// <summary>Every stored value, read from the start to the newest offset.</summary>
    private static async Task<List<string>> StoredValuesAsync(BrokerHarness h, string stream)
    {
        var newest = (await h.PartitionMetadataAsync(stream)).NewestOffset;
        if (newest < 0)
        {
            return [];
        }

        await using var call = await h.SubscribeAsync(new SubscribeRequest { Stream = stream, StartPosition = StartPosition.Earliest });
        return [.. (await ReadAsync(call, (int)newest + 1)).Select(m => m.Value.ToStringUtf8())];
    }

    [Fact]
    public async Task A_repeat_within_the_window_is_acked_with_the_first_offset_and_not_stored()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("d", "d");

        var first = await PublishAsync(h, "d", "a", "id-1", correlationId: "c1");
        Assert.Equal(1, (await PublishAsync(h, "d", "other", null)).Offset);
        var repeat = await PublishAsync(h, "d", "a again", "id-1", correlationId: "c2");

        Assert.Equal(0, first.Offset);
        Assert.Equal(0, repeat.Offset);
        Assert.Equal(Ack.Types.Error.Ok, repeat.AckError);
        Assert.Equal("c2", repeat.CorrelationId); // the repeat's own ack fields
        Assert.Equal(("d", "d", "d"), (repeat.Stream, repeat.PartitionSubject, repeat.MsgSubject));
        Assert.Equal(first.ReceptionTimestamp, repeat.ReceptionTimestamp); // when the stored message arrived
        Assert.Equal(2, (await PublishAsync(h, "d", "b", "id-2")).Offset);
        Assert.Equal(["a", "other", "b"], await StoredValuesAsync(h, "d"));
    }

    [Fact]
    public async Task The_window_is_rebuilt_from_the_log_after_a_restart()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("d", "d");
        Assert.Equal(0, (await PublishAsync(h, "d", "a", "id-a")).Offset);
        Assert.Equal(1, (await PublishAsync(h, "d", "b", "id-b")).Offset);
        Assert.Equal(2, (await PublishAsync(h, "d", "c", null)).Offset);

        await h.RestartAsync();

        Assert.Equal(1, (await PublishAsync(h, "d", "b", "id-b")).Offset);
        Assert.Equal(0, (await PublishAsync(h, "d", "a", "id-a")).Offset);
        Assert.Equal(3, (await PublishAsync(h, "d", "d", "id-d")).Offset);
        Assert.Equal(["a", "b", "c", "d"], await StoredValuesAsync(h, "d"));
    }

    [Fact]
    public async Task A_repeat_after_the_window_is_stored_again()
    {
        await using var h = await StartAsync(o => o with { Streams = o.Streams with { DuplicateWindow = TimeSpan.FromMilliseconds(300) } });
        await h.CreateStreamAsync("d", "d");
        Assert.Equal(0, (await PublishAsync(h, "d", "a", "id-1")).Offset);

        // Repeats inside the window get offset 0; the first one after it is appended at 1.
        await WaitUntilAsync(async () => (await PublishAsync(h, "d", "a", "id-1")).Offset != 0, "a repeat is stored once the window has passed");

        Assert.Equal(["a", "a"], await StoredValuesAsync(h, "d"));
        Assert.Equal(1, (await PublishAsync(h, "d", "a", "id-1")).Offset); // and the window now points at the new one
    }

    [Fact]
    public async Task A_window_of_zero_turns_deduplication_off()
    {
        await using var h = await StartAsync(o => o with { Streams = o.Streams with { DuplicateWindow = TimeSpan.Zero } });
        await h.CreateStreamAsync("d", "d");
        Assert.Equal(0, (await PublishAsync(h, "d", "a", "id-1")).Offset);
        Assert.Equal(1, (await PublishAsync(h, "d", "a", "id-1")).Offset);
    }

    [Fact]
    public async Task Repeats_in_one_PublishAsync_burst_are_acked_with_the_first_offset()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("d", "d");
        Assert.Equal(0, (await PublishAsync(h, "d", "before", "old")).Offset);

        string?[] ids = ["x", "y", "x", null, "old", "y", "x", "z", null];
        await using var call = h.Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        for (var i = 0; i < ids.Length; i++)
        {
            await call.WriteAsync(Request("d", "v" + i, ids[i], correlationId: "c" + i));
        }

        await call.CompleteRequestsAsync();
        var offsets = new Dictionary<string, long>();
        await foreach (var response in call.ReadAllAsync().WithCancellation(new CancellationTokenSource(CallTimeout).Token))
        {
            Assert.Null(response.AsyncError);
            offsets.Add(response.Ack.CorrelationId, response.Ack.Offset);
        }

        Assert.Equal(ids.Length, offsets.Count);
        Assert.Equal(offsets["c0"], offsets["c2"]);
        Assert.Equal(offsets["c0"], offsets["c6"]);
        Assert.Equal(offsets["c1"], offsets["c5"]);
        Assert.Equal(0, offsets["c4"]);
        Assert.Equal(["before", "v0", "v1", "v3", "v7", "v8"], await StoredValuesAsync(h, "d"));
        Assert.Equal([1L, 2, 3, 4, 5], new[] { offsets["c0"], offsets["c1"], offsets["c3"], offsets["c7"], offsets["c8"] });
    }

    [Fact]
    public async Task PublishToSubject_repeats_are_acked_with_the_first_offset()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("d", "subj");
        PublishToSubjectRequest Request(string value) => new()
        {
            Subject = "subj",
            Value = ByteString.CopyFromUtf8(value),
            AckPolicy = AckPolicy.Leader,
            Headers = { [IdHeader] = ByteString.CopyFromUtf8("id-1") },
        };

        var first = await h.CallAsync("PublishToSubject", Request("a"), PublishToSubjectResponse.Parser);
        var repeat = await h.CallAsync("PublishToSubject", Request("b"), PublishToSubjectResponse.Parser);
        Assert.Equal((0L, 0L), (first.Ack.Offset, repeat.Ack.Offset));
        Assert.Equal(["a"], await StoredValuesAsync(h, "d"));
    }

    [Fact]
    public async Task A_repeat_with_an_expected_offset_gets_the_first_offset_rather_than_INCORRECT_OFFSET()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("occ", "occ", configure: r => r.OptimisticConcurrencyControl = new NullableBool { Value = true });
        Assert.Equal(0, (await PublishAsync(h, "occ", "a", "id-1", expectedOffset: 0)).Offset);

        // The retry of a publish whose ack was lost: its expectation no longer holds, but it was stored.
        Assert.Equal(0, (await PublishAsync(h, "occ", "a", "id-1", expectedOffset: 0)).Offset);
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.Unknown, () => PublishAsync(h, "occ", "b", "id-2", expectedOffset: 0));
        Assert.Equal("incorrect expected offset", ex.Detail);

        // A message refused for its expectation left no id behind: corrected, it is stored.
        Assert.Equal(1, (await PublishAsync(h, "occ", "b", "id-2", expectedOffset: 1)).Offset);
        Assert.Equal(["a", "b"], await StoredValuesAsync(h, "occ"));
    }

    [Fact]
    public async Task Ids_on_an_encrypted_stream_stay_readable_and_are_rebuilt_after_a_restart()
    {
        await using var h = await StartAsync(o => o with { EncryptionKeySource = () => "0123456789abcdef" });
        await h.CreateStreamAsync("enc", "enc", configure: r => r.Encryption = new NullableBool { Value = true });
        Assert.Equal(0, (await PublishAsync(h, "enc", "secret", "id-1")).Offset);

        await h.RestartAsync();

        Assert.Equal(0, (await PublishAsync(h, "enc", "secret", "id-1")).Offset);
        Assert.Equal(["secret"], await StoredValuesAsync(h, "enc"));
    }

    [Fact]
    public async Task An_id_longer_than_256_bytes_is_refused_on_every_gRPC_path()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("d", "d");
        var tooLong = new string('i', DuplicateWindow.MaxIdBytes + 1);
        const string Reason = "header Sluice-Msg-Id is 257 bytes long; a message id may have at most 256";

        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => PublishAsync(h, "d", "a", tooLong));
        Assert.Equal(Reason, ex.Detail);

        ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CallAsync("PublishToSubject", new PublishToSubjectRequest
        {
            Subject = "d",
            Value = ByteString.CopyFromUtf8("a"),
            AckPolicy = AckPolicy.Leader,
            Headers = { [IdHeader] = ByteString.CopyFromUtf8(tooLong) },
        }, PublishToSubjectResponse.Parser));
        Assert.Equal(Reason, ex.Detail);

        await using var call = h.Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        await call.WriteAsync(Request("d", "a", tooLong, correlationId: "c"));
        Assert.True(await call.MoveNextAsync().AsTask().WaitAsync(CallTimeout));
        Assert.Equal(("c", PublishAsyncError.Types.Code.BadRequest, Reason), (call.Current.CorrelationId, call.Current.AsyncError.Code, call.Current.AsyncError.Message));

        Assert.Equal(0, (await PublishAsync(h, "d", "ok", new string('i', DuplicateWindow.MaxIdBytes))).Offset);
        Assert.Equal(["ok"], await StoredValuesAsync(h, "d"));
    }

    [Fact]
    public async Task A_NATS_envelope_carrying_the_header_is_deduplicated_too()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("env", "env");
        await using var acks = await h.SubscribeAsync("acks.env");
        Message Publish(string value, string correlationId) => new()
        {
            Value = ByteString.CopyFromUtf8(value),
            AckInbox = "acks.env",
            CorrelationId = correlationId,
            AckPolicy = AckPolicy.Leader,
            Offset = -1,
            Headers = { [IdHeader] = ByteString.CopyFromUtf8("id-1") },
        };

        await h.PublishAsync("env", Envelope.EncodePublish(Publish("a", "c1")));
        var first = Envelope.DecodeAck((await NatsBrokerHarness.NextAsync(acks)).Data.AsSpan());
        await h.PublishAsync("env", Envelope.EncodePublish(Publish("b", "c2")));
        var repeat = Envelope.DecodeAck((await NatsBrokerHarness.NextAsync(acks)).Data.AsSpan());

        Assert.Equal(("c1", 0L), (first.CorrelationId, first.Offset));
        Assert.Equal(("c2", 0L, Ack.Types.Error.Ok), (repeat.CorrelationId, repeat.Offset, repeat.AckError));
        Assert.Equal(["a"], (await h.ReadAllAsync("env", 1)).Select(m => m.Value.ToStringUtf8()));
        Assert.Equal(0, (await h.Broker.PartitionMetadataAsync("env")).NewestOffset);
    }

    [Fact]
    public void The_window_keeps_at_most_its_cap_of_ids_evicting_the_oldest()
    {
        var window = new DuplicateWindow(TimeSpan.FromMinutes(2), maxIds: 2);
        var now = Partition.NowNanoseconds();
        window.Record([Item("a"), Item("b"), Item("c")], 3, first: 0, now);
        Assert.Equal(2, window.Count);

        PublishItem[] batch = [Item("a"), Item("b"), Item("c")];
        Assert.Equal(1, window.Filter(batch, 3, now)); // "a" was evicted: it is new again
        Assert.Equal("a", Encoding.ASCII.GetString(batch[0].Headers[0].Value.Span));
        Assert.Null(batch[1]);
    }

    [Fact]
    public void A_rebuild_reads_only_the_ids_of_records_inside_the_window_and_at_most_the_cap()
    {
        using var dir = new Sluice.TestKit.TempDirectory("sluice-dedup");
        using var log = CommitLog.Open(dir.Path);
        var now = Partition.NowNanoseconds();
        var old = now - (long)TimeSpan.FromMinutes(10).TotalNanoseconds;
        log.Append([Record("old", old), Record("x", now), Record("y", now), Record("z", now)]);

        var window = new DuplicateWindow(TimeSpan.FromMinutes(2));
        window.RebuildFrom(log);
        Assert.Equal(3, window.Count);
        PublishItem[] batch = [Item("old"), Item("x")];
        Assert.Equal(1, window.Filter(batch, 2, now)); // "old" is outside the window: new again
        window.Settle(null!, log.HighWatermark); // the repeat has no receiver: nothing to ack

        var capped = new DuplicateWindow(TimeSpan.FromMinutes(2), maxIds: 2);
        capped.RebuildFrom(log);
        Assert.Equal(2, capped.Count);
        batch = [Item("x"), Item("y"), Item("z")];
        Assert.Equal(1, capped.Filter(batch, 3, now)); // the newest two are remembered
        Assert.Equal("x", Encoding.ASCII.GetString(batch[0].Headers[0].Value.Span));
        capped.Settle(null!, log.HighWatermark);

        static LogRecord Record(string id, long timestamp) => new() { Timestamp = timestamp, Value = new byte[] { 1 }, Headers = [new RecordHeader(IdHeader, Encoding.ASCII.GetBytes(id))] };
    }

    [Fact]
    public void An_id_whose_message_was_not_appended_is_forgotten()
    {
        var window = new DuplicateWindow(TimeSpan.FromMinutes(2));
        var now = Partition.NowNanoseconds();
        PublishItem[] batch = [Item("a"), Item("a"), Item("b")];
        Assert.Equal(2, window.Filter(batch, 3, now)); // the second "a" waits for the first
        window.Record([batch[1]], 1, first: 7, now); // only "b" was appended (say "a" failed to encrypt)
        window.Settle(null!, long.MaxValue); // no receivers here: nothing to ack
        Assert.Equal(1, window.Count);

        batch = [Item("a"), Item("b")];
        Assert.Equal(1, window.Filter(batch, 2, now)); // "a" is new again; "b" is a repeat
        Assert.Equal("a", Encoding.ASCII.GetString(batch[0].Headers[0].Value.Span));
    }

    private static PublishItem Item(string id) => new() { Subject = "s", Headers = [new RecordHeader(IdHeader, Encoding.ASCII.GetBytes(id))] };

}
