using System.Text.RegularExpressions;
using Sluice.TestKit;

namespace Sluice.Cli.Tests;

public class ClusterCommandTests
{
    [Fact]
    public async Task Cluster_runs_etcd_and_two_brokers_that_answer_and_SIGTERM_stops_every_child()
    {
        using var dir = new TempDirectory("sluice-cluster");
        await using var cluster = SluiceProcess.Start("cluster", "--brokers", "2", "--base-port", "0", "--data-dir", dir.Path);
        await cluster.WaitForLineAsync("cluster up: 2 broker(s)", TimeSpan.FromSeconds(90));
        var pids = new List<int> { Pid(await cluster.WaitForLineAsync("etcd http://127.0.0.1:")) };
        foreach (var name in new[] { "b1", "b2" })
        {
            var line = await cluster.WaitForLineAsync(name + " 127.0.0.1:");
            pids.Add(Pid(line));
            var address = Regex.Match(line, @"127\.0\.0\.1:\d+").Value;
            var (code, metadata) = await SluiceProcess.RunAsync("metadata", "-o", "json", "-s", address);
            await using (metadata)
            {
                Assert.True(code == 0, metadata.Transcript());
                Assert.Contains($"\"id\":\"{name}\"", Assert.Single(metadata.Stdout), StringComparison.Ordinal);
            }
        }

        Assert.True(Directory.Exists(Path.Combine(dir.Path, "etcd")));
        Assert.True(Directory.Exists(Path.Combine(dir.Path, "b1")) && Directory.Exists(Path.Combine(dir.Path, "b2")));

        await cluster.TerminateAsync();
        Assert.Equal(0, await cluster.WaitForExitAsync());
        Assert.Contains(cluster.Stdout, l => l == "cluster stopped");
        Assert.All(pids, pid => Assert.False(Directory.Exists($"/proc/{pid}"), $"child {pid} is still running"));
    }

    private static int Pid(string line) => int.Parse(Regex.Match(line, @"\(pid (\d+)\)").Groups[1].Value);
}
