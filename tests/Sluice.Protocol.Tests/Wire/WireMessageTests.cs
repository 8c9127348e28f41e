using FsCheck;
using FsCheck.Fluent;
using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Wire;
using Sluice.TestKit;

namespace Sluice.Protocol.Tests.Wire;

/// <summary>
/// The wire scanner must read exactly what Google.Protobuf reads: the same fields from any valid
/// encoding, and an error wherever Google.Protobuf refuses the bytes.
/// </summary>
public class WireMessageTests
{
    // proto.Message: fields 1-12; these are length-delimited, and offset (1) is a varint.
    private static readonly WireShape Shape = new(12, [2, 3, 5, 7, 8, 9, 10, 11], 1);

    [Fact]
    public void Random_messages_read_the_same_as_with_GoogleProtobuf()
    {
        Prop.ForAll<int>(seed => Check(RandomEncoding(new Random(seed)))).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Truncated_and_damaged_messages_fail_exactly_when_GoogleProtobuf_fails()
    {
        WireFuzz.TruncateAndDamage(RandomEncoding, bytes => Check(bytes), seed: 7, truncationRounds: 200, damageRounds: 3000);
    }

    [Theory]
    [InlineData(new byte[] { 0x00 }, "invalid tag")]                         // tag zero
    [InlineData(new byte[] { 0x07 }, "invalid tag")]                         // field number zero
    [InlineData(new byte[] { 0x0F, 0x00 }, "invalid wire type")]             // wire type 7
    [InlineData(new byte[] { 0x1A, 0x05, 0x01 }, "ended unexpectedly")]      // value says 5 bytes, 1 follows
    [InlineData(new byte[] { 0x08, 0xFF, 0xFF }, "ended unexpectedly")]      // varint cut short
    [InlineData(new byte[] { 0x0C }, "end-group tag without")]               // end group at top level
    [InlineData(new byte[] { 0x0B, 0x08, 0x01 }, "ended unexpectedly")]      // group never closed
    [InlineData(new byte[] { 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 }, "malformed varint")]
    [InlineData(new byte[] { 0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F }, "negative length")]
    public void Malformed_bytes_are_refused_with_a_message_that_says_why(byte[] bytes, string reason)
    {
        Assert.ThrowsAny<InvalidProtocolBufferException>(() => Message.Parser.ParseFrom(bytes));
        var error = Assert.Throws<InvalidDataException>(() => WireMessage.Parse(bytes));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Later_fields_win_and_header_entries_merge_with_the_last_value_of_a_name_winning()
    {
        var first = new Message { Offset = 1, Value = ByteString.CopyFromUtf8("a"), Stream = "s1" };
        first.Headers["h"] = ByteString.CopyFromUtf8("old");
        first.Headers["x"] = ByteString.CopyFromUtf8("keep");
        var second = new Message { Offset = 2, Value = ByteString.CopyFromUtf8("b"), Stream = "s2" };
        second.Headers["h"] = ByteString.CopyFromUtf8("new");
        var bytes = first.ToByteArray().Concat(second.ToByteArray()).ToArray();

        var wire = WireMessage.Parse(bytes);

        Assert.Equal(2, wire.Offset);
        Assert.Equal("b", System.Text.Encoding.UTF8.GetString(wire.Value.Span));
        Assert.Equal("s2", wire.GetStream());
        var headers = wire.GetHeaders();
        Assert.Equal(2, headers.Count);
        Assert.Equal("new", System.Text.Encoding.UTF8.GetString(headers["h"].Span));
        Assert.Equal("keep", System.Text.Encoding.UTF8.GetString(headers["x"].Span));
        Assert.Equal(Message.Parser.ParseFrom(bytes), wire.ToMessage());
    }

    [Fact]
    public void Bytes_fields_view_the_buffer_at_the_given_start()
    {
        var message = new Message { Key = ByteString.CopyFromUtf8("key"), Value = ByteString.CopyFromUtf8("value") };
        var encoded = message.ToByteArray();
        var buffer = new byte[encoded.Length + 10];
        encoded.CopyTo(buffer, 7);

        var wire = WireMessage.Parse(buffer, 7, encoded.Length);

        Assert.Equal("key", System.Text.Encoding.UTF8.GetString(wire.Key.Span));
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(wire.Value, out var segment));
        Assert.Same(buffer, segment.Array);
        Assert.Equal("value", System.Text.Encoding.UTF8.GetString(wire.Value.Span));
    }

    /// <summary>Google.Protobuf and the scanner agree: both refuse <paramref name="bytes"/>, or both read the same fields.</summary>
    private static bool Check(byte[] bytes)
    {
        WireFuzz.Agree(bytes, Message.Parser.ParseFrom, WireMessage.Parse, Compare);
        return true;
    }

    private static void Compare(Message expected, WireMessage wire)
    {
        Assert.Equal(expected.Offset, wire.Offset);
        Assert.Equal(expected.Timestamp, wire.Timestamp);
        Assert.Equal(expected.Partition, wire.Partition);
        Assert.Equal((int)expected.AckPolicy, wire.AckPolicy);
        Assert.Equal(expected.Key.ToByteArray(), wire.Key.ToArray());
        Assert.Equal(expected.Value.ToByteArray(), wire.Value.ToArray());
        Assert.Equal(expected.Value.IsEmpty, wire.ValueIsEmpty);
        Assert.Equal(expected.Stream, wire.GetStream());
        Assert.Equal(expected.Subject, wire.GetSubject());
        Assert.Equal(expected.ReplySubject, wire.GetReplySubject());
        Assert.Equal(expected.AckInbox, wire.GetAckInbox());
        Assert.Equal(expected.CorrelationId, wire.GetCorrelationId());
        var headers = wire.GetHeaders();
        Assert.Equal(expected.Headers.Count, headers.Count);
        foreach (var (name, value) in expected.Headers)
        {
            Assert.Equal(value.ToByteArray(), headers[name].ToArray());
        }
    }

    /// <summary>A random Message, sometimes with unknown fields, repeated fields or odd wire types mixed in.</summary>
    private static byte[] RandomEncoding(Random random)
    {
        var message = new Message
        {
            Offset = random.Next(3) == 0 ? random.NextInt64(long.MinValue, long.MaxValue) : random.Next(1000),
            Timestamp = random.NextInt64(),
            Partition = random.Next(3) == 0 ? -random.Next(1, 5) : random.Next(100),
            Stream = RandomData.Text(random),
            Subject = RandomData.Text(random),
            ReplySubject = RandomData.Text(random),
            AckInbox = RandomData.Text(random),
            CorrelationId = RandomData.Text(random),
            AckPolicy = (AckPolicy)random.Next(4),
            Key = ByteString.CopyFrom(RandomData.Bytes(random, random.Next(3) == 0 ? 0 : 20)),
            Value = ByteString.CopyFrom(RandomData.Bytes(random, random.Next(3) == 0 ? 0 : 300)),
        };
        for (var i = random.Next(4); i > 0; i--)
        {
            message.Headers[RandomData.Text(random)] = ByteString.CopyFrom(RandomData.Bytes(random, 10));
        }

        return WireFuzz.EncodeWithNoise(message, random, Shape);
    }

}
