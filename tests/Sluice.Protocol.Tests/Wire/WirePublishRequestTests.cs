using System.Buffers;
using FsCheck;
using FsCheck.Fluent;
using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Wire;
using Sluice.TestKit;

namespace Sluice.Protocol.Tests.Wire;

/// <summary>The broker's publish-request reader must read exactly what Google.Protobuf reads, and fail where it fails.</summary>
public class WirePublishRequestTests
{
    // proto.PublishRequest: fields 1-9; these are length-delimited, and partition (4) is a varint.
    private static readonly WireShape Shape = new(9, [1, 2, 3, 5, 6, 7], 4);

    [Fact]
    public void Random_requests_read_the_same_as_with_GoogleProtobuf()
    {
        Prop.ForAll<int>(seed => Check(RandomEncoding(new Random(seed)))).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Truncated_and_damaged_requests_fail_exactly_when_GoogleProtobuf_fails()
    {
        WireFuzz.TruncateAndDamage(RandomEncoding, bytes => Check(bytes), seed: 13, truncationRounds: 200, damageRounds: 3000);
    }

    [Fact]
    public void Later_fields_win_and_headers_merge_with_the_last_value_of_a_name_winning()
    {
        var first = new PublishRequest { Stream = "s1", Partition = 1, Value = ByteString.CopyFromUtf8("a"), CorrelationId = "c1" };
        first.Headers["h"] = ByteString.CopyFromUtf8("old");
        first.Headers["x"] = ByteString.CopyFromUtf8("keep");
        var second = new PublishRequest { Stream = "s2", ExpectedOffset = 7, CorrelationId = "c2" };
        second.Headers["h"] = ByteString.CopyFromUtf8("new");
        var bytes = first.ToByteArray().Concat(second.ToByteArray()).ToArray();

        var wire = WirePublishRequest.Parse(bytes);

        Assert.Equal("s2", wire.Stream);
        Assert.Equal(1, wire.Partition);
        Assert.Equal(7, wire.ExpectedOffset);
        Assert.Equal("a", System.Text.Encoding.UTF8.GetString(wire.Value.Span));
        Assert.Equal("c2", wire.CorrelationId);
        var headers = wire.GetHeaders();
        Assert.Equal(["h", "x"], headers.Keys);
        Assert.Equal("new", System.Text.Encoding.UTF8.GetString(headers["h"].Span));
        Assert.Equal(PublishRequest.Parser.ParseFrom(bytes), wire.ToRequest());
    }

    [Fact]
    public void String_fields_that_are_not_UTF8_are_refused_as_GoogleProtobuf_refuses_them()
    {
        var valid = WirePublishRequest.Parse(new PublishRequest { CorrelationId = "id-é" }.ToByteArray());
        byte[] badCorrelationId = [(7 << 3) | 2, 3, (byte)'a', 0xFF, (byte)'b'];
        byte[] badStream = [(3 << 3) | 2, 2, 0xC3, 0x28];
        byte[] badAckInbox = [(6 << 3) | 2, 1, 0x80];
        byte[] badHeaderName = [(5 << 3) | 2, 5, (1 << 3) | 2, 1, 0xFE, (2 << 3) | 2, 0];

        Assert.Equal("id-é"u8.ToArray(), valid.CorrelationIdUtf8.ToArray());
        foreach (var bad in new[] { badCorrelationId, badStream, badAckInbox, badHeaderName })
        {
            Assert.Throws<InvalidProtocolBufferException>(() => PublishRequest.Parser.ParseFrom(bad));
            var error = Assert.Throws<InvalidDataException>(() => WirePublishRequest.Parse(bad));
            Assert.Equal("String is invalid UTF-8.", error.Message);
        }

        // Header values are bytes: any bytes are fine there.
        byte[] binaryHeaderValue = [(5 << 3) | 2, 6, (1 << 3) | 2, 1, (byte)'k', (2 << 3) | 2, 1, 0xFF];
        Assert.Equal(new byte[] { 0xFF }, WirePublishRequest.Parse(binaryHeaderValue).GetHeaders()["k"].ToArray());
    }

    [Fact]
    public void Decode_reads_a_payload_split_over_segments()
    {
        var request = new PublishRequest { Stream = "orders", Key = ByteString.CopyFromUtf8("k"), Value = ByteString.CopyFrom(new byte[300]), AckPolicy = AckPolicy.All };
        var bytes = request.ToByteArray();
        var first = new Segment(bytes.AsMemory(0, 10));
        var last = first.Append(bytes.AsMemory(10));

        var wire = WirePublishRequest.Decode(new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length));

        Assert.Equal(request, wire.ToRequest());
        Assert.Equal(AckPolicy.All, wire.AckPolicy);
    }

    [Fact]
    public void Malformed_bytes_are_refused_as_invalid_data()
    {
        byte[] truncated = [(3 << 3) | 2, 5, (byte)'a'];

        Assert.ThrowsAny<InvalidProtocolBufferException>(() => PublishRequest.Parser.ParseFrom(truncated));
        var error = Assert.Throws<InvalidDataException>(() => WirePublishRequest.Parse(truncated));
        Assert.Contains("ended unexpectedly", error.Message, StringComparison.Ordinal);
    }

    private static bool Check(byte[] bytes)
    {
        WireFuzz.Agree(bytes, PublishRequest.Parser.ParseFrom, WirePublishRequest.Parse, Compare);
        return true;
    }

    private static void Compare(PublishRequest expected, WirePublishRequest wire)
    {
        Assert.Equal(expected.Stream, wire.Stream);
        Assert.Equal(expected.Partition, wire.Partition);
        Assert.Equal(expected.AckPolicy, wire.AckPolicy);
        Assert.Equal(expected.ExpectedOffset, wire.ExpectedOffset);
        Assert.Equal(expected.Key.ToByteArray(), wire.Key.ToArray());
        Assert.Equal(expected.Value.ToByteArray(), wire.Value.ToArray());
        Assert.Equal(expected.AckInbox, wire.AckInbox);
        Assert.Equal(expected.CorrelationId, wire.CorrelationId);
        Assert.Equal(System.Text.Encoding.UTF8.GetBytes(expected.CorrelationId), wire.CorrelationIdUtf8.ToArray());
        var headers = wire.GetHeaders();
        Assert.Equal(expected.Headers.Keys, headers.Keys);
        foreach (var (name, value) in expected.Headers)
        {
            Assert.Equal(value.ToByteArray(), headers[name].ToArray());
        }
    }

    /// <summary>A random PublishRequest, sometimes with unknown fields, repeated fields or odd wire types mixed in.</summary>
    private static byte[] RandomEncoding(Random random)
    {
        var request = new PublishRequest
        {
            Key = ByteString.CopyFrom(RandomData.Bytes(random, random.Next(3) == 0 ? 0 : 20)),
            Value = ByteString.CopyFrom(RandomData.Bytes(random, random.Next(3) == 0 ? 0 : 300)),
            Stream = RandomData.Text(random),
            Partition = random.Next(3) == 0 ? -random.Next(1, 5) : random.Next(100),
            AckInbox = RandomData.Text(random),
            CorrelationId = RandomData.Text(random),
            AckPolicy = (AckPolicy)random.Next(4),
            ExpectedOffset = random.Next(3) == 0 ? random.NextInt64(long.MinValue, long.MaxValue) : random.Next(-1, 1000),
        };
        for (var i = random.Next(4); i > 0; i--)
        {
            request.Headers[RandomData.Text(random)] = ByteString.CopyFrom(RandomData.Bytes(random, 10));
        }

        return WireFuzz.EncodeWithNoise(request, random, Shape);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}
