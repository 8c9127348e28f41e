using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Streams;

/// <summary>
/// Min ISR on one server, whose ISR is itself: as in Liftbridge, a batch holding an AckPolicy ALL
/// message is not committed while the ISR is below the minimum (no ALL ack, the HW stays), and
/// LEADER acks still come; a later batch without ALL messages commits through the RF=1 fast path.
/// </summary>
public sealed class MinIsrTests
{
    [Theory]
    [InlineData(true)]  // the stream's own minIsr
    [InlineData(false)] // clustering.min.insync.replicas
    public async Task Messages_published_with_ack_policy_all_are_not_committed_below_the_minimum(bool perStream)
    {
        await using var h = await StartAsync(o => perStream ? o : o with { Clustering = o.Clustering with { MinInsyncReplicas = 2 } });
        await h.CreateStreamAsync("isr", "isr", configure: r =>
        {
            if (perStream)
            {
                r.MinIsr = new NullableInt32 { Value = 2 };
            }
        });

        var all = new PublishRequest { Stream = "isr", Value = Google.Protobuf.ByteString.CopyFromUtf8("a"), AckPolicy = AckPolicy.All };
        await ThrowsGrpcAsync(GrpcStatusCode.DeadlineExceeded, () => h.CallAsync("Publish", all, PublishResponse.Parser, TimeSpan.FromMilliseconds(500)));
        var metadata = await h.PartitionMetadataAsync("isr");
        Assert.Equal((-1L, 0L), (metadata.HighWatermark, metadata.NewestOffset)); // written, not committed

        Assert.Equal(1, (await h.PublishAsync("isr", "b", policy: AckPolicy.Leader))!.Offset);
        await WaitUntilAsync(async () => (await h.PartitionMetadataAsync("isr")).HighWatermark == 1, "the LEADER batch committed both messages");
    }

    [Fact]
    public async Task A_minimum_of_one_commits_ack_policy_all_at_once()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("isr", "isr", configure: r => r.MinIsr = new NullableInt32 { Value = 1 });
        Assert.Equal(0, (await h.PublishAsync("isr", "a", policy: AckPolicy.All))!.Offset);
    }
}
