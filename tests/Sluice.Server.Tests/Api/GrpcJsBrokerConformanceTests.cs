using System.Diagnostics;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Api;

/// <summary>
/// Runs tests/conformance/broker.js (grpc-js, an independent gRPC implementation driving the API as
/// Liftbridge's Node client does) against the real broker. Needs node and `npm ci` in tests/conformance.
/// </summary>
public sealed class GrpcJsBrokerConformanceTests
{
    [Fact]
    public async Task Grpc_js_drives_the_real_broker_end_to_end()
    {
        var conformance = Path.Combine(FindRepoRoot(), "tests", "conformance");
        Assert.True(
            Directory.Exists(Path.Combine(conformance, "node_modules", "@grpc", "grpc-js")),
            $"grpc-js is not installed: run `npm ci` in {conformance} (test.sh does this).");

        await using var h = await StartAsync();
        var start = new ProcessStartInfo("node", ["broker.js", $"127.0.0.1:{h.Server.Port}"])
        {
            WorkingDirectory = conformance,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var node = Process.Start(start) ?? throw new InvalidOperationException("could not start node");
        var stdout = node.StandardOutput.ReadToEndAsync();
        var stderr = node.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        try
        {
            await node.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            node.Kill(entireProcessTree: true);
            throw;
        }

        var output = $"node exit code {node.ExitCode}\n{await stdout}\n{await stderr}";
        Assert.True(node.ExitCode == 0, output);
        Assert.Contains("9/9 passed", output, StringComparison.Ordinal);
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Sluice.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"Sluice.slnx not found above {AppContext.BaseDirectory}");
    }
}
