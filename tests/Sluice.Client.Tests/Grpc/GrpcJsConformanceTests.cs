using Sluice.TestKit;

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
        await using var api = await TestApiServer.StartAsync();
        var result = await ConformanceRunner.RunNodeAsync("conformance.js", [$"127.0.0.1:{api.Server.Port}", "--suite=testserver"]);
        Assert.True(result.ExitCode == 0, result.ToString());

        // grpc-js's cancel must have reached our handler as a cancellation.
        Assert.True(api.SubscribeCancelled.IsCompleted || await Task.WhenAny(api.SubscribeCancelled, Task.Delay(TimeSpan.FromSeconds(30))) == api.SubscribeCancelled, "the server handler never saw grpc-js's cancel\n" + result);
    }
}
