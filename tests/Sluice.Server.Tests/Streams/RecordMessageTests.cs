using System.Text;
using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Server.Streams;
using Sluice.Storage.Log;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Streams;

/// <summary>A record encoded by <see cref="RecordMessage"/> must read back, with Google.Protobuf, as the Message a subscriber expects.</summary>
public class RecordMessageTests
{
    [Fact]
    public void Random_records_read_back_as_the_expected_message()
    {
        var random = new Random(3);
        for (var round = 0; round < 2000; round++)
        {
            var stream = random.Next(4) == 0 ? string.Empty : "stream-é-" + random.Next(1000);
            var partition = random.Next(4) switch { 0 => 0, 1 => -random.Next(1, 9), _ => random.Next(1, 100_000) };
            var headers = new List<RecordHeader>();
            for (var i = random.Next(4); i > 0; i--)
            {
                headers.Add(new RecordHeader("h→" + random.Next(1_000_000), RandomData.Bytes(random, 40)));
            }

            if (random.Next(3) > 0)
            {
                headers.Add(new RecordHeader(PublishItem.SubjectHeader, Encoding.UTF8.GetBytes("orders." + random.Next(100))));
                headers.Add(new RecordHeader(PublishItem.ReplyHeader, random.Next(2) == 0 ? [] : Encoding.UTF8.GetBytes("_INBOX.x")));
            }

            var record = new LogRecord
            {
                Offset = random.Next(5) == 0 ? 0 : random.NextInt64(long.MinValue, long.MaxValue),
                Timestamp = random.Next(5) == 0 ? 0 : random.NextInt64(),
                Key = random.Next(3) == 0 ? null : RandomData.Bytes(random, 30),
                Value = random.Next(5) == 0 ? null : RandomData.Bytes(random, random.Next(2) == 0 ? 20 : 20_000),
                Headers = headers,
            };

            var encoded = Encode(new RecordMessage(Encoding.UTF8.GetBytes(stream), partition, record, record.Value));
            var message = Message.Parser.ParseFrom(encoded);

            Assert.Equal(Expected(stream, partition, record), message);
        }
    }

    [Fact]
    public void The_handshake_is_an_empty_message()
    {
        Assert.Empty(Encode(RecordMessage.Handshake));
    }

    [Fact]
    public void A_decrypted_value_replaces_the_stored_one()
    {
        var record = new LogRecord { Offset = 5, Value = "ciphertext"u8.ToArray(), Headers = [] };

        var message = Message.Parser.ParseFrom(Encode(new RecordMessage("s"u8.ToArray(), 1, record, "plain"u8.ToArray())));

        Assert.Equal("plain", message.Value.ToStringUtf8());
    }

    [Fact]
    public void A_subject_header_that_is_not_UTF8_still_gives_valid_string_fields()
    {
        byte[] bad = [(byte)'a', 0xFF, (byte)'b'];
        var record = new LogRecord { Offset = 1, Headers = [new RecordHeader(PublishItem.SubjectHeader, bad), new RecordHeader(PublishItem.ReplyHeader, bad)] };

        var encoded = Encode(new RecordMessage("s"u8.ToArray(), 0, record, null));
        var message = Message.Parser.ParseFrom(encoded);

        Assert.Equal("a\uFFFDb", message.Subject);
        Assert.Equal("a\uFFFDb", message.ReplySubject);
        Assert.Equal(bad, message.Headers[PublishItem.SubjectHeader].ToByteArray()); // the header keeps its bytes
        Assert.True(System.Text.Unicode.Utf8.IsValid(ProtoStringBytes(encoded, 7)));
    }

    /// <summary>The raw bytes of the first string field <paramref name="field"/> in an encoded message.</summary>
    private static byte[] ProtoStringBytes(byte[] encoded, int field)
    {
        var input = new CodedInputStream(encoded);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == field)
            {
                return input.ReadBytes().ToByteArray();
            }

            input.SkipLastField();
        }

        throw new InvalidOperationException($"no field {field}");
    }

    private static byte[] Encode(RecordMessage message)
    {
        var bytes = new byte[message.CalculateSize()];
        message.WriteTo(bytes);
        return bytes;
    }

    /// <summary>What a subscriber must see: the fields, the headers as stored, subject and reply from their headers.</summary>
    private static Message Expected(string stream, int partition, in LogRecord record)
    {
        var message = new Message
        {
            Offset = record.Offset,
            Timestamp = record.Timestamp,
            Stream = stream,
            Partition = partition,
            Key = ByteString.CopyFrom((record.Key ?? default).Span),
            Value = ByteString.CopyFrom((record.Value ?? default).Span),
        };
        foreach (var header in record.Headers!)
        {
            message.Headers[header.Name] = ByteString.CopyFrom(header.Value.Span);
            if (header.Name == PublishItem.SubjectHeader)
            {
                message.Subject = Encoding.UTF8.GetString(header.Value.Span);
            }
            else if (header.Name == PublishItem.ReplyHeader)
            {
                message.ReplySubject = Encoding.UTF8.GetString(header.Value.Span);
            }
        }

        return message;
    }
}
