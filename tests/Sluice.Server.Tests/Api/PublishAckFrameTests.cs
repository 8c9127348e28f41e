using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Server.Api;
using Sluice.Server.Streams;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Api;

/// <summary>The hand-encoded PublishAsync ack must parse, with Google.Protobuf, as the response built from the Ack object.</summary>
public sealed class PublishAckFrameTests
{
    [Fact]
    public async Task Random_commits_encode_the_same_response_as_the_ack_object()
    {
        await using var h = await BrokerHarness.StartAsync();
        await h.CreateStreamAsync("strœam", "orders.é", partitions: 3);
        Assert.True(h.Server.Broker.TryGetStream("strœam", out var stream));
        var random = new Random(21);
        for (var round = 0; round < 2000; round++)
        {
            Assert.True(stream.TryGetPartition(random.Next(3), out var partition));
            var correlationId = RandomData.Text(random);
            var item = new PublishItem
            {
                Headers = [],
                // Usually the partition's own subject (PublishAsync); sometimes another (NATS ingest).
                Subject = random.Next(4) == 0 ? "other." + RandomData.Text(random) : partition.Subject,
                AckInbox = random.Next(2) == 0 ? string.Empty : "_INBOX." + RandomData.Text(random),
                CorrelationId = random.Next(2) == 0 ? correlationId : null!,
                CorrelationIdUtf8 = System.Text.Encoding.UTF8.GetBytes(correlationId),
                AckPolicy = (AckPolicy)random.Next(1, 4),
            };
            var commit = new CommitInfo(
                partition,
                random.Next(3) == 0 ? 0 : random.NextInt64(long.MaxValue),
                random.NextInt64(),
                random.Next(5) == 0 ? 0 : random.NextInt64());

            var frame = new PublishAckFrame(item, commit);

            var expected = new PublishResponse { Ack = partition.NewAck(item, commit), CorrelationId = correlationId };
            Assert.Equal(correlationId, expected.Ack.CorrelationId);
            Assert.Equal(expected, PublishResponse.Parser.ParseFrom(GrpcFrame.Serialize(frame)));
        }
    }

    [Fact]
    public async Task An_ack_of_a_message_without_fields_still_carries_an_ack()
    {
        await using var h = await BrokerHarness.StartAsync();
        await h.CreateStreamAsync("s", "s");
        Assert.True(h.Server.Broker.TryGetStream("s", out var stream));
        Assert.True(stream.TryGetPartition(0, out var partition));
        var item = new PublishItem { Headers = [], Subject = partition.Subject };

        var response = new PublishAckFrame(item, new CommitInfo(partition, 0, 0, 0)).ToResponse();

        Assert.NotNull(response.Ack);
        Assert.Equal("s", response.Ack.Stream);
        Assert.Equal(0, response.Ack.Offset);
        Assert.Equal(string.Empty, response.CorrelationId);
    }
}
