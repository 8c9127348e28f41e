using Sluice.Storage.Log;
using Sluice.Storage.Log.Files;
using Sluice.TestKit;
using static Sluice.Storage.Tests.Log.LogTestKit;

namespace Sluice.Storage.Tests.Log;

/// <summary>Counts the process's descriptors, so nothing else may run beside it.</summary>
[CollectionDefinition(nameof(ProcessWideFileCount), DisableParallelization = true)]
public sealed class ProcessWideFileCount
{
}

[Collection(nameof(ProcessWideFileCount))]
public class ManyPartitionsTests
{
    /// <summary>
    /// Descriptors open on files under <paramref name="root"/>. Counting only those keeps sockets, pipes and files
    /// that the test host or a finishing test opens in the background out of the measure.
    /// </summary>
    private static int OpenFileDescriptors(string root)
    {
        var count = 0;
        foreach (var fd in Directory.GetFiles("/proc/self/fd"))
        {
            try
            {
                var target = new FileInfo(fd).LinkTarget;
                if (target is not null && target.StartsWith(root, StringComparison.Ordinal))
                {
                    count++;
                }
            }
            catch (IOException)
            {
                // Closed between listing and reading: not open any more.
            }
        }

        return count;
    }

    [Fact]
    public void Ten_thousand_partitions_stay_within_the_file_handle_budget()
    {
        Assert.True(Directory.Exists("/proc/self/fd"), "this test needs Linux /proc");
        const int Partitions = 10_000;
        const int Budget = 256;
        const int Parallelism = 4;
        using var dir = new TempDirectory();
        var budget = new FileHandleBudget(Budget);
        var options = CommitLogOptions.Default with { FileHandles = budget, SegmentMaxBytes = 4096 };
        var baseline = OpenFileDescriptors(dir.Path);
        var peak = 0;
        var logs = new CommitLog[Partitions];
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Parallelism };
        void Sample(int i)
        {
            if (i % 250 == 0)
            {
                var rise = OpenFileDescriptors(dir.Path) - baseline;
                lock (logs)
                {
                    peak = Math.Max(peak, rise);
                }
            }
        }

        try
        {
            Parallel.For(0, Partitions, parallel, i =>
            {
                logs[i] = CommitLog.Open(Path.Combine(dir.Path, i.ToString()), options);
                logs[i].Append([Rec($"p{i}-a"), Rec($"p{i}-b")]);
                Sample(i);
            });

            for (var round = 0; round < 1; round++)
            {
                Parallel.For(0, Partitions, parallel, i =>
                {
                    logs[i].Append([Rec($"p{i}-r{round}")]);
                    using var batch = logs[i].Read(0, 1 << 16);
                    Assert.Equal(3 + round, batch.Count);
                    Assert.Equal($"p{i}-a", Text(batch[0].Value));
                    Sample(i);
                });
            }

            Assert.True(budget.OpenFiles <= Budget);

            // Creating a segment or writing a checkpoint briefly uses one unpooled handle per concurrent operation.
            Assert.True(peak <= Budget + Parallelism, $"open descriptors rose by {peak}, above the budget of {Budget}");
            Assert.True(budget.Opens > Partitions, "handles were never closed and reopened");
        }
        finally
        {
            Parallel.ForEach(logs, parallel, log => log?.Dispose());
        }
    }
}
