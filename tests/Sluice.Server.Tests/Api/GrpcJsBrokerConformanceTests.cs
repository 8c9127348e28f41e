using Sluice.TestKit;
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
        await using var h = await StartAsync();
        var result = await GrpcJsConformanceRunner.RunAsync("broker.js", [$"127.0.0.1:{h.Server.Port}"]);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("9/9 passed", result.StandardOutput, StringComparison.Ordinal);
    }
}
