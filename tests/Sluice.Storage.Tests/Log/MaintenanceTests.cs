using Sluice.Storage.Log;
using Sluice.TestKit;
using static Sluice.Storage.Tests.Log.LogTestKit;

namespace Sluice.Storage.Tests.Log;

public class MaintenanceTests
{
    private static CommitLogOptions OnePerSegment => Small(1);

    [Fact]
    public void Segments_roll_by_size_and_never_split_a_batch()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path, Small(1000));
        log.Append(Enumerable.Range(0, 50).Select(i => Rec($"value-{i}")).ToArray());
        Assert.Equal(1, log.SegmentCount);
        log.Append([Rec("next")]);
        Assert.Equal(2, log.SegmentCount);
        Assert.True(File.Exists(Path.Combine(dir.Path, "00000000000000000050.log")));
    }

    [Fact]
    public void Segments_roll_by_age()
    {
        using var dir = new TempDirectory();
        var clock = new ManualTimeProvider();
        using var log = CommitLog.Open(dir.Path, Small(1 << 20) with { SegmentMaxAge = TimeSpan.FromMinutes(5), TimeProvider = clock });
        AppendValues(log, 3);
        clock.Advance(TimeSpan.FromMinutes(4));
        log.Append([Rec("still young")]);
        Assert.Equal(1, log.SegmentCount);
        clock.Advance(TimeSpan.FromMinutes(2));
        log.Append([Rec("old now")]);
        Assert.Equal(2, log.SegmentCount);
    }

    [Fact]
    public void Retention_by_bytes_keeps_the_active_segment_behaviour_17()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path, OnePerSegment with { RetentionMaxBytes = 1 });
        AppendValues(log, 2);
        Assert.Equal(1, log.EnforceRetention());
        Assert.Equal(1, log.OldestOffset);
        Assert.Equal(1, ReadAll(log)[0].Offset);
    }

    [Theory]
    [InlineData(100, 0, 0, 9)]
    [InlineData(0, 5, 0, 5)]
    [InlineData(0, 0, 1, 9)]
    public void Retention_matches_behaviour_18(long maxBytes, long maxMessages, long maxAgeNanos, long expectedOldest)
    {
        using var dir = new TempDirectory();
        var clock = new ManualTimeProvider();
        using var log = CommitLog.Open(dir.Path, OnePerSegment with
        {
            RetentionMaxBytes = maxBytes,
            RetentionMaxMessages = maxMessages,
            RetentionMaxAge = TimeSpan.FromTicks(Math.Max(1, maxAgeNanos / 100)) * (maxAgeNanos > 0 ? 1 : 0),
            TimeProvider = clock,
        });
        for (var i = 0; i < 10; i++)
        {
            log.Append([Rec($"m{i}", timestamp: clock.NowNanos)]);
        }

        clock.Advance(TimeSpan.FromSeconds(1));
        log.EnforceRetention();
        Assert.Equal(expectedOldest, log.OldestOffset);
        using var batch = log.Read(0, 1 << 20);
        Assert.Equal(expectedOldest, batch[0].Offset);
    }

    [Fact]
    public void Next_offset_never_goes_backwards_when_everything_expires()
    {
        using var dir = new TempDirectory();
        var clock = new ManualTimeProvider();
        var options = OnePerSegment with { RetentionMaxAge = TimeSpan.FromHours(1), SegmentMaxAge = TimeSpan.FromHours(1), TimeProvider = clock };
        using (var log = CommitLog.Open(dir.Path, options))
        {
            for (var i = 0; i < 5; i++)
            {
                log.Append([Rec($"m{i}", timestamp: clock.NowNanos)]);
            }

            clock.Advance(TimeSpan.FromHours(2));
            Assert.Equal(5, log.EnforceRetention());
            Assert.Equal(-1, log.OldestOffset);
            Assert.Equal(4, log.NewestOffset);
        }

        using (var log = CommitLog.Open(dir.Path, options))
        {
            Assert.Equal(4, log.NewestOffset);
            Assert.Equal(-1, log.OldestOffset);
            Assert.Equal(5, log.Append([Rec("after")]));
            using var batch = log.Read(0, 100);
            Assert.Equal(5, batch[0].Offset);
        }
    }

    private static readonly string[] Keys = ["foo", "bar", "foo", "foo", "bar", "baz", "baz", "qux", "foo", "baz"];

    [Theory]
    [InlineData(9, new long[] { 4, 7, 8, 9 })]
    [InlineData(5, new long[] { 3, 4, 5, 6, 7, 8, 9 })]
    public void Compaction_keeps_the_latest_record_per_key_behaviour_41(long highWatermark, long[] expected)
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path, OnePerSegment);
        for (var i = 0; i < Keys.Length; i++)
        {
            log.Append([Rec($"v{i}", Keys[i])]);
        }

        log.SetHighWatermark(highWatermark);
        log.Compact();
        Assert.Equal(expected, ReadAll(log).Select(r => r.Offset));
        Assert.Equal(9, log.NewestOffset);
        Assert.Equal(10, log.Append([Rec("after", "foo")]));
    }

    [Fact]
    public void Compaction_keeps_keyless_records_survives_reopen_and_readers_continue_across_it()
    {
        using var dir = new TempDirectory();
        var options = Small(600);
        using (var log = CommitLog.Open(dir.Path, options))
        {
            for (var i = 0; i < 200; i++)
            {
                log.Append([Rec($"v{i}", i % 10 == 0 ? null : $"k{i % 7}")]);
            }

            log.SetHighWatermark(log.NewestOffset);
            using var before = log.Read(0, 300);
            var removed = log.Compact();
            Assert.True(removed > 100);
            var all = ReadAll(log, before.NextOffset);
            Assert.All(all, r => Assert.Equal($"v{r.Offset}", r.Value));
            Assert.Equal(0, log.Compact());
        }

        using (var log = CommitLog.Open(dir.Path, options))
        {
            var all = ReadAll(log);
            Assert.Equal(20, all.Count(r => r.Key is null));
            var active = log.Segments[^1].BaseOffset;
            foreach (var group in all.Where(r => r.Key is not null && r.Offset < active).GroupBy(r => r.Key))
            {
                Assert.Single(group);
            }

            Assert.Equal(199, log.NewestOffset);
        }
    }

    [Fact]
    public void Truncation_removes_the_tail_and_offsets_continue_from_it()
    {
        using var dir = new TempDirectory();
        using (var log = CommitLog.Open(dir.Path, Small(500)))
        {
            AppendValues(log, 100);
            log.SetHighWatermark(80);
            log.Truncate(42);
            Assert.Equal(41, log.NewestOffset);
            Assert.Equal(41, log.HighWatermark);
            Assert.Equal(42, log.Append([Rec("new42")]));
            log.Truncate(1000);
            Assert.Equal(42, log.NewestOffset);
        }

        using (var log = CommitLog.Open(dir.Path, Small(500)))
        {
            var all = ReadAll(log);
            Assert.Equal(43, all.Count);
            Assert.Equal("new42", all[^1].Value);
            Assert.Equal("v41", all[^2].Value);
            log.Truncate(0);
            Assert.Equal(-1, log.NewestOffset);
            Assert.Empty(ReadAll(log));
            Assert.Equal(0, log.Append([Rec("fresh")]));
        }
    }

    [Fact]
    public void High_watermark_persists_across_reopen()
    {
        using var dir = new TempDirectory();
        using (var log = CommitLog.Open(dir.Path))
        {
            Assert.Equal(-1, log.HighWatermark);
            AppendValues(log, 5);
            log.SetHighWatermark(3);
        }

        using (var log = CommitLog.Open(dir.Path))
        {
            Assert.Equal(3, log.HighWatermark);
        }

        File.WriteAllText(Path.Combine(dir.Path, "high-watermark"), "garbage");
        using (var log = CommitLog.Open(dir.Path))
        {
            Assert.Equal(-1, log.HighWatermark); // a damaged checkpoint under-reports, it never invents commits
        }
    }

    [Fact]
    public void Leader_epoch_cache_follows_liftbridge_semantics_and_persists()
    {
        using var dir = new TempDirectory();
        using (var log = CommitLog.Open(dir.Path))
        {
            log.NewLeaderEpoch(1);
            Assert.Equal([(1L, -1L)], log.LeaderEpochs);
            log.Append([Rec("a", epoch: 1), Rec("b", epoch: 1)]);
            log.NewLeaderEpoch(3);
            log.Append([Rec("c", epoch: 3)]);
            log.Append([Rec("d", epoch: 4)]);
            log.NewLeaderEpoch(2); // ignored: not newer
            Assert.Equal([(1L, -1L), (3L, 1L), (4L, 3L)], log.LeaderEpochs);
            Assert.Equal(1, log.LastOffsetForLeaderEpoch(1));
            Assert.Equal(1, log.LastOffsetForLeaderEpoch(2));
            Assert.Equal(3, log.LastOffsetForLeaderEpoch(3));
            Assert.Equal(3, log.LastOffsetForLeaderEpoch(4));
            Assert.Equal(4, log.LastLeaderEpoch);
        }

        using (var log = CommitLog.Open(dir.Path))
        {
            Assert.Equal([(1L, -1L), (3L, 1L), (4L, 3L)], log.LeaderEpochs);
            log.Truncate(3);
            Assert.Equal([(1L, -1L), (3L, 1L)], log.LeaderEpochs);
        }
    }

    [Fact]
    public void Retention_drops_leader_epochs_that_ended_before_the_new_start()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path, OnePerSegment with { RetentionMaxMessages = 2 });
        log.Append([Rec("a", epoch: 1)]);
        log.Append([Rec("b", epoch: 1)]);
        log.Append([Rec("c", epoch: 2)]);
        log.Append([Rec("d", epoch: 3)]);
        log.Append([Rec("e", epoch: 3)]);
        log.EnforceRetention();
        Assert.Equal(3, log.OldestOffset);
        Assert.Equal([(3L, 3L)], log.LeaderEpochs);
    }
}
