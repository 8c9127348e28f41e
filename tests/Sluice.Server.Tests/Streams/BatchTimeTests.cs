using System.Diagnostics;
using Sluice.Protocol.Api;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Streams;

/// <summary>
/// `batch.max.time`: the leader's write loop waits that long for more messages whenever its queue
/// runs dry before a batch holds `batch.max.messages`, and appends what came as one batch (one
/// timestamp for all of them).
/// </summary>
public sealed class BatchTimeTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task Publishes_arriving_within_batch_max_time_are_appended_as_one_batch()
    {
        await using var h = await StartAsync(o => o with { Batch = o.Batch with { MaxTime = Wait } });
        await h.CreateStreamAsync("foo", "foo");

        var clock = Stopwatch.StartNew();
        var acks = await Task.WhenAll(Enumerable.Range(0, 5).Select(i => h.PublishAsync("foo", "m" + i)));
        var elapsed = clock.Elapsed;

        Assert.Equal([0L, 1, 2, 3, 4], acks.Select(a => a!.Offset).Order());
        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "foo", StartPosition = StartPosition.Earliest });
        var messages = await ReadAsync(sub, 5);
        Assert.Single(messages.Select(m => m.Timestamp).Distinct()); // one append: one timestamp
        Assert.True(elapsed >= Wait * 0.9, $"the publishes took {elapsed.TotalMilliseconds:F0} ms: the leader did not wait for more");
    }

    [Fact]
    public async Task A_lone_publish_waits_batch_max_time_once_and_is_appended()
    {
        await using var h = await StartAsync(o => o with { Batch = o.Batch with { MaxTime = Wait } });
        await h.CreateStreamAsync("foo", "foo");

        var clock = Stopwatch.StartNew();
        var ack = await h.PublishAsync("foo", "x");
        var elapsed = clock.Elapsed;

        Assert.Equal(0, ack!.Offset);
        Assert.InRange(elapsed, Wait * 0.9, Wait * 10);
    }

    [Theory]
    [InlineData(false)] // batch.max.messages 1: every batch is full at once
    [InlineData(true)]  // an OCC stream appends one message at a time
    public async Task A_full_batch_is_appended_without_waiting(bool occ)
    {
        var longWait = TimeSpan.FromSeconds(30);
        await using var h = await StartAsync(o => o with { Batch = o.Batch with { MaxTime = longWait, MaxMessages = occ ? 1024 : 1 } });
        await h.CreateStreamAsync("foo", "foo", configure: r =>
        {
            if (occ)
            {
                r.OptimisticConcurrencyControl = new NullableBool { Value = true };
            }
        });

        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(i, (await h.PublishAsync("foo", "m" + i, expectedOffset: occ ? i : -1))!.Offset);
        }

        Assert.True(clock.Elapsed < longWait / 3, $"three publishes took {clock.Elapsed.TotalSeconds:F1} s");
    }
}
