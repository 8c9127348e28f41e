using Sluice.Protocol.Api;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Streams;

public sealed class RetentionTests
{
    private static async Task<long> FirstOffsetAsync(BrokerHarness h, string stream)
    {
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = stream, StartPosition = StartPosition.Earliest });
        return (await ReadAsync(sub, 1))[0].Offset;
    }

    private static Task<BrokerHarness> OneMessagePerSegmentAsync() =>
        StartAsync(o => o with { Batch = o.Batch with { MaxMessages = 1 } });

    private static void TinySegments(CreateStreamRequest r)
    {
        r.SegmentMaxBytes = new NullableInt64 { Value = 1 };
        r.CleanerInterval = new NullableInt64 { Value = 20 };
    }

    [Fact]
    public async Task Behaviour17_cleaner_drops_old_segments_and_an_old_start_offset_begins_at_the_oldest()
    {
        await using var h = await OneMessagePerSegmentAsync();
        await h.CreateStreamAsync("foo", "foo", configure: r =>
        {
            TinySegments(r);
            r.RetentionMaxBytes = new NullableInt64 { Value = 1 };
        });
        await h.PublishManyAsync("foo", 2);
        await WaitUntilAsync(async () => await FirstOffsetAsync(h, "foo") == 1, "retention removed offset 0");
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Offset, StartOffset = 0 });
        Assert.Equal(1, (await ReadAsync(sub, 1))[0].Offset);
    }

    [Theory]
    [InlineData("bytes", 9)]
    [InlineData("messages", 5)]
    [InlineData("age", 9)]
    public async Task Behaviour18_retention_by_bytes_messages_and_age(string limit, long expectedFirst)
    {
        await using var h = await OneMessagePerSegmentAsync();
        await h.CreateStreamAsync("foo", "foo", configure: r =>
        {
            TinySegments(r);
            switch (limit)
            {
                case "bytes":
                    r.RetentionMaxBytes = new NullableInt64 { Value = 100 };
                    break;
                case "messages":
                    r.RetentionMaxMessages = new NullableInt64 { Value = 5 };
                    break;
                default:
                    r.RetentionMaxAge = new NullableInt64 { Value = 1 };
                    r.SegmentMaxAge = new NullableInt64 { Value = 3_600_000 }; // only retention acts, no age-based rolls
                    break;
            }
        });
        await h.PublishManyAsync("foo", 10);
        await WaitUntilAsync(async () => await FirstOffsetAsync(h, "foo") == expectedFirst, $"retention by {limit} kept from offset {expectedFirst}");
    }

    [Fact]
    public async Task Compaction_keeps_the_latest_record_per_key()
    {
        await using var h = await OneMessagePerSegmentAsync();
        await h.CreateStreamAsync("foo", "foo", configure: r =>
        {
            TinySegments(r);
            r.CompactEnabled = new NullableBool { Value = true };
        });
        foreach (var key in new[] { "a", "b", "a", "a", "b", "c" })
        {
            await h.PublishAsync("foo", "v-" + key, key: key);
        }

        await WaitUntilAsync(
            async () =>
            {
                await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Earliest, StopPosition = StopPosition.StopLatest });
                var (messages, _) = await ReadToEndAsync(sub);
                return messages.Select(m => m.Offset).SequenceEqual([3L, 4, 5]);
            },
            "compaction left offsets 3 (a), 4 (b), 5 (c)");
    }
}
