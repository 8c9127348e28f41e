using Sluice.Storage.Log;
using Sluice.TestKit;
using static Sluice.Storage.Tests.Log.LogTestKit;

namespace Sluice.Storage.Tests.Log;

/// <summary>Files of a closed log deleted or cut, then the log reopened: lost data is reported or skipped, never served as if it had not existed.</summary>
public class LostDataTests
{
    // About 30 bytes per record: a few records per segment, so a test has several sealed segments.
    private static CommitLogOptions Options => Small(200);

    private static string SegmentPath(string directory, long baseOffset) => Path.Combine(directory, $"{baseOffset:D20}.log");

    /// <summary>A closed log of <paramref name="count"/> committed records; returns the base offsets of its segments.</summary>
    private static long[] WriteLog(string directory, int count)
    {
        using var log = CommitLog.Open(directory, Options);
        AppendValues(log, count);
        log.SetHighWatermark(log.NewestOffset);
        Assert.True(log.SegmentCount >= 4);
        return [.. log.Segments.Select(s => s.BaseOffset)];
    }

    [Fact]
    public void A_deleted_sealed_segment_is_reported_instead_of_served_as_a_gap()
    {
        using var dir = new TempDirectory();
        var bases = WriteLog(dir.Path, 40);
        File.Delete(SegmentPath(dir.Path, bases[1]));

        var error = Assert.Throws<CorruptLogException>(() => CommitLog.Open(dir.Path, Options));
        Assert.Equal(bases[1], error.SegmentBaseOffset);
        Assert.Contains("missing", error.Description);
        Assert.Contains($"base offset {bases[1]}", error.Description);
        Assert.DoesNotContain(dir.Path, error.Description);
    }

    [Fact]
    public void A_deleted_oldest_segment_is_reported_but_segments_removed_by_retention_are_not()
    {
        using var dir = new TempDirectory();
        var bases = WriteLog(dir.Path, 40);
        using (var log = CommitLog.Open(dir.Path, Options with { RetentionMaxMessages = 20 }))
        {
            Assert.True(log.EnforceRetention() > 0);
            bases = [.. log.Segments.Select(s => s.BaseOffset)];
        }

        using (var log = CommitLog.Open(dir.Path, Options))
        {
            Assert.Equal(bases[0], log.OldestOffset);
            Assert.Equal(39, log.NewestOffset);
        }

        File.Delete(SegmentPath(dir.Path, bases[0]));
        var error = Assert.Throws<CorruptLogException>(() => CommitLog.Open(dir.Path, Options));
        Assert.Equal(bases[0], error.SegmentBaseOffset);
    }

    [Fact]
    public void Segments_emptied_by_compaction_are_not_reported_as_missing()
    {
        using var dir = new TempDirectory();
        List<Stored> kept;
        using (var log = CommitLog.Open(dir.Path, Options))
        {
            AppendValues(log, 40, key: "same");
            log.SetHighWatermark(log.NewestOffset);
            var before = log.SegmentCount;
            Assert.True(log.Compact() > 0);
            Assert.True(log.SegmentCount < before);
            kept = ReadAll(log);
        }

        using (var log = CommitLog.Open(dir.Path, Options))
        {
            Assert.Equal(kept, ReadAll(log));
            Assert.Null(log.LostTail);
        }
    }

    [Fact]
    public void A_sealed_segment_cut_at_a_record_boundary_is_reported()
    {
        using var dir = new TempDirectory();
        var bases = WriteLog(dir.Path, 40);
        long cut;
        using (var log = CommitLog.Open(dir.Path, Options))
        {
            cut = log.Segments[1].PositionOf(bases[1] + 1); // keeps one whole record: a clean cut a scan cannot see
        }

        using (var file = File.OpenHandle(SegmentPath(dir.Path, bases[1]), FileMode.Open, FileAccess.ReadWrite))
        {
            RandomAccess.SetLength(file, cut);
        }

        var error = Assert.Throws<CorruptLogException>(() => CommitLog.Open(dir.Path, Options));
        Assert.Equal(bases[1], error.SegmentBaseOffset);
        Assert.Contains("shorter", error.Description);
    }

    [Fact]
    public void A_deleted_newest_segment_never_hands_out_acknowledged_offsets_again()
    {
        using var dir = new TempDirectory();
        var bases = WriteLog(dir.Path, 40);
        File.Delete(SegmentPath(dir.Path, bases[^1]));

        using (var log = CommitLog.Open(dir.Path, Options))
        {
            Assert.Equal(new OffsetGap(bases[^1], 39), log.LostTail);
            Assert.Equal(39, log.NewestOffset);
            Assert.Equal(40, log.Append([Rec("after the loss")]));
            Assert.Equal(Enumerable.Range(0, (int)bases[^1]).Select(i => $"v{i}").Append("after the loss"), ReadAll(log).Select(r => r.Value));
        }

        using (var log = CommitLog.Open(dir.Path, Options))
        {
            Assert.Null(log.LostTail);
            Assert.Equal(40, log.NewestOffset);
        }
    }

    [Fact]
    public void A_tail_lost_by_an_OS_crash_continues_after_the_checkpointed_offsets()
    {
        using var dir = new TempDirectory();
        var options = Small(1 << 20);
        long cut;
        using (var log = CommitLog.Open(dir.Path, options))
        {
            AppendValues(log, 10);
            log.SetHighWatermark(9);
            cut = log.Segments[0].PositionOf(5);
        }

        // Under durability "never" the checkpoint can reach the disk while the last records' pages do not.
        using (var file = File.OpenHandle(SegmentPath(dir.Path, 0), FileMode.Open, FileAccess.ReadWrite))
        {
            RandomAccess.SetLength(file, cut);
        }

        using (var log = CommitLog.Open(dir.Path, options))
        {
            Assert.Equal(new OffsetGap(5, 9), log.LostTail);
            Assert.Equal(9, log.HighWatermark);
            Assert.Equal(10, log.NextOffset);
            Assert.Equal(10, log.Append([Rec("v10")]));
            log.SetHighWatermark(10);
            Assert.Equal([0L, 1, 2, 3, 4, 10], ReadAll(log).Select(r => r.Offset));
        }

        using (var log = CommitLog.Open(dir.Path, options))
        {
            Assert.Null(log.LostTail);
            Assert.Equal(10, log.NewestOffset);
            using var batch = log.Read(5, 1024);
            Assert.Equal(10, batch[0].Offset); // a read inside the gap starts at the next record
        }
    }

    [Fact]
    public void AdvanceTo_skips_offsets_the_owner_knows_were_handed_out_and_the_skip_survives_a_reopen()
    {
        using var dir = new TempDirectory();
        using (var log = CommitLog.Open(dir.Path, Options))
        {
            AppendValues(log, 3);
            Assert.False(log.AdvanceTo(2, "test"));
            Assert.True(log.AdvanceTo(7, "test"));
            Assert.Equal(new OffsetGap(3, 6), log.LostTail);
            Assert.Equal(7, log.NextOffset);
        }

        using (var log = CommitLog.Open(dir.Path, Options))
        {
            Assert.Equal(7, log.NextOffset);
            Assert.Equal(7, log.Append([Rec("seven")]));
        }
    }
}
