using Sluice.Storage.Log;
using Sluice.TestKit;
using static Sluice.Storage.Tests.Log.LogTestKit;

namespace Sluice.Storage.Tests.Log;

public class WaitTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Waiting_for_an_offset_completes_when_it_is_appended()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path);
        var wait = log.WaitForOffsetAsync(1).AsTask();
        log.Append([Rec("a")]);
        Assert.False(wait.IsCompleted);
        log.Append([Rec("b")]);
        await wait.WaitAsync(Timeout);
        Assert.True(log.WaitForOffsetAsync(0).AsTask().IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Committed_waits_follow_the_high_watermark()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path);
        log.Append([Rec("a"), Rec("b")]);
        var wait = log.WaitForOffsetAsync(1, committed: true).AsTask();
        log.SetHighWatermark(0);
        Assert.False(wait.IsCompleted);
        log.SetHighWatermark(1);
        await wait.WaitAsync(Timeout);
    }

    [Fact]
    public async Task Waits_are_cancellable()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path);
        using var cts = new CancellationTokenSource();
        var wait = log.WaitForOffsetAsync(5, cancellationToken: cts.Token).AsTask();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(Timeout));
    }

    [Fact]
    public async Task Waiters_get_typed_errors_when_the_log_is_closed_or_deleted()
    {
        using var dir = new TempDirectory();
        var log = CommitLog.Open(dir.Sub("a"));
        var closed = log.WaitForOffsetAsync(0).AsTask();
        log.Dispose();
        await Assert.ThrowsAsync<CommitLogClosedException>(() => closed.WaitAsync(Timeout));
        Assert.Throws<CommitLogClosedException>(() => log.Append([Rec("x")]));
        Assert.Throws<CommitLogClosedException>(() => log.Read(0, 10));

        var other = CommitLog.Open(dir.Sub("b"));
        var reader = other.CreateReader(0, committed: false);
        var deleted = reader.ReadAsync(1024).AsTask();
        other.Delete();
        await Assert.ThrowsAsync<CommitLogDeletedException>(() => deleted.WaitAsync(Timeout));
        Assert.False(Directory.Exists(dir.Sub("b")));
        Assert.Throws<CommitLogDeletedException>(() => other.Append([Rec("x")]));
        Assert.Throws<CommitLogDeletedException>(() => other.EarliestOffsetAfterTimestamp(0));
        other.Dispose();
    }

    [Fact]
    public async Task A_committed_reader_delivers_only_up_to_the_high_watermark_and_then_waits()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path, Small(500));
        AppendValues(log, 30);
        var reader = log.CreateReader(0, committed: true);
        var first = reader.ReadAsync(1 << 20).AsTask();
        log.SetHighWatermark(9);
        var got = new List<long>();
        using (var batch = await first.WaitAsync(Timeout))
        {
            foreach (var r in batch.Records)
            {
                got.Add(r.Offset);
            }
        }

        while (got[^1] < 9)
        {
            using var batch = await reader.ReadAsync(1 << 20).AsTask().WaitAsync(Timeout);
            foreach (var r in batch.Records)
            {
                got.Add(r.Offset);
            }
        }

        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), got);
        var next = reader.ReadAsync(1 << 20).AsTask();
        Assert.False(next.IsCompleted);
        log.SetHighWatermark(29);
        using (var batch = await next.WaitAsync(Timeout))
        {
            Assert.Equal(10, batch[0].Offset);
        }
    }

    [Fact]
    public async Task An_uncommitted_reader_follows_appends_from_other_threads()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path, Small(2000));
        var reader = log.CreateReader(0, committed: false);
        var writer = Task.Run(() => AppendValues(log, 300));
        var got = new List<long>();
        while (got.Count < 300)
        {
            using var batch = await reader.ReadAsync(4096).AsTask().WaitAsync(Timeout);
            foreach (var r in batch.Records)
            {
                got.Add(r.Offset);
                Assert.Equal($"v{r.Offset}", Text(r.Value));
            }
        }

        await writer;
        Assert.Equal(Enumerable.Range(0, 300).Select(i => (long)i), got);
    }
}
