using Sluice.Server.Grpc;
using Sluice.TestKit;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Api;

/// <summary>
/// Runs the broker suites of tests/conformance against the real broker on each HTTP/2 transport, with
/// two gRPC implementations independent of .NET's: grpc-js (broker.js, as Liftbridge's Node client)
/// and grpcio, gRPC's C core (broker.py, as Liftbridge's Python client). Needs node with `npm ci` in
/// tests/conformance, and Debian's python3-grpcio and python3-grpc-tools (test.sh installs them).
/// </summary>
public sealed class BrokerConformanceTests
{
    [Theory]
    [InlineData(GrpcServerTransport.Native)]
    [InlineData(GrpcServerTransport.Kestrel)]
    public async Task Grpc_js_drives_the_real_broker_end_to_end(GrpcServerTransport transport)
    {
        await using var h = await StartAsync(o => o with { GrpcTransport = transport });
        var result = await ConformanceRunner.RunNodeAsync("broker.js", [$"127.0.0.1:{h.Server.Port}"]);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("9/9 passed", result.StandardOutput, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(GrpcServerTransport.Native)]
    [InlineData(GrpcServerTransport.Kestrel)]
    public async Task Grpcio_drives_the_real_broker_end_to_end(GrpcServerTransport transport)
    {
        await using var h = await StartAsync(o => o with { GrpcTransport = transport });
        var result = await ConformanceRunner.RunPythonAsync("broker.py", [$"127.0.0.1:{h.Server.Port}"]);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("11/11 passed", result.StandardOutput, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(GrpcServerTransport.Native, false)]
    [InlineData(GrpcServerTransport.Native, true)]
    [InlineData(GrpcServerTransport.Kestrel, true)]
    public async Task Grpcio_drives_the_real_broker_over_tls(GrpcServerTransport transport, bool mutual)
    {
        using var dir = new TempDirectory();
        var certificate = TestCertificate.CreateSelfSigned(dir); // also the CA both sides trust, and the client's certificate
        await using var h = await StartAsync(o => o with
        {
            GrpcTransport = transport,
            Tls = o.Tls with { Cert = certificate.CertificatePath, Key = certificate.KeyPath, ClientAuthEnabled = mutual, ClientAuthCa = mutual ? certificate.CertificatePath : "" },
        });
        string[] client = mutual ? ["--cert", certificate.CertificatePath, "--key", certificate.KeyPath] : [];
        var result = await ConformanceRunner.RunPythonAsync("broker.py", [$"127.0.0.1:{h.Server.Port}", "--ca", certificate.CertificatePath, .. client]);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("11/11 passed", result.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Grpcio_without_a_client_certificate_is_refused_when_mutual_tls_is_required()
    {
        using var dir = new TempDirectory();
        var certificate = TestCertificate.CreateSelfSigned(dir);
        await using var h = await StartAsync(o => o with
        {
            Tls = o.Tls with { Cert = certificate.CertificatePath, Key = certificate.KeyPath, ClientAuthEnabled = true, ClientAuthCa = certificate.CertificatePath },
        });
        var result = await ConformanceRunner.RunPythonAsync("broker.py", [$"127.0.0.1:{h.Server.Port}", "--ca", certificate.CertificatePath]);
        Assert.NotEqual(0, result.ExitCode);
        Assert.DoesNotContain("passed", result.StandardOutput, StringComparison.Ordinal);
    }
}
