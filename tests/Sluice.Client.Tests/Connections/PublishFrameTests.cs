using Google.Protobuf;
using Sluice.Client.Connections;
using Sluice.TestKit;
using Api = Sluice.Protocol.Api;

namespace Sluice.Client.Tests.Connections;

/// <summary>A publish encoded by <see cref="PublishFrame"/> must parse, with Google.Protobuf, as the PublishRequest it stands for.</summary>
public class PublishFrameTests
{
    [Fact]
    public void Random_publishes_parse_as_the_expected_request()
    {
        var random = new Random(17);
        for (var round = 0; round < 2000; round++)
        {
            var key = RandomData.Bytes(random, random.Next(3) == 0 ? 0 : 40);
            var value = RandomData.Bytes(random, random.Next(2) == 0 ? 300 : 70_000);
            Dictionary<string, ReadOnlyMemory<byte>>? headers = random.Next(3) == 0 ? null : [];
            for (var i = random.Next(4); i > 0 && headers is not null; i--)
            {
                headers["h-é-" + random.Next(100)] = RandomData.Bytes(random, random.Next(2) == 0 ? 0 : 30);
            }

            var stream = random.Next(5) == 0 ? string.Empty : "stream→" + random.Next(100);
            var partition = random.Next(4) switch { 0 => 0, 1 => -random.Next(1, 5), _ => random.Next(1, 1_000_000) };
            var ackInbox = random.Next(2) == 0 ? string.Empty : "_INBOX." + random.Next(1000);
            var correlationId = random.Next(5) == 0 ? string.Empty : Guid.NewGuid().ToString("N");
            var ackPolicy = (Api.AckPolicy)random.Next(3);
            var expectedOffset = random.Next(3) switch { 0 => -1, 1 => 0, _ => random.NextInt64() };

            var frame = new PublishFrame(stream, partition, key, value, headers, ackInbox, correlationId, ackPolicy, expectedOffset);

            var expected = new Api.PublishRequest
            {
                Stream = stream,
                Partition = partition,
                Key = ByteString.CopyFrom(key),
                Value = ByteString.CopyFrom(value),
                AckInbox = ackInbox,
                CorrelationId = correlationId,
                AckPolicy = ackPolicy,
                ExpectedOffset = expectedOffset,
            };
            foreach (var (name, headerValue) in headers ?? [])
            {
                expected.Headers[name] = ByteString.CopyFrom(headerValue.Span);
            }

            Assert.Equal(expected, frame.ToRequest());
            var written = new byte[frame.CalculateSize()];
            frame.WriteTo(written);
            Assert.Equal(expected, Api.PublishRequest.Parser.ParseFrom(written));
            Assert.Equal((stream, partition, correlationId, ackPolicy), (frame.Stream, frame.Partition, frame.CorrelationId, frame.AckPolicy));
        }
    }

    [Fact]
    public void The_callers_buffers_can_be_reused_at_once()
    {
        var value = "first"u8.ToArray();
        var frame = new PublishFrame("s", 0, default, value, null, string.Empty, "c", Api.AckPolicy.Leader, -1);

        "XXXXX"u8.CopyTo(value);

        Assert.Equal("first", frame.ToRequest().Value.ToStringUtf8());
    }
}
