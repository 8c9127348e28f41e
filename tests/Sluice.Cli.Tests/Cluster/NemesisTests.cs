using System.Globalization;
using System.Text;
using Sluice.Nemesis;
using Sluice.TestKit;
using Xunit.Abstractions;

namespace Sluice.Cli.Tests.Cluster;

/// <summary>
/// The short run of the fault-injection harness (scripts/nemesis.sh runs the long one): one fault of every kind on a
/// 3-broker cluster with a 3-member etcd, under acks-ALL load, then the checker.
/// </summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class NemesisTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_short_fault_run_loses_no_acked_message_and_the_cluster_serves_again_after_each_fault()
    {
        using var dir = new TempDirectory("sluice-nemesis");
        var log = new StringWriter(CultureInfo.InvariantCulture);
        var options = new NemesisOptions
        {
            SluiceDll = SluiceProcess.SluiceDll,
            WorkDirectory = dir.Path,
            Faults = NemesisOptions.ParsePlan("leader-kill:1,controller-kill:1,pause:1,partition:2,etcd-kill:1,disk-full:1,slow-follower:1"),
            Hold = TimeSpan.FromSeconds(4), // past the 3 s broker lease: a pause and a partition move leaderships
            Quiet = TimeSpan.FromSeconds(1),
            Publishers = 4,
            TmpfsBytes = 256L << 20,
            Log = TextWriter.Synchronized(log),
        };

        NemesisResult result;
        try
        {
            result = await NemesisRun.RunAsync(options);
        }
        finally
        {
            output.WriteLine(log.ToString());
        }

        output.WriteLine(Report.Markdown(result) + "\n" + Report.Timeline(result));
        Assert.True(result.Violations.Count == 0, Report.Markdown(result) + LogTails(dir.Path));
        Assert.Empty(result.Crashes);
        Assert.All(result.Faults, f => Assert.NotNull(f.RecoveredMs));
        Assert.True(result.Acks.Count > 0 && result.MessagesStored >= result.Acks.Count, Report.Markdown(result));
    }

    private static string LogTails(string directory)
    {
        var text = new StringBuilder();
        foreach (var file in Directory.GetFiles(directory, "b*.log").Order(StringComparer.Ordinal))
        {
            var lines = File.ReadAllLines(file).Where(l => !l.StartsWith("   at ", StringComparison.Ordinal)).ToList();
            text.Append("\n--- ").Append(Path.GetFileName(file)).Append(" (last 40 lines) ---\n").AppendJoin('\n', lines.Skip(Math.Max(0, lines.Count - 40)));
        }

        return text.ToString();
    }
}
