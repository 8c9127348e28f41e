using System.Buffers.Binary;
using System.Text;
using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Envelopes;
using Sluice.Server.Nats;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Nats;

public sealed class NatsCaptureTests
{
    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    private static uint Crc32Castagnoli(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var i = 0; i < 8; i++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
            }
        }

        return ~crc;
    }

    private static string Header(Message m, string name) => m.Headers.TryGetValue(name, out var v) ? v.ToStringUtf8() : "<missing>";

    [Fact]
    public async Task A_plain_NATS_publish_is_stored_as_the_value_and_read_back_through_gRPC()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("plain", "plain.sub");

        await h.PublishAsync("plain.sub", Utf8("hello"), replyTo: "reply.here");
        await h.PublishAsync("plain.sub", Utf8("world"));

        var messages = await h.ReadAllAsync("plain", 2);
        Assert.Equal(["hello", "world"], messages.Select(m => m.Value.ToStringUtf8()));
        Assert.True(messages[0].Key.IsEmpty);
        Assert.Equal("plain.sub", Header(messages[0], "subject"));
        Assert.Equal("reply.here", Header(messages[0], "reply"));
        Assert.Equal("", Header(messages[1], "reply"));
        Assert.Equal(2, h.Attachment.Received);
        Assert.Equal(0, h.Attachment.InvalidEnvelopes);
    }

    [Fact]
    public async Task An_envelope_is_decoded_and_its_ack_is_published_to_the_ack_inbox()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("env", "env", partitions: 2);
        await using var acks = await h.SubscribeAsync("acks.env");

        var message = new Message
        {
            Key = ByteString.CopyFromUtf8("k"),
            Value = ByteString.CopyFromUtf8("v"),
            AckInbox = "acks.env",
            CorrelationId = "corr-1",
            AckPolicy = AckPolicy.Leader,
            Offset = -1,
            Headers = { ["h"] = ByteString.CopyFromUtf8("hv"), ["subject"] = ByteString.CopyFromUtf8("user value is overwritten") },
        };
        await h.PublishAsync("env.1", Envelope.EncodePublish(message), replyTo: "r");

        var ackMsg = await NatsBrokerHarness.NextAsync(acks);
        Assert.True(ackMsg.Data.AsSpan().StartsWith(Envelope.Magic));
        var ack = Envelope.DecodeAck(ackMsg.Data.AsSpan());
        Assert.Equal("env", ack.Stream);
        Assert.Equal("env.1", ack.PartitionSubject); // compatibility decision 5: the partition's own subject
        Assert.Equal("env.1", ack.MsgSubject);
        Assert.Equal(0, ack.Offset);
        Assert.Equal("acks.env", ack.AckInbox);
        Assert.Equal("corr-1", ack.CorrelationId);
        Assert.Equal(AckPolicy.Leader, ack.AckPolicy);
        Assert.Equal(Ack.Types.Error.Ok, ack.AckError);
        Assert.True(ack.ReceptionTimestamp > 0);
        Assert.True(ack.CommitTimestamp >= ack.ReceptionTimestamp);

        var stored = Assert.Single(await h.ReadAllAsync("env", 1, partition: 1));
        Assert.Equal("k", stored.Key.ToStringUtf8());
        Assert.Equal("v", stored.Value.ToStringUtf8());
        Assert.Equal("hv", Header(stored, "h"));
        Assert.Equal("env.1", Header(stored, "subject"));
        Assert.Equal("r", Header(stored, "reply"));
    }

    [Fact]
    public async Task An_OCC_expected_offset_mismatch_gives_an_error_ack_even_with_AckPolicy_NONE()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("occ", "occ", configure: r => r.OptimisticConcurrencyControl = new NullableBool { Value = true });
        await using var acks = await h.SubscribeAsync("acks.occ");

        Message Publish(long expected, AckPolicy policy) => new() { Value = ByteString.CopyFromUtf8("x"), AckInbox = "acks.occ", CorrelationId = "e" + expected, AckPolicy = policy, Offset = expected };

        await h.PublishAsync("occ", Envelope.EncodePublish(Publish(5, AckPolicy.None)));
        var error = Envelope.DecodeAck((await NatsBrokerHarness.NextAsync(acks)).Data.AsSpan());
        Assert.Equal(Ack.Types.Error.IncorrectOffset, error.AckError);
        Assert.Equal("e5", error.CorrelationId);

        await h.PublishAsync("occ", Envelope.EncodePublish(Publish(0, AckPolicy.Leader)));
        var ok = Envelope.DecodeAck((await NatsBrokerHarness.NextAsync(acks)).Data.AsSpan());
        Assert.Equal(Ack.Types.Error.Ok, ok.AckError);
        Assert.Equal(0, ok.Offset);

        // A plain payload carries no expectation (compatibility decision 3), so it appends at offset 1.
        await h.PublishAsync("occ", Utf8("plain"));
        await h.WaitForNewestOffsetAsync("occ", 1);
    }

    [Fact]
    public async Task A_damaged_envelope_is_counted_and_stored_as_a_plain_value_and_the_partition_keeps_working()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("bad", "bad");

        var payload = new Message { Value = ByteString.CopyFromUtf8("inside"), AckInbox = "acks.bad" }.ToByteArray();
        var damaged = new byte[Envelope.HeaderSizeWithCrc + payload.Length];
        Envelope.Magic.CopyTo(damaged);
        damaged[5] = Envelope.HeaderSizeWithCrc;
        damaged[6] = 0x01; // CRC present
        damaged[7] = 0x00; // Publish
        BinaryPrimitives.WriteUInt32BigEndian(damaged.AsSpan(8), Crc32Castagnoli(payload) ^ 0xFFFF); // a CRC, but not the right one
        payload.CopyTo(damaged.AsSpan(Envelope.HeaderSizeWithCrc));

        await h.PublishAsync("bad", damaged);
        await h.PublishAsync("bad", Utf8("after"));

        var messages = await h.ReadAllAsync("bad", 2);
        Assert.Equal(damaged, messages[0].Value.ToByteArray());
        Assert.True(messages[0].Key.IsEmpty);
        Assert.Equal("after", messages[1].Value.ToStringUtf8());
        Assert.Equal(1, h.Attachment.InvalidEnvelopes);
    }

    [Fact]
    public async Task Behaviour14_PublishToSubject_reaches_a_raw_NATS_subscriber_as_an_envelope()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await using var raw = await h.SubscribeAsync("foo.bar");

        await h.Broker.CallAsync("PublishToSubject", new PublishToSubjectRequest
        {
            Subject = "foo.bar",
            Value = ByteString.CopyFromUtf8("hello"),
            Key = ByteString.CopyFromUtf8("key"),
            AckPolicy = AckPolicy.None,
        }, PublishToSubjectResponse.Parser);

        var msg = await NatsBrokerHarness.NextAsync(raw);
        Assert.Equal(new byte[] { 0xB9, 0x0E, 0x43, 0xB4, 0x00, 0x08, 0x00, 0x00 }, msg.Data![..8]);
        var decoded = Envelope.DecodePublish(msg.Data.AsSpan());
        Assert.Equal("hello", decoded.Value.ToStringUtf8());
        Assert.Equal("key", decoded.Key.ToStringUtf8());
    }

    [Fact]
    public async Task A_gRPC_publish_reaches_every_stream_on_the_subject_and_raw_subscribers_and_is_acked_once()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("first", "shared");
        await h.CreateStreamAsync("second", "shared");
        await using var raw = await h.SubscribeAsync("shared");

        var ack = await h.Broker.PublishAsync("first", "via-grpc", key: "k");
        Assert.NotNull(ack);
        Assert.Equal("first", ack.Stream);

        var msg = await NatsBrokerHarness.NextAsync(raw);
        Assert.Equal("via-grpc", Envelope.DecodePublish(msg.Data.AsSpan()).Value.ToStringUtf8());
        var second = Assert.Single(await h.ReadAllAsync("second", 1));
        Assert.Equal("via-grpc", second.Value.ToStringUtf8());
        Assert.Equal("k", second.Key.ToStringUtf8());
        Assert.Single(await h.ReadAllAsync("first", 1));
        Assert.Equal(0, h.Attachment.Received); // echo is off: nothing came back through NATS to be stored twice
    }

    [Fact]
    public async Task Every_gRPC_publish_that_names_an_ack_inbox_also_acks_there_on_NATS()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("s", "s.subject");
        await using var acks = await h.SubscribeAsync("my.acks");
        PublishRequest Request(string correlationId, AckPolicy policy = AckPolicy.Leader) =>
            new() { Stream = "s", Value = ByteString.CopyFromUtf8(correlationId), AckInbox = "my.acks", CorrelationId = correlationId, AckPolicy = policy };
        async Task<Ack> NextAckAsync() => Envelope.DecodeAck((await NatsBrokerHarness.NextAsync(acks)).Data.AsSpan());

        var unary = await h.Broker.CallAsync("Publish", Request("unary"), PublishResponse.Parser);
        var onNats = await NextAckAsync();
        Assert.Equal(("s", 0L, "unary", "my.acks"), (onNats.Stream, onNats.Offset, onNats.CorrelationId, onNats.AckInbox));
        Assert.Equal(unary.Ack, onNats);

        await using (var call = h.Broker.Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser))
        {
            await call.WriteAsync(Request("pipelined"));
            Assert.True(await call.MoveNextAsync().AsTask().WaitAsync(CallTimeout));
            Assert.Equal(1, call.Current.Ack.Offset);
            Assert.Equal(call.Current.Ack, await NextAckAsync());
        }

        var subject = await h.Broker.CallAsync("PublishToSubject", new PublishToSubjectRequest { Subject = "s.subject", AckInbox = "my.acks", CorrelationId = "to-subject", AckPolicy = AckPolicy.Leader }, PublishToSubjectResponse.Parser);
        Assert.Equal(subject.Ack, await NextAckAsync());

        // AckPolicy NONE asks for no ack, on either side; the next ack on the inbox is the following publish's.
        await h.Broker.CallAsync("Publish", Request("none", AckPolicy.None), PublishResponse.Parser);
        await h.Broker.CallAsync("Publish", Request("last"), PublishResponse.Parser);
        Assert.Equal(("last", 4L), ((await NextAckAsync()).CorrelationId, (await h.Broker.PartitionMetadataAsync("s")).NewestOffset));
    }

    [Fact]
    public async Task Wildcard_streams_capture_matching_subjects()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("one-token", "wild.*");
        await h.CreateStreamAsync("any-depth", "wild.>");

        await h.PublishAsync("wild.a", Utf8("a"));
        await h.PublishAsync("wild.a.b", Utf8("ab"));
        await h.PublishAsync("other.a", Utf8("no"));

        Assert.Equal(["a", "ab"], (await h.ReadAllAsync("any-depth", 2)).Select(m => m.Value.ToStringUtf8()));
        var single = Assert.Single(await h.ReadAllAsync("one-token", 1));
        Assert.Equal("wild.a", Header(single, "subject"));
        Assert.Equal(0, (await h.Broker.PartitionMetadataAsync("one-token")).NewestOffset);
    }

    [Fact]
    public async Task Streams_in_one_group_share_a_subject_and_streams_without_a_group_each_get_everything()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("g1", "work", configure: r => r.Group = "workers");
        await h.CreateStreamAsync("g2", "work", configure: r => r.Group = "workers");
        await h.CreateStreamAsync("f1", "fan");
        await h.CreateStreamAsync("f2", "fan");

        const int count = 200;
        for (var i = 0; i < count; i++)
        {
            await h.Client.PublishAsync("work", Utf8("w" + i));
            await h.Client.PublishAsync("fan", Utf8("f" + i));
        }

        await h.Client.PingAsync();
        await WaitUntilAsync(
            async () => (await h.Broker.PartitionMetadataAsync("g1")).NewestOffset + (await h.Broker.PartitionMetadataAsync("g2")).NewestOffset + 2 == count,
            "the group to take every message once");
        Assert.True((await h.Broker.PartitionMetadataAsync("g1")).NewestOffset >= 0, "g1 got none of the group's messages");
        Assert.True((await h.Broker.PartitionMetadataAsync("g2")).NewestOffset >= 0, "g2 got none of the group's messages");
        await h.WaitForNewestOffsetAsync("f1", count - 1);
        await h.WaitForNewestOffsetAsync("f2", count - 1);
    }

    [Fact]
    public async Task A_paused_partition_loses_NATS_messages_and_captures_again_after_resume_and_a_deleted_stream_stops()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("p", "p");
        await h.PublishAsync("p", Utf8("before"));
        await h.WaitForNewestOffsetAsync("p", 0);

        await h.Broker.PauseAsync("p");
        await h.SyncBrokerAsync(); // the UNSUB is processed
        await h.PublishAsync("p", Utf8("lost"));

        await h.Broker.PublishAsync("p", "resumes"); // a gRPC publish resumes the partition, which subscribes again
        await h.SyncBrokerAsync();
        await h.PublishAsync("p", Utf8("after"));

        Assert.Equal(["before", "resumes", "after"], (await h.ReadAllAsync("p", 3)).Select(m => m.Value.ToStringUtf8()));

        await h.Broker.DeleteStreamAsync("p");
        await h.SyncBrokerAsync();
        var received = h.Attachment.Received;
        await h.PublishAsync("p", Utf8("nobody"));
        await h.CreateStreamAsync("marker", "marker");
        await h.PublishAsync("marker", Utf8("m"));
        await h.WaitForNewestOffsetAsync("marker", 0);
        Assert.Equal(received + 1, h.Attachment.Received); // only the marker: the deleted stream no longer subscribes
    }

    [Fact]
    public async Task A_readonly_partition_drops_NATS_messages()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("ro", "ro");
        await h.Broker.SetReadonlyAsync("ro", true);
        await h.PublishAsync("ro", Utf8("dropped"));
        await WaitUntilAsync(() => Task.FromResult(h.Attachment.Dropped == 1), "the readonly partition to drop the message");
        Assert.Equal(-1, (await h.Broker.PartitionMetadataAsync("ro")).NewestOffset);
    }

    [Fact]
    public void NatsIngest_keeps_plain_payloads_whole_without_key_or_expectation()
    {
        var item = NatsIngest.ToItem("s", "", Utf8("plain"), receiver: null, out var kind);
        Assert.Equal(NatsPayloadKind.Plain, kind);
        Assert.Null(item.Key);
        Assert.Equal(-1, item.ExpectedOffset);
        Assert.Equal("plain", Encoding.UTF8.GetString(item.Value!.Value.Span));
    }
}
