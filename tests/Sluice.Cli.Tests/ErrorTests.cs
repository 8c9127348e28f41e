using System.Net;
using System.Net.Sockets;

namespace Sluice.Cli.Tests;

public class ErrorTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    [Theory]
    [InlineData("sub", "nosuch", "--from", "earliest")]
    [InlineData("pub", "nosuch", "value")]
    [InlineData("stream", "describe", "nosuch")]
    [InlineData("stream", "readonly", "nosuch")]
    public async Task A_missing_stream_exits_1_with_one_line(params string[] args)
    {
        var (code, sluice) = await broker.RunAsync(args);
        await using (sluice)
        {
            Assert.Equal(1, code);
            Assert.Equal("sluice: stream nosuch does not exist", Assert.Single(sluice.Stderr));
            Assert.Empty(sluice.Stdout);
        }
    }

    [Fact]
    public async Task An_unreachable_server_exits_1_naming_it()
    {
        var port = ClosedPort();
        var (code, sluice) = await SluiceProcess.RunAsync("stream", "list", "--servers", $"127.0.0.1:{port}");
        await using (sluice)
        {
            Assert.Equal(1, code);
            Assert.StartsWith($"sluice: cannot reach 127.0.0.1:{port}: ", Assert.Single(sluice.Stderr), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task SLUICE_SERVERS_is_used_when_no_flag_is_given()
    {
        var port = ClosedPort();
        var environment = new Dictionary<string, string> { ["SLUICE_SERVERS"] = $"127.0.0.1:{port}" };
        await using (var unreachable = SluiceProcess.Start(["metadata"], stdin: null, environment))
        {
            Assert.Equal(1, await unreachable.WaitForExitAsync());
            Assert.StartsWith($"sluice: cannot reach 127.0.0.1:{port}: ", Assert.Single(unreachable.Stderr), StringComparison.Ordinal);
        }

        environment["SLUICE_SERVERS"] = broker.Servers;
        await using var reachable = SluiceProcess.Start(["metadata", "-o", "json"], stdin: null, environment);
        Assert.Equal(0, await reachable.WaitForExitAsync());
        Assert.Contains(broker.Server.ServerId, Assert.Single(reachable.Stdout), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("stream", "create", "no-subject")]
    [InlineData("sub", "s", "--from", "yesterday")]
    [InlineData("sub", "s", "--from", "ago:forever")]
    [InlineData("pub", "s", "v", "--partition", "1", "--round-robin")]
    [InlineData("pub", "s", "v", "--ack-policy", "sometimes")]
    [InlineData("pub", "s", "hi", "--parttion", "1")]
    [InlineData("pub", "s", "-x")]
    [InlineData("pub", "s", "v", "--input", "rot13")]
    [InlineData("sub", "s", "--idle", "soon")]
    [InlineData("stream", "create", "s", "--subject", "s", "--partitons", "2")]
    [InlineData("stream", "pause", "s", "--partitions", "one")]
    [InlineData("stream", "create", "s", "--subject", "s", "--retention-max-age", "5 days")]
    [InlineData("stream", "list", "--output", "yaml")]
    [InlineData("stream", "frobnicate")]
    public async Task Bad_arguments_exit_2_before_connecting(params string[] args)
    {
        // Pointed at a closed port: a usage error must be reported without trying the network.
        var (code, sluice) = await SluiceProcess.RunAsync([.. args, "--servers", $"127.0.0.1:{ClosedPort()}"]);
        await using (sluice)
        {
            Assert.Equal(2, code);
            Assert.StartsWith("sluice: ", sluice.Stderr[0], StringComparison.Ordinal);
            Assert.DoesNotContain(sluice.Stderr, l => l.Contains("cannot reach", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task A_misspelt_pub_flag_exits_2_and_publishes_nothing()
    {
        await broker.RunOkAsync("stream", "create", "typo", "--subject", "typo");
        var (code, pub) = await broker.RunAsync("pub", "typo", "hi", "--parttion", "1");
        await using (pub)
        {
            Assert.Equal(2, code);
            Assert.StartsWith("sluice: unknown flag --parttion", pub.Stderr[0], StringComparison.Ordinal);
            Assert.Empty(pub.Stdout);
        }

        Assert.Empty(await broker.RunOkAsync("sub", "typo", "--from", "earliest", "--stop-at-latest"));
    }

    [Fact]
    public async Task A_bad_header_exits_2()
    {
        await broker.RunOkAsync("stream", "create", "headers", "--subject", "headers");
        var (code, sluice) = await broker.RunAsync("pub", "headers", "v", "--header", "novalue");
        await using (sluice)
        {
            Assert.Equal(2, code);
            Assert.Equal("sluice: --header \"novalue\" is not name=value", Assert.Single(sluice.Stderr));
        }
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
