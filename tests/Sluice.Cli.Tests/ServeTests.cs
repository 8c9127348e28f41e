using System.Net;
using Sluice.TestKit;

namespace Sluice.Cli.Tests;

public class ServeTests
{
    [Fact]
    public async Task A_Liftbridge_launch_line_serves_until_SIGTERM_and_exits_0()
    {
        using var dir = new TempDirectory("sluice-cli");
        var config = dir.Sub("liftbridge.yaml");
        await File.WriteAllTextAsync(config, """
            host: 127.0.0.1
            logging:
              level: info
            streams.retention.max.age: 24h
            clustering.raft.snapshot.retain: 3
            telemetry.enabled: true
            """);
        var data = dir.Sub("data");

        await using var sluice = SluiceProcess.Start(
            "serve", "-c", config, "--port", "0", "--data-dir", data, "--level", "debug",
            "--raft-bootstrap-seed");
        var listening = await sluice.WaitForLineAsync("listening on 127.0.0.1:");

        foreach (var key in new[] { "clustering.raft.bootstrap.seed", "clustering.raft.snapshot.retain", "telemetry.enabled" })
        {
            Assert.Single(sluice.Stdout, l => l.Contains($"\"{key}\"", StringComparison.Ordinal) && l.Contains("ignored for now", StringComparison.Ordinal));
        }

        Assert.Contains(sluice.Stdout, l => l.Contains("data dir: " + data, StringComparison.Ordinal));
        Assert.Contains(sluice.Stdout, l => l.Contains("durability: never", StringComparison.Ordinal));
        var serverId = (await File.ReadAllTextAsync(Path.Combine(data, "server-id"))).Trim();
        Assert.Contains(sluice.Stdout, l => l.Contains("server id: " + serverId, StringComparison.Ordinal));

        // The real API answers FetchMetadata.
        var port = int.Parse(new string(listening[(listening.IndexOf("127.0.0.1:", StringComparison.Ordinal) + 10)..].TakeWhile(char.IsAsciiDigit).ToArray()));
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port}/proto.API/FetchMetadata")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent([0, 0, 0, 0, 0]),
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        using var response = await http.SendAsync(request);
        Assert.NotEmpty(await response.Content.ReadAsByteArrayAsync());
        Assert.Equal("0", Assert.Single(response.TrailingHeaders.GetValues("grpc-status")));

        await sluice.TerminateAsync();
        Assert.Equal(0, await sluice.WaitForExitAsync());
        Assert.Contains(sluice.Stdout, l => l.Contains("stopped", StringComparison.Ordinal));
        Assert.Empty(sluice.Stderr);
    }

    [Fact]
    public async Task Go_style_flags_without_a_subcommand_start_the_server_too()
    {
        using var dir = new TempDirectory("sluice-cli");
        await using var sluice = SluiceProcess.Start(
            "-data-dir", dir.Path, "-p", "0", "--host", "127.0.0.1", "-id", "broker-1", "--ns", "tenant", "-l", "info");
        await sluice.WaitForLineAsync("listening on 127.0.0.1:");
        Assert.Contains(sluice.Stdout, l => l.Contains("server id: broker-1", StringComparison.Ordinal));

        await sluice.TerminateAsync();
        Assert.Equal(0, await sluice.WaitForExitAsync());
    }

    [Fact]
    public async Task A_port_in_use_exits_1_with_one_line_on_stderr()
    {
        using var dir = new TempDirectory("sluice-cli");
        using var occupier = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        occupier.Start();
        var port = ((IPEndPoint)occupier.LocalEndpoint).Port;

        var (code, sluice) = await SluiceProcess.RunAsync("serve", "--host", "127.0.0.1", "-p", port.ToString(), "-d", dir.Path);
        await using (sluice)
        {
            Assert.Equal(1, code);
            var line = Assert.Single(sluice.Stderr);
            Assert.Contains($"Cannot listen on 127.0.0.1:{port}", line);
        }
    }
}
