using System.Collections.Concurrent;
using Sluice.Protocol.Api;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Api;

/// <summary>The whole protocol as go-liftbridge's consumer drives it (<see cref="GroupConsumerLoop"/>), on one node.</summary>
public sealed class GroupConsumerLoopTests
{
    [Fact]
    public async Task Three_consumers_share_six_partitions_one_each_at_a_time_and_a_killed_one_loses_no_message()
    {
        await using var h = await StartAsync(o => o with { Groups = o.Groups with { ConsumerTimeout = TimeSpan.FromSeconds(3) } });
        await h.CreateStreamAsync("s", "s", partitions: 6);
        var processed = new ConcurrentDictionary<(int Partition, long Offset), ConcurrentBag<string>>();
        void Handle(string consumer, Message m) => processed.GetOrAdd((m.Partition, m.Offset), _ => []).Add(consumer);

        var interval = TimeSpan.FromMilliseconds(1200); // go-liftbridge's default: 0.4 x the consumer timeout
        var consumers = new[] { "c1", "c2", "c3" }.Select(id => new GroupConsumerLoop(h, "g", id, ["s"], interval, Handle)).ToList();
        try
        {
            foreach (var c in consumers)
            {
                await c.StartAsync();
            }

            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!consumers.All(c => c.Reading.Count == 2) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            Assert.True(consumers.All(c => c.Reading.Count == 2), string.Join("; ", consumers.Select(c => c.Step + " " + c.Reading.Count + " " + string.Join(",", c.Reading) + " " + string.Join(",", c.Errors))));

            // Phase 1: every partition is read by exactly one member.
            for (var p = 0; p < 6; p++)
            {
                await h.PublishManyAsync("s", 10, partition: p, prefix: "a");
            }

            await WaitUntilAsync(() => Task.FromResult(processed.Count == 60), "the first 60 messages are processed", TimeSpan.FromSeconds(30));
            for (var p = 0; p < 6; p++)
            {
                var readers = processed.Where(e => e.Key.Partition == p).SelectMany(e => e.Value).Distinct().ToList();
                Assert.Single(readers);
            }

            Assert.All(processed.Values, v => Assert.Single(v));

            // Phase 2: c3 crashes (no leave); its partitions move within the timeout and nothing is skipped.
            await consumers[2].KillAsync();
            for (var p = 0; p < 6; p++)
            {
                await h.PublishManyAsync("s", 10, partition: p, prefix: "b");
            }

            await WaitUntilAsync(() => Task.FromResult(processed.Count == 120), "all 120 messages are processed", TimeSpan.FromSeconds(30));
            Assert.All(Enumerable.Range(0, 6), p => Assert.Equal(20, processed.Keys.Count(k => k.Partition == p)));
            Assert.Equal(6, consumers[0].Reading.Count + consumers[1].Reading.Count);
            // The only errors: a subscription started with the epoch a join or the expiry had just ended (refused, then
            // started again by the next fetch with the new epoch).
            Assert.All(consumers.SelectMany(c => c.Errors), e => Assert.Contains("is not the group's current epoch", e, StringComparison.Ordinal));
        }
        finally
        {
            foreach (var c in consumers)
            {
                await c.DisposeAsync();
            }
        }
    }
}
