using System.Diagnostics;
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using Sluice.TestKit;

namespace Sluice.Storage.Tests.Metadata;

public class CrashRecoveryTests
{
    private const int Kills = 22;
    private const int Workers = 4;

    [Fact]
    public async Task Killed_writer_keeps_every_acknowledged_revision_and_nothing_beyond_the_ones_in_flight()
    {
        using var dir = new TempDirectory("sluice-crash");
        var store = dir.Sub("store");
        var random = new Random(20261121);
        var lastAcked = Enumerable.Repeat(-1L, Workers).ToArray();
        var ackedRevisions = new Dictionary<(int Worker, long N), long>();
        var totalAcks = 0;
        for (var run = 0; run < Kills; run++)
        {
            // Kill at a random point: sometimes right after open (recovery just ran), mostly mid-stream.
            var target = run % 5 == 0 ? 0 : random.Next(1, 250);
            var lines = await RunChildUntilKilledAsync(store, target);
            var maxAcked = 0L;
            foreach (var line in lines)
            {
                var parts = line.Split(' ');
                if (parts[0] != "ack")
                {
                    continue;
                }

                var (w, n, rev) = (int.Parse(parts[1]), long.Parse(parts[2]), long.Parse(parts[3]));
                ackedRevisions[(w, n)] = rev;
                lastAcked[w] = Math.Max(lastAcked[w], n);
                maxAcked = Math.Max(maxAcked, rev);
                totalAcks++;
            }

            await using var reopened = await EmbeddedMetadataStore.OpenAsync(store);
            Assert.True(reopened.Revision >= maxAcked, $"run {run}: revision {reopened.Revision} < acknowledged {maxAcked}");

            // Each worker has at most one write in flight; those are the only unacknowledged revisions allowed.
            Assert.True(reopened.Revision <= Math.Max(maxAcked, StartRevision(lines)) + (2 * Workers), $"run {run}: revision {reopened.Revision} far beyond acknowledged {maxAcked}");
            for (var w = 0; w < Workers; w++)
            {
                var kvs = (await reopened.RangeAsync(RangeRequest.Prefix($"w{w}/"))).Kvs;
                for (var i = 0; i < kvs.Count; i++)
                {
                    Assert.Equal($"w{w}/{i:D8}", kvs[i].KeyString); // a gap-free prefix of the worker's writes
                    Assert.Equal($"{i}", kvs[i].ValueString);
                    if (ackedRevisions.TryGetValue((w, i), out var rev))
                    {
                        Assert.Equal(rev, kvs[i].ModRevision);
                    }
                }

                Assert.True(kvs.Count - 1 >= lastAcked[w], $"run {run}: worker {w} lost acknowledged write {lastAcked[w]} (has {kvs.Count})");
                Assert.True(kvs.Count - 1 <= lastAcked[w] + 1, $"run {run}: worker {w} has {kvs.Count} writes, acknowledged up to {lastAcked[w]}");

                // The in-flight write, if it survived, is now part of history the next child builds on.
                lastAcked[w] = kvs.Count - 1;
            }

            _ = await reopened.HashKVAsync(); // walks every retained version
        }

        Assert.True(totalAcks > Kills, $"the children acknowledged only {totalAcks} writes");
        Assert.True(File.Exists(Path.Combine(store, "snapshot.snap")), "no snapshot was taken, so log rotation went untested");
    }

    private static long StartRevision(List<string> lines) =>
        lines.Count > 0 && lines[0].StartsWith("open ", StringComparison.Ordinal) ? long.Parse(lines[0][5..]) : 0;

    private static async Task<List<string>> RunChildUntilKilledAsync(string storeDirectory, int acksBeforeKill)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(ChildDll());
        start.ArgumentList.Add(storeDirectory);
        using var child = Process.Start(start)!;
        var lines = new List<string>();
        var acks = 0;
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        child.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                ready.TrySetResult();
                return;
            }

            lock (lines)
            {
                lines.Add(e.Data);
                if (e.Data.StartsWith("ack ", StringComparison.Ordinal))
                {
                    acks++;
                }

                if (e.Data.StartsWith("open ", StringComparison.Ordinal) ? acksBeforeKill == 0 : acks >= acksBeforeKill)
                {
                    ready.TrySetResult();
                }
            }
        };
        var stderr = child.StandardError.ReadToEndAsync();
        child.BeginOutputReadLine();
        var finished = await Task.WhenAny(ready.Task, Task.Delay(TimeSpan.FromSeconds(60)));
        var exitedEarly = child.HasExited;
        child.Kill(entireProcessTree: true);
        await child.WaitForExitAsync();
        Assert.True(finished == ready.Task, "the child never reached its kill point");
        Assert.False(exitedEarly, $"the child exited by itself: {await stderr}");
        child.WaitForExit(); // drains the asynchronous stdout reader
        lock (lines)
        {
            return [.. lines];
        }
    }

    private static string ChildDll()
    {
        // bin/<Configuration>/<tfm>/ of this test assembly; the child is built with the same Configuration.
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var tfm = baseDir.Name;
        var configuration = baseDir.Parent!.Name;
        var testsDir = baseDir.Parent.Parent!.Parent!.Parent!.FullName;
        var dll = Path.Combine(testsDir, "Sluice.Metadata.CrashChild", "bin", configuration, tfm, "Sluice.Metadata.CrashChild.dll");
        Assert.True(File.Exists(dll), $"crash child not built at {dll}");
        return dll;
    }
}
