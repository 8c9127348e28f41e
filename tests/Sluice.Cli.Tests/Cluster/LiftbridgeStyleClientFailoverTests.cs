using Sluice.TestKit;
using Xunit.Abstractions;

namespace Sluice.Cli.Tests.Cluster;

/// <summary>
/// Real brokers, real etcd, and a client that follows go-liftbridge's failover rules (tests/conformance/cluster.py,
/// on grpcio): the partition leader is SIGKILLed twice under publish and subscribe load.
/// </summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class LiftbridgeStyleClientFailoverTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_liftbridge_style_client_publishes_and_subscribes_through_two_leader_kills()
    {
        await using var cluster = await ProcessCluster.StartAsync(3);
        var brokers = cluster.Brokers.Select(b => $"{b.Address}={b.Process!.ProcessId}").ToList();

        ConformanceResult result;
        try
        {
            result = await ConformanceRunner.RunPythonAsync("cluster.py", [.. brokers, "--kills", "2"], TimeSpan.FromSeconds(50));
        }
        catch (TimeoutException e)
        {
            throw new Xunit.Sdk.XunitException(e.Message + "\n" + cluster.LogTails(30));
        }

        output.WriteLine(result.ToString());
        Assert.True(result.ExitCode == 0, result + "\n" + cluster.LogTails(30));
        Assert.Contains("all checks passed", result.StandardOutput, StringComparison.Ordinal);
    }
}
