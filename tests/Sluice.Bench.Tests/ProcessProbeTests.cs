using System.Diagnostics;
using Sluice.Bench.Runs;

namespace Sluice.Bench.Tests;

/// <summary>The server probe over several processes (a cluster's brokers and its etcd): each measured, then summed.</summary>
public class ProcessProbeTests
{
    [Fact]
    public void Several_processes_are_measured_each_and_summed()
    {
        // Two real processes that burn CPU until killed: a busy shell loop each.
        using var first = Busy();
        using var second = Busy();
        try
        {
            using var probe = ProcessProbe.Start([first.Id, second.Id]);
            // Read after the probe started, so what each uses past these marks is inside the probe's window.
            var marks = new[] { ProcessProbe.ReadCpuSeconds(first.Id), ProcessProbe.ReadCpuSeconds(second.Id) };
            var deadline = Stopwatch.StartNew();
            while ((ProcessProbe.ReadCpuSeconds(first.Id) - marks[0] < 0.05 || ProcessProbe.ReadCpuSeconds(second.Id) - marks[1] < 0.05)
                && deadline.Elapsed < TimeSpan.FromSeconds(30))
            {
                Thread.Sleep(20);
            }

            var usage = probe.Stop();
            Assert.Equal([first.Id, second.Id], usage.Processes.Select(p => p.Pid));
            Assert.All(usage.Processes, p => Assert.True(p.CpuSeconds >= 0.05, $"pid {p.Pid} used {p.CpuSeconds} s"));
            Assert.All(usage.Processes, p => Assert.True(p.PeakRssKb > 0));
            Assert.Equal(usage.Processes.Sum(p => p.CpuSeconds), usage.CpuSeconds!.Value, 6);
            Assert.Equal(usage.Processes.Sum(p => p.PeakRssKb), usage.PeakRssKb);
        }
        finally
        {
            first.Kill();
            second.Kill();
            first.WaitForExit();
            second.WaitForExit();
        }
    }

    [Fact]
    public void Without_a_pid_only_steal_is_measured()
    {
        using var probe = ProcessProbe.Start([]);
        var usage = probe.Stop();
        Assert.Null(usage.CpuSeconds);
        Assert.Null(usage.PeakRssKb);
        Assert.Empty(usage.Processes);
    }

    private static Process Busy() =>
        Process.Start(new ProcessStartInfo("/bin/sh", ["-c", "while :; do :; done"]) { UseShellExecute = false })
        ?? throw new InvalidOperationException("could not start /bin/sh");
}
