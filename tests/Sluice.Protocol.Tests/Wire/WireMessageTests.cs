using FsCheck;
using FsCheck.Fluent;
using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Wire;

namespace Sluice.Protocol.Tests.Wire;

/// <summary>
/// The wire scanner must read exactly what Google.Protobuf reads: the same fields from any valid
/// encoding, and an error wherever Google.Protobuf refuses the bytes.
/// </summary>
public class WireMessageTests
{
    [Fact]
    public void Random_messages_read_the_same_as_with_GoogleProtobuf()
    {
        Prop.ForAll<int>(seed => Check(RandomEncoding(new Random(seed)))).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Every_truncation_fails_exactly_when_GoogleProtobuf_fails()
    {
        var random = new Random(7);
        for (var round = 0; round < 200; round++)
        {
            var bytes = RandomEncoding(random);
            for (var cut = 0; cut < bytes.Length; cut++)
            {
                Check(bytes[..cut]);
            }
        }
    }

    [Fact]
    public void Flipped_bytes_fail_exactly_when_GoogleProtobuf_fails()
    {
        var random = new Random(11);
        for (var round = 0; round < 3000; round++)
        {
            var bytes = RandomEncoding(random);
            if (bytes.Length == 0)
            {
                continue;
            }

            for (var flips = random.Next(1, 4); flips > 0; flips--)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            }

            Check(bytes);
        }
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
        Message expected;
        try
        {
            expected = Message.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException)
        {
            Assert.Throws<InvalidDataException>(() => WireMessage.Parse(bytes));
            return true;
        }

        var wire = WireMessage.Parse(bytes);
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

        return true;
    }

    /// <summary>A random Message, sometimes with unknown fields, repeated fields or odd wire types mixed in.</summary>
    private static byte[] RandomEncoding(Random random)
    {
        var message = new Message
        {
            Offset = random.Next(3) == 0 ? random.NextInt64(long.MinValue, long.MaxValue) : random.Next(1000),
            Timestamp = random.NextInt64(),
            Partition = random.Next(3) == 0 ? -random.Next(1, 5) : random.Next(100),
            Stream = RandomText(random),
            Subject = RandomText(random),
            ReplySubject = RandomText(random),
            AckInbox = RandomText(random),
            CorrelationId = RandomText(random),
            AckPolicy = (AckPolicy)random.Next(4),
            Key = ByteString.CopyFrom(RandomBytes(random, random.Next(3) == 0 ? 0 : 20)),
            Value = ByteString.CopyFrom(RandomBytes(random, random.Next(3) == 0 ? 0 : 300)),
        };
        for (var i = random.Next(4); i > 0; i--)
        {
            message.Headers[RandomText(random)] = ByteString.CopyFrom(RandomBytes(random, 10));
        }

        using var output = new MemoryStream();
        var coded = new CodedOutputStream(output);
        for (var part = random.Next(1, 3); part > 0; part--)
        {
            if (random.Next(2) == 0)
            {
                WriteUnknownField(coded, random);
            }

            message.WriteTo(coded);
        }

        if (random.Next(2) == 0)
        {
            WriteUnknownField(coded, random);
        }

        coded.Flush();
        return output.ToArray();
    }

    private static void WriteUnknownField(CodedOutputStream coded, Random random)
    {
        // Unknown field numbers, and known numbers with the wrong wire type (both are skipped).
        var field = random.Next(2) == 0 ? random.Next(13, 2000) : random.Next(1, 13);
        switch (random.Next(5))
        {
            case 0:
                coded.WriteTag(field, WireFormat.WireType.Varint);
                coded.WriteUInt64((ulong)random.NextInt64());
                break;
            case 1:
                coded.WriteTag(field, WireFormat.WireType.Fixed64);
                coded.WriteFixed64((ulong)random.NextInt64());
                break;
            case 2:
                coded.WriteTag(field, WireFormat.WireType.Fixed32);
                coded.WriteFixed32((uint)random.Next());
                break;
            case 3:
                coded.WriteTag(field, WireFormat.WireType.StartGroup);
                coded.WriteTag(field + 1, WireFormat.WireType.Varint);
                coded.WriteUInt64(5);
                coded.WriteTag(field, WireFormat.WireType.EndGroup);
                break;
            default:
                if (field is 2 or 3 or 5 or 7 or 8 or 9 or 10 or 11)
                {
                    field = 1; // a length-delimited field 1 (offset is a varint): skipped
                }

                coded.WriteTag(field, WireFormat.WireType.LengthDelimited);
                coded.WriteBytes(ByteString.CopyFrom(RandomBytes(random, 12)));
                break;
        }
    }

    private static string RandomText(Random random)
    {
        const string alphabet = "abcXYZ._-é→";
        var length = random.Next(3) == 0 ? 0 : random.Next(1, 12);
        var builder = new System.Text.StringBuilder();
        for (var i = 0; i < length; i++)
        {
            builder.Append(alphabet[random.Next(alphabet.Length)]);
        }

        return builder.ToString();
    }

    private static byte[] RandomBytes(Random random, int maxLength)
    {
        var bytes = new byte[maxLength == 0 ? 0 : random.Next(maxLength + 1)];
        random.NextBytes(bytes);
        return bytes;
    }
}
