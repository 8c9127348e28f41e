using System.Diagnostics;
using Sluice.Storage.Log;
using Sluice.TestKit;

namespace Sluice.Storage.Tests.Log;

public class CrashTests
{
    private static string ChildDll()
    {
        // tests/Sluice.Storage.Tests/bin/<Configuration>/<tfm>/ → tests/Sluice.Storage.CrashChild/bin/<Configuration>/<tfm>/
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var tfm = baseDir.Name;
        var configuration = baseDir.Parent!.Name;
        var tests = baseDir.Parent!.Parent!.Parent!.Parent!.FullName;
        var dll = Path.Combine(tests, "Sluice.Storage.CrashChild", "bin", configuration, tfm, "Sluice.Storage.CrashChild.dll");
        Assert.True(File.Exists(dll), $"The crash child was not built: {dll}");
        return dll;
    }

    [Fact]
    public async Task Acknowledged_records_survive_SIGKILL_at_random_moments()
    {
        using var dir = new TempDirectory();
        var dll = ChildDll();
        var random = new Random(20261121);
        var acked = new List<(long Offset, int Count, string Tag)>();
        var options = CommitLogOptions.Default with { SegmentMaxBytes = 64 * 1024 };
        for (var run = 0; run < 20; run++)
        {
            var killAfter = run % 5 == 0 ? 0 : random.Next(1, 60);
            var lines = new List<string>();
            var enough = new ManualResetEventSlim();
            using (var child = new Process())
            {
                child.StartInfo = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                child.StartInfo.ArgumentList.Add(dll);
                child.StartInfo.ArgumentList.Add(dir.Path);
                child.StartInfo.ArgumentList.Add(run.ToString());
                child.OutputDataReceived += (_, e) =>
                {
                    if (e.Data is null)
                    {
                        enough.Set();
                        return;
                    }

                    lock (lines)
                    {
                        lines.Add(e.Data);
                        if (lines.Count > killAfter)
                        {
                            enough.Set();
                        }
                    }
                };
                child.Start();
                child.BeginOutputReadLine();
                var stderr = child.StandardError.ReadToEndAsync();
                Assert.True(enough.Wait(TimeSpan.FromSeconds(60)), "the child produced no acknowledgements");
                child.Kill(); // SIGKILL
                child.WaitForExit();
                Assert.DoesNotContain("Unhandled", await stderr);
            }

            lock (lines)
            {
                Assert.StartsWith("ready", lines[0]);
                foreach (var line in lines.Skip(1))
                {
                    var parts = line.Split(' ');
                    acked.Add((long.Parse(parts[1]), int.Parse(parts[2]), parts[3]));
                }
            }

            using var log = CommitLog.Open(dir.Path, options);
            var all = LogTestKit.ReadAll(log, maxBytes: 1 << 20);
            Assert.Equal(Enumerable.Range(0, all.Count).Select(i => (long)i), all.Select(r => r.Offset));
            foreach (var (offset, count, tag) in acked)
            {
                for (var i = 0; i < count; i++)
                {
                    Assert.StartsWith($"{tag}:{i}:", all[(int)(offset + i)].Value);
                }
            }
        }

        Assert.True(acked.Count >= 20 * 5);
    }
}
