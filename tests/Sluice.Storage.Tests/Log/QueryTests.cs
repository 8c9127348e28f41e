using Sluice.Storage.Log;
using Sluice.TestKit;
using static Sluice.Storage.Tests.Log.LogTestKit;

namespace Sluice.Storage.Tests.Log;

public class QueryTests
{
    [Theory]
    [InlineData(1 << 20)]
    [InlineData(100)]
    public void Timestamp_lookups_match_liftbridge_behaviour_20(long segmentBytes)
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path, Small(segmentBytes));
        AppendValues(log, 10, timestampStep: 10);
        Assert.Equal(3, log.EarliestOffsetAfterTimestamp(25));
        Assert.Equal(0, log.EarliestOffsetAfterTimestamp(-1));
        Assert.Equal(10, log.EarliestOffsetAfterTimestamp(500));
        Assert.Equal(2, log.LatestOffsetBeforeTimestamp(25));
        Assert.Equal(0, log.LatestOffsetBeforeTimestamp(5));
        Assert.Equal(9, log.LatestOffsetBeforeTimestamp(500));
        Assert.Equal(3, log.LatestOffsetBeforeTimestamp(30));
        Assert.Throws<OffsetNotFoundException>(() => log.LatestOffsetBeforeTimestamp(-1));
    }

    [Fact]
    public void Timestamp_lookups_use_the_index_over_many_entries_and_survive_reopen()
    {
        using var dir = new TempDirectory();
        using (var log = CommitLog.Open(dir.Path, Small(4000)))
        {
            AppendValues(log, 1000, timestampStep: 2);
        }

        using (var log = CommitLog.Open(dir.Path, Small(4000)))
        {
            for (var t = 1; t < 2000; t += 97)
            {
                Assert.Equal((t + 1) / 2, log.EarliestOffsetAfterTimestamp(t));
                Assert.Equal(t / 2, log.LatestOffsetBeforeTimestamp(t));
            }
        }
    }

    [Fact]
    public void Empty_log_timestamp_lookups()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path);
        Assert.Equal(0, log.EarliestOffsetAfterTimestamp(0));
        Assert.Throws<OffsetNotFoundException>(() => log.LatestOffsetBeforeTimestamp(100));
    }

    [Theory]
    [InlineData(1 << 20, 1 << 20)]
    [InlineData(300, 100)]
    [InlineData(5000, 700)]
    public void Reverse_reads_walk_from_the_newest_to_offset_zero(long segmentBytes, int maxBytes)
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path, Small(segmentBytes));
        AppendValues(log, 200);
        var seen = new List<long>();
        var start = log.NewestOffset;
        while (start >= 0)
        {
            using var batch = log.ReadReverse(start, maxBytes);
            Assert.False(batch.IsEmpty);
            foreach (var r in batch.Records)
            {
                seen.Add(r.Offset);
                Assert.Equal($"v{r.Offset}", Text(r.Value));
            }

            start = batch.NextOffset;
        }

        Assert.Equal(Enumerable.Range(0, 200).Reverse().Select(i => (long)i), seen);
        using var past = log.ReadReverse(10_000, 64);
        Assert.Equal(199, past[0].Offset);
    }

    [Fact]
    public void Reverse_read_of_an_empty_log_is_empty()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path);
        using var batch = log.ReadReverse(0, 100);
        Assert.True(batch.IsEmpty);
        Assert.Equal(-1, batch.NextOffset);
    }
}
