using System.Net;
using System.Text.RegularExpressions;
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
        await sluice.WaitForLineAsync("listening on 127.0.0.1:");

        foreach (var key in new[] { "clustering.raft.bootstrap.seed", "clustering.raft.snapshot.retain", "telemetry.enabled" })
        {
            Assert.Single(sluice.Stdout, l => l.Contains($"\"{key}\"", StringComparison.Ordinal) && l.Contains("ignored for now", StringComparison.Ordinal));
        }

        Assert.Contains(sluice.Stdout, l => l.Contains("data dir: " + data, StringComparison.Ordinal));
        Assert.Contains(sluice.Stdout, l => l.Contains("durability: never", StringComparison.Ordinal));
        var serverId = (await File.ReadAllTextAsync(Path.Combine(data, "server-id"))).Trim();
        await sluice.WaitForLineAsync("server id: " + serverId);

        // The served broker answers the CLI's own data commands.
        var port = int.Parse(Regex.Match(await sluice.WaitForLineAsync("serving proto.API on 127.0.0.1:"), @"127\.0\.0\.1:(\d+)").Groups[1].Value);
        var servers = $"127.0.0.1:{port}";
        var (createCode, create) = await SluiceProcess.RunAsync("stream", "create", "launched", "--subject", "launched", "-s", servers);
        await using (create)
        {
            Assert.True(createCode == 0, create.Transcript());
        }

        var (metadataCode, metadata) = await SluiceProcess.RunAsync("metadata", "-o", "json", "-s", servers);
        await using (metadata)
        {
            Assert.True(metadataCode == 0, metadata.Transcript());
            Assert.Contains($"\"id\":\"{serverId}\"", Assert.Single(metadata.Stdout), StringComparison.Ordinal);
            Assert.Contains("\"name\":\"launched\"", metadata.Stdout[0], StringComparison.Ordinal);
        }

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
        await sluice.WaitForLineAsync("server id: broker-1");

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
            Assert.Contains($"Cannot listen on 127.0.0.1:{port}: Address already in use", line);
        }
    }

    [Fact]
    public async Task A_clean_shutdown_with_embedded_NATS_logs_no_error()
    {
        using var dir = new TempDirectory("sluice-cli");
        await using var sluice = SluiceProcess.Start("serve", "--embedded-nats", "--host", "127.0.0.1", "-p", "0", "-d", dir.Path);
        await sluice.WaitForLineAsync("serving proto.API on 127.0.0.1:");
        Assert.Contains(sluice.Stdout, l => l.Contains("Attached to NATS", StringComparison.Ordinal));

        await sluice.TerminateAsync();
        Assert.Equal(0, await sluice.WaitForExitAsync());
        Assert.Contains(sluice.Stdout, l => l.Contains("Embedded nats-server (pid", StringComparison.Ordinal) && l.EndsWith("stopped", StringComparison.Ordinal));
        Assert.DoesNotContain(sluice.Stdout.Concat(sluice.Stderr), l => l.Contains(" fail: ", StringComparison.Ordinal) || l.Contains(" crit: ", StringComparison.Ordinal));
        Assert.Empty(sluice.Stderr);
    }

    [Fact]
    public async Task Ctrl_c_in_a_terminal_stops_the_server_and_its_embedded_NATS_without_a_lost_connection()
    {
        using var dir = new TempDirectory("sluice-cli");
        await using var sluice = SluiceProcess.StartAsProcessGroup("serve", "--embedded-nats", "--host", "127.0.0.1", "-p", "0", "-d", dir.Path);
        await sluice.WaitForLineAsync("serving proto.API on 127.0.0.1:");

        // The terminal signals the whole foreground group; nats-server must be stopped by the broker, not by the signal.
        await sluice.InterruptProcessGroupAsync();
        Assert.Equal(0, await sluice.WaitForExitAsync());
        Assert.Contains(sluice.Stdout, l => l.Contains("Embedded nats-server (pid", StringComparison.Ordinal) && l.EndsWith("stopped", StringComparison.Ordinal));
        Assert.DoesNotContain(sluice.Stdout.Concat(sluice.Stderr), l => l.Contains(" warn: ", StringComparison.Ordinal) || l.Contains(" fail: ", StringComparison.Ordinal));
        Assert.Empty(sluice.Stderr);
    }
}

public class ServeMonitorTests
{
    [Fact]
    public async Task The_monitor_listen_flag_opens_the_monitoring_port_beside_the_gRPC_port()
    {
        using var dir = new TempDirectory("sluice-cli-monitor");
        await using var sluice = SluiceProcess.Start("serve", "--host", "127.0.0.1", "-p", "0", "-d", dir.Sub("data"), "--monitor-listen", "127.0.0.1:0");
        var line = await sluice.WaitForLineAsync("Monitoring port listening on http://127.0.0.1:");
        var port = int.Parse(Regex.Match(line, @"127\.0\.0\.1:(\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        await sluice.WaitForLineAsync("serving proto.API on 127.0.0.1:");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        Assert.Equal("ready\n", await http.GetStringAsync($"http://127.0.0.1:{port}/readyz"));
        await sluice.TerminateAsync();
        Assert.Equal(0, await sluice.WaitForExitAsync());
    }

    [Fact]
    public async Task A_monitoring_port_in_use_stops_the_start_with_status_1_naming_it()
    {
        using var taken = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        using var dir = new TempDirectory("sluice-cli-monitor");
        var (code, sluice) = await SluiceProcess.RunAsync("serve", "--host", "127.0.0.1", "-p", "0", "-d", dir.Sub("data"), "--monitor-listen", $"127.0.0.1:{port}");
        await using (sluice)
        {
            Assert.True(code == 1, sluice.Transcript());
            Assert.Contains(sluice.Stdout.Concat(sluice.Stderr), l => l.Contains($"cannot listen on the monitoring port 127.0.0.1:{port}", StringComparison.Ordinal));
        }
    }
}
