using System.Diagnostics;

namespace Sluice.Client.Tests.Grpc;

/// <summary>
/// Runs tests/conformance/conformance.js (grpc-js, an independent gRPC implementation) against
/// the in-process test server. Needs node and `npm ci` in tests/conformance (test.sh does it).
/// </summary>
public class GrpcJsConformanceTests
{
    [Fact]
    public async Task Grpc_js_passes_every_conformance_check_against_our_server()
    {
        var conformance = Path.Combine(FindRepoRoot(), "tests", "conformance");
        Assert.True(
            Directory.Exists(Path.Combine(conformance, "node_modules", "@grpc", "grpc-js")),
            $"grpc-js is not installed: run `npm ci` in {conformance} (test.sh does this).");

        await using var api = await TestApiServer.StartAsync();
        var start = new ProcessStartInfo("node", ["conformance.js", $"127.0.0.1:{api.Server.Port}", "--suite=testserver"])
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

        // grpc-js's cancel must have reached our handler as a cancellation.
        Assert.True(api.SubscribeCancelled.IsCompleted || await Task.WhenAny(api.SubscribeCancelled, Task.Delay(TimeSpan.FromSeconds(30))) == api.SubscribeCancelled, "the server handler never saw grpc-js's cancel\n" + output);
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
