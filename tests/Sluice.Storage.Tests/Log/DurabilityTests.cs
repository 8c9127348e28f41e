using Sluice.Storage.Log;
using Sluice.TestKit;
using static Sluice.Storage.Tests.Log.LogTestKit;

namespace Sluice.Storage.Tests.Log;

public class DurabilityTests
{
    [Fact]
    public async Task Always_fsyncs_before_returning_and_concurrent_appends_share_fsyncs()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path, CommitLogOptions.Default with { Durability = DurabilityPolicy.Always, SegmentMaxBytes = 8192 });
        log.Append([Rec("one")]);
        Assert.True(log.FsyncCount >= 1);
        const int Writers = 8, PerWriter = 40;
        var offsets = await Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            var mine = new List<long>();
            for (var i = 0; i < PerWriter; i++)
            {
                mine.Add(i % 2 == 0 ? log.Append([Rec($"w{w}-{i}")]) : await log.AppendAsync(new[] { Rec($"w{w}-{i}") }));
            }

            return mine;
        })));
        var all = offsets.SelectMany(o => o).Order().ToList();
        Assert.Equal(Enumerable.Range(1, Writers * PerWriter).Select(i => (long)i), all);
        Assert.True(log.FsyncCount <= 1 + (Writers * PerWriter) + log.SegmentCount, $"{log.FsyncCount} fsyncs");
        Assert.Equal(Writers * PerWriter + 1, ReadAll(log).Count);
    }

    [Fact]
    public void Interval_fsyncs_in_the_background()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path, CommitLogOptions.Default with { Durability = DurabilityPolicy.Interval, FsyncInterval = TimeSpan.FromMilliseconds(20) });
        log.Append([Rec("a")]);
        Assert.True(SpinWait.SpinUntil(() => log.FsyncCount > 0, TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public void Never_does_not_fsync()
    {
        using var dir = new TempDirectory();
        using var log = CommitLog.Open(dir.Path, Small(200));
        AppendValues(log, 50);
        Assert.Equal(0, log.FsyncCount);
    }
}
