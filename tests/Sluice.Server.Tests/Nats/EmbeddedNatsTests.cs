using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using NATS.Client.Core;
using Sluice.Client.Grpc;
using Sluice.Protocol.Api;
using Sluice.Protocol.Health;
using Sluice.TestKit;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Nats;

/// <summary>`sluice serve --embedded-nats` through the built CLI, as an operator runs it.</summary>
public sealed partial class EmbeddedNatsTests
{
    [Fact]
    public async Task Embedded_nats_serves_captures_a_publish_and_is_stopped_with_the_server()
    {
        using var dir = new TempDirectory("sluice-embedded");
        var port = FreePort();
        var natsPort = FreePort();
        await using var child = CliProcess.Start(null, "serve", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--host", "127.0.0.1",
            "--data-dir", dir.Sub("data"), "--embedded-nats", "--nats-servers", $"nats://127.0.0.1:{natsPort}");
        using var channel = new GrpcChannel(new Uri($"http://127.0.0.1:{port}"));
        await WaitServingAsync(channel, child);

        var pid = int.Parse(EmbeddedPid().Match(child.Output).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.False(Process.GetProcessById(pid).HasExited);

        await channel.UnaryAsync("/proto.API/CreateStream", new CreateStreamRequest { Name = "emb", Subject = "emb" }, CreateStreamResponse.Parser, CallTimeout);
        await using var publisher = new NatsConnection(new NatsOpts { Url = $"nats://127.0.0.1:{natsPort}" });
        // The broker's SUB for the new stream cannot be flushed from here: publish until the stream has it.
        await WaitUntilAsync(
            async () =>
            {
                await publisher.PublishAsync("emb", Encoding.UTF8.GetBytes("hi"));
                await publisher.PingAsync();
                var metadata = await channel.UnaryAsync("/proto.API/FetchPartitionMetadata", new FetchPartitionMetadataRequest { Stream = "emb" }, FetchPartitionMetadataResponse.Parser, CallTimeout);
                return metadata.Metadata.NewestOffset >= 0;
            },
            "a NATS publish to be captured");

        Assert.Equal(0, await child.TerminateAsync());
        Assert.True(ProcessGone(pid), $"the embedded nats-server (pid {pid}) outlived sluice");
    }

    [Fact]
    public async Task Embedded_nats_without_nats_server_installed_fails_startup_with_an_install_hint()
    {
        using var dir = new TempDirectory("sluice-embedded-missing");
        Directory.CreateDirectory(dir.Sub("empty-path"));
        await using var child = CliProcess.Start(dir.Sub("empty-path"), "serve", "--port", "0", "--data-dir", dir.Sub("data"), "--embedded-nats");
        Assert.Equal(1, await child.WaitForExitAsync());
        Assert.Contains("apt-get install nats-server", child.Output, StringComparison.Ordinal);
    }

    private static bool ProcessGone(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return process.HasExited;
        }
        catch (ArgumentException)
        {
            return true;
        }
    }

    private static async Task WaitServingAsync(GrpcChannel channel, CliProcess child) =>
        await WaitUntilAsync(
            async () =>
            {
                Assert.False(child.HasExited, "sluice serve exited early:\n" + child.Output);
                try
                {
                    var health = await channel.UnaryAsync("/grpc.health.v1.Health/Check", new HealthCheckRequest { Service = "proto.API" }, HealthCheckResponse.Parser, TimeSpan.FromSeconds(1));
                    return health.Status == HealthCheckResponse.Types.ServingStatus.Serving;
                }
                catch (Exception ex) when (ex is HttpRequestException or Sluice.Protocol.Grpc.GrpcException or OperationCanceledException)
                {
                    return false;
                }
            },
            "sluice serve to answer health checks",
            TimeSpan.FromSeconds(60));

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [GeneratedRegex(@"Embedded nats-server \(pid (\d+)\)")]
    private static partial Regex EmbeddedPid();

    /// <summary>`dotnet sluice.dll ...` with its output collected; stopped by PID.</summary>
    private sealed class CliProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();

        private CliProcess(Process process) => _process = process;

        public bool HasExited => _process.HasExited;

        public string Output
        {
            get
            {
                lock (_output)
                {
                    return _output.ToString();
                }
            }
        }

        public static CliProcess Start(string? path, params string[] args)
        {
            var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
            var start = new ProcessStartInfo(dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add(CliPath());
            foreach (var arg in args)
            {
                start.ArgumentList.Add(arg);
            }

            foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("SLUICE_", StringComparison.OrdinalIgnoreCase) || k.StartsWith("LIFTBRIDGE_", StringComparison.OrdinalIgnoreCase)).ToList())
            {
                start.Environment.Remove(name);
            }

            if (path is not null)
            {
                start.Environment["PATH"] = path;
            }

            var process = new Process { StartInfo = start };
            var cli = new CliProcess(process);
            process.OutputDataReceived += (_, e) => cli.Append(e.Data);
            process.ErrorDataReceived += (_, e) => cli.Append(e.Data);
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return cli;
        }

        public async Task<int> WaitForExitAsync()
        {
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            _process.WaitForExit(); // drains the redirected output
            return _process.ExitCode;
        }

        /// <summary>SIGTERM, as a service manager stops it.</summary>
        public async Task<int> TerminateAsync()
        {
            using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }

            return await WaitForExitAsync();
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
        }

        private void Append(string? line)
        {
            if (line is not null)
            {
                lock (_output)
                {
                    _output.AppendLine(line);
                }
            }
        }

        private static string CliPath()
        {
            // tests/Sluice.Server.Tests/bin/<Configuration>/<framework>/ → src/Sluice.Cli/bin/<Configuration>/<framework>/sluice.dll
            var baseDir = new DirectoryInfo(AppContext.BaseDirectory);
            var root = baseDir.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
            var path = Path.Combine(root, "src", "Sluice.Cli", "bin", baseDir.Parent.Name, baseDir.Name, "sluice.dll");
            Assert.True(File.Exists(path), $"the sluice CLI was not built at {path}");
            return path;
        }
    }
}
