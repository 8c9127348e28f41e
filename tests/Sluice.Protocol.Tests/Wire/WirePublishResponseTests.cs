using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Wire;

namespace Sluice.Protocol.Tests.Wire;

/// <summary>The ack reader must match a response exactly as a full Google.Protobuf parse would.</summary>
public class WirePublishResponseTests
{
    [Fact]
    public void Random_responses_match_the_correlation_id_and_ack_that_GoogleProtobuf_reads()
    {
        var random = new Random(5);
        for (var round = 0; round < 3000; round++)
        {
            Check(RandomEncoding(random));
        }
    }

    [Fact]
    public void Truncated_and_damaged_responses_fail_exactly_when_GoogleProtobuf_fails()
    {
        var random = new Random(9);
        for (var round = 0; round < 1000; round++)
        {
            var bytes = RandomEncoding(random);
            for (var cut = 0; cut < bytes.Length; cut += 1 + random.Next(3))
            {
                Check(bytes[..cut]);
            }

            if (bytes.Length > 0)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                Check(bytes);
            }
        }
    }

    [Fact]
    public void The_ack_correlation_id_wins_over_the_responses_and_an_empty_one_falls_back()
    {
        var both = new PublishResponse { CorrelationId = "outer", Ack = new Ack { CorrelationId = "inner", Offset = 4 } };
        var emptyAckId = new PublishResponse { CorrelationId = "outer", Ack = new Ack { Offset = 4 } };

        Assert.Equal("inner", Id(WirePublishResponse.Parse(both.ToByteArray())));
        Assert.Equal("outer", Id(WirePublishResponse.Parse(emptyAckId.ToByteArray())));
        Assert.Equal(4, WirePublishResponse.Parse(both.ToByteArray()).ParseAck()!.Offset);
    }

    [Fact]
    public void An_async_error_or_a_repeated_ack_is_left_to_the_full_parser()
    {
        var error = new PublishResponse { CorrelationId = "c", AsyncError = new PublishAsyncError { Code = PublishAsyncError.Types.Code.NotFound, Message = "no" } };
        var twice = new PublishResponse { Ack = new Ack { Offset = 1 } }.ToByteArray()
            .Concat(new PublishResponse { Ack = new Ack { Stream = "s" } }.ToByteArray()).ToArray();

        Assert.False(WirePublishResponse.Parse(error.ToByteArray()).IsSimple);
        var merged = WirePublishResponse.Parse(twice);
        Assert.False(merged.IsSimple);
        Assert.Equal(new Ack { Offset = 1, Stream = "s" }, merged.ToResponse().Ack);
    }

    private static void Check(byte[] bytes)
    {
        WireFuzz.Agree(bytes, PublishResponse.Parser.ParseFrom, WirePublishResponse.Parse, Compare);
    }

    private static void Compare(PublishResponse expected, WirePublishResponse wire)
    {
        Assert.Equal(expected, wire.ToResponse());
        if (!wire.IsSimple)
        {
            return;
        }

        Assert.Null(expected.AsyncError);
        Assert.Equal(expected.Ack is not null, wire.HasAck);
        Assert.Equal(expected.Ack, wire.ParseAck());
        var expectedId = string.IsNullOrEmpty(expected.Ack?.CorrelationId) ? expected.CorrelationId : expected.Ack.CorrelationId;
        Assert.Equal(expectedId, Id(wire));
    }

    private static string Id(WirePublishResponse response) => System.Text.Encoding.UTF8.GetString(response.CorrelationId);

    private static byte[] RandomEncoding(Random random)
    {
        var response = new PublishResponse();
        if (random.Next(3) > 0)
        {
            response.Ack = new Ack
            {
                Stream = random.Next(2) == 0 ? string.Empty : "stream" + random.Next(9),
                PartitionSubject = "subj",
                MsgSubject = "subj." + random.Next(9),
                Offset = random.NextInt64(),
                AckInbox = random.Next(2) == 0 ? string.Empty : "_INBOX." + random.Next(99),
                CorrelationId = random.Next(3) == 0 ? string.Empty : Guid.NewGuid().ToString("N")[..random.Next(1, 32)],
                AckPolicy = (AckPolicy)random.Next(3),
                ReceptionTimestamp = random.NextInt64(),
                CommitTimestamp = random.NextInt64(),
            };
        }

        if (random.Next(8) == 0)
        {
            response.AsyncError = new PublishAsyncError { Code = (PublishAsyncError.Types.Code)random.Next(7), Message = "e" };
        }

        if (random.Next(2) == 0)
        {
            response.CorrelationId = "corr-" + random.Next(1000);
        }

        var bytes = response.ToByteArray();
        if (random.Next(4) == 0)
        {
            // an unknown field (number 15, varint) the reader must skip
            bytes = [.. bytes, 15 << 3, (byte)random.Next(128)];
        }

        return bytes;
    }
}
