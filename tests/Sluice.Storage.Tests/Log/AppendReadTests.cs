using Sluice.Storage.Log;
using Sluice.TestKit;
using static Sluice.Storage.Tests.Log.LogTestKit;

namespace Sluice.Storage.Tests.Log;

public class AppendReadTests
{
    [Fact]
    public void Empty_log_reports_minus_one_for_oldest_and_newest()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path);
        Assert.Equal(-1, log.OldestOffset);
        Assert.Equal(-1, log.NewestOffset);
        Assert.Equal(0, log.NextOffset);
        using var batch = log.Read(0, 1024);
        Assert.True(batch.IsEmpty);
        Assert.Equal(0, batch.NextOffset);
    }

    [Fact]
    public void Records_round_trip_with_every_field()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path);
        var first = log.Append([
            Rec("hello", "k1", timestamp: 123, epoch: 7, headers: [("subject", "foo"), ("reply", "")]),
            Rec(null, null, timestamp: -5),
            Rec("", "", timestamp: long.MaxValue),
        ]);
        Assert.Equal(0, first);
        Assert.Equal(3, log.Append([Rec("x")]));
        var all = ReadAll(log);
        Assert.Equal(
            [
                new Stored(0, 123, 7, "k1", "hello", "subject=foo,reply="),
                new Stored(1, -5, 0, null, null, ""),
                new Stored(2, long.MaxValue, 0, "", "", ""),
                new Stored(3, 0, 0, null, "x", ""),
            ],
            all);
        Assert.Equal(0, log.OldestOffset);
        Assert.Equal(3, log.NewestOffset);
    }

    [Fact]
    public void Records_survive_a_reopen_and_offsets_continue()
    {
        using var dir = new TempDirectory();
        using (var log = CommitLog.Open(dir.Path, Small()))
        {
            AppendValues(log, 50);
        }

        using (var log = CommitLog.Open(dir.Path, Small()))
        {
            Assert.Equal(49, log.NewestOffset);
            Assert.Equal(50, log.Append([Rec("after")]));
            var all = ReadAll(log);
            Assert.Equal(51, all.Count);
            Assert.Equal(Enumerable.Range(0, 51).Select(i => (long)i), all.Select(r => r.Offset));
            Assert.Equal("after", all[^1].Value);
            Assert.True(log.SegmentCount > 1);
        }
    }

    [Fact]
    public void Expected_offset_must_match_the_next_offset()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path);
        var error = Assert.Throws<IncorrectOffsetException>(() => log.Append([Rec("a")], expectedNextOffset: 100));
        Assert.Equal(100, error.ExpectedOffset);
        Assert.Equal(0, error.NextOffset);
        Assert.Equal(0, log.Append([Rec("a")], expectedNextOffset: -1));
        Assert.Equal(1, log.Append([Rec("b")], expectedNextOffset: 1));
        Assert.Throws<IncorrectOffsetException>(() => log.Append([Rec("c")], expectedNextOffset: 1));
        Assert.Equal(2, log.Append([Rec("c"), Rec("d")], expectedNextOffset: log.NewestOffset + 1));
        Assert.Equal(3, log.NewestOffset);
    }

    [Fact]
    public async Task Concurrent_expected_offset_appends_let_exactly_one_win()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path);
        log.Append([Rec("seed")]);
        var tasks = Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            try
            {
                log.Append([Rec("race")], expectedNextOffset: 1);
                return true;
            }
            catch (IncorrectOffsetException)
            {
                return false;
            }
        })).ToArray();
        var results = await Task.WhenAll(tasks);
        Assert.Single(results, r => r);
        Assert.Equal(1, log.NewestOffset);
    }

    [Fact]
    public void Bad_arguments_are_rejected_with_clear_exceptions()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path, CommitLogOptions.Default with { MaxRecordBytes = 1024 });
        Assert.Contains("empty batch", Assert.Throws<ArgumentException>(() => log.Append([])).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => log.Append([Rec("a")], expectedNextOffset: -2));
        Assert.Contains("MaxRecordBytes", Assert.Throws<ArgumentException>(() => log.Append([new LogRecord { Value = new byte[2000] }])).Message);
        Assert.Contains("header name", Assert.Throws<ArgumentException>(() => log.Append([new LogRecord { Headers = [new RecordHeader(null!, default)] }])).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => log.Read(-1, 100));
        Assert.Throws<ArgumentOutOfRangeException>(() => log.Read(0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => log.ReadReverse(-1, 100));
        Assert.Throws<ArgumentOutOfRangeException>(() => log.Truncate(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => log.SetHighWatermark(-2));
        Assert.Throws<ArgumentOutOfRangeException>(() => log.SetHighWatermark(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => log.CreateReader(-1, committed: false));
        Assert.Throws<ArgumentOutOfRangeException>(() => log.NewLeaderEpoch(-1));
        Assert.Throws<ArgumentException>(() => CommitLog.Open(""));
        Assert.Throws<ArgumentOutOfRangeException>(() => CommitLog.Open(Path.Combine(Path.GetTempPath(), "never"), CommitLogOptions.Default with { SegmentMaxBytes = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sluice.Storage.Log.Files.FileHandleBudget(0));
        Assert.Equal(-1, log.NewestOffset);
    }

    [Fact]
    public void Reads_are_bounded_by_bytes_but_return_at_least_one_record()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path);
        log.Append([Rec(new string('a', 500)), Rec("b"), Rec("c"), Rec("d")]);
        using (var batch = log.Read(0, 10))
        {
            Assert.Equal(1, batch.Count);
            Assert.Equal(1, batch.NextOffset);
        }

        using (var batch = log.Read(1, 200))
        {
            Assert.Equal(3, batch.Count);
            Assert.Equal(4, batch.NextOffset);
            Assert.True(batch.SizeInBytes <= 200);
        }

        using (var batch = log.Read(1, 100))
        {
            Assert.Equal(2, batch.Count); // 47-byte records: two fit in 100 bytes
        }

        using (var batch = log.Read(2, 1 << 20, lastOffset: 2))
        {
            Assert.Equal(1, batch.Count);
            Assert.Equal(3, batch.NextOffset);
        }

        using (var batch = log.Read(10, 100))
        {
            Assert.True(batch.IsEmpty);
            Assert.Equal(10, batch.NextOffset);
        }
    }

    [Fact]
    public void Reads_from_the_middle_of_many_segments_find_the_right_record()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path, Small(segmentBytes: 2000));
        AppendValues(log, 500);
        for (var offset = 0; offset < 500; offset += 37)
        {
            using var batch = log.Read(offset, 1);
            Assert.Equal(offset, batch[0].Offset);
            Assert.Equal($"v{offset}", Text(batch[0].Value));
        }
    }

    [Fact]
    public void Replicated_appends_keep_given_offsets_and_skip_what_is_already_there()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path);
        Assert.Equal(2, log.AppendReplicated([Rec("a", offset: 0), Rec("b", offset: 1), Rec("c", offset: 2)]));
        Assert.Equal(2, log.AppendReplicated([Rec("a2", offset: 1), Rec("b2", offset: 2)]));
        Assert.Equal(7, log.AppendReplicated([Rec("c2", offset: 2), Rec("d", offset: 5), Rec("e", offset: 7)]));
        Assert.Equal([(0L, "a"), (1, "b"), (2, "c"), (5, "d"), (7, "e")], ReadAll(log).Select(r => (r.Offset, r.Value!)));
        Assert.Throws<ArgumentException>(() => log.AppendReplicated([Rec("x", offset: 9), Rec("y", offset: 9)]));
        Assert.Equal(8, log.Append([Rec("leader")]));
    }

    [Fact]
    public async Task Async_appends_return_base_offsets()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path);
        Assert.Equal(0, await log.AppendAsync(new[] { Rec("a"), Rec("b") }));
        Assert.Equal(2, await log.AppendAsync(new[] { Rec("c") }, expectedNextOffset: 2));
        await Assert.ThrowsAsync<IncorrectOffsetException>(async () => await log.AppendAsync(new[] { Rec("c") }, expectedNextOffset: 2));
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await log.AppendAsync(new[] { Rec("d") }, cancellationToken: cts.Token));
        Assert.Equal(2, log.NewestOffset);
        Assert.Equal(5, await log.AppendReplicatedAsync(new[] { Rec("r", offset: 5) }));
    }
}
