using System.Collections.Concurrent;
using System.Diagnostics;
using Sluice.Client.Grpc;
using Sluice.Protocol.Health;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Hosting;

/// <summary>
/// The real `sluice serve` as a child process on 127.0.0.1, started through a wrapper command (prlimit, setpriv)
/// that sets the limits the test is about. Its output is kept, so a test can look for the warnings it logged.
/// </summary>
internal sealed class ChildServer : IAsyncDisposable
{
    /// <summary>The unprivileged user (nobody) that a child runs as when root's exemptions would hide a limit.</summary>
    public const int NobodyId = 65534;

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private ChildServer(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>The server's process id (the wrappers exec it in place).</summary>
    public int ProcessId => _process.Id;

    /// <summary>Every line the child wrote to stdout or stderr so far.</summary>
    public IReadOnlyList<string> Output => [.. _output];

    /// <summary>The last lines of output, for failure messages.</summary>
    public string OutputText => string.Join("\n", _output.TakeLast(20));

    /// <summary>
    /// Writes a config (127.0.0.1, a free port, a data dir in <paramref name="dir"/>) and starts the server under
    /// <paramref name="wrapper"/>, then waits until its health check answers SERVING. With
    /// <paramref name="asNobody"/>, the binaries are copied into <paramref name="dir"/> and the directory is opened
    /// to every user, so a child that dropped its privileges can read them and write its data.
    /// </summary>
    public static async Task<ChildServer> StartAsync(TempDirectory dir, IReadOnlyList<string> wrapper, bool asNobody = false, string extraConfig = "")
    {
        var port = CrashRecoveryTests.FreePort();
        var cli = CrashRecoveryTests.CliPath();
        if (asNobody)
        {
            var bin = dir.Sub("bin");
            CopyDirectory(Path.GetDirectoryName(cli)!, bin);
            cli = Path.Combine(bin, Path.GetFileName(cli));
        }

        var config = dir.Sub("sluice.yaml");
        await File.WriteAllTextAsync(config, $"host: 127.0.0.1\nport: {port}\ndata.dir: {dir.Sub("data")}\nlogging.level: warn\n{extraConfig}");
        if (asNobody)
        {
            await RunAsync("chmod", "-R", "a+rwX", dir.Path);
        }

        var start = new ProcessStartInfo(wrapper.Count > 0 ? wrapper[0] : "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in wrapper.Skip(1).Concat(wrapper.Count > 0 ? ["dotnet"] : []).Concat([cli, "serve", "--config", config]))
        {
            start.ArgumentList.Add(arg);
        }

        // A child that dropped root must not look for its caches or temp files where only root may write.
        start.Environment["HOME"] = dir.Path;
        start.Environment["TMPDIR"] = dir.Path;
        start.Environment["DOTNET_CLI_HOME"] = dir.Path;

        var process = Process.Start(start)!;
        var child = new ChildServer(process, port);
        process.OutputDataReceived += (_, e) => child.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => child.Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await child.WaitServingAsync(TimeSpan.FromSeconds(60));
            return child;
        }
        catch
        {
            await child.DisposeAsync();
            throw;
        }
    }

    /// <summary>Waits until a fresh connection's health check answers SERVING; fails at once if the child exited.</summary>
    public async Task WaitServingAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            Assert.False(_process.HasExited, $"sluice serve exited (code {(_process.HasExited ? _process.ExitCode : 0)}); its output:\n{OutputText}");
            using (var channel = new GrpcChannel(new Uri($"http://127.0.0.1:{Port}")))
            {
                try
                {
                    var health = await channel.UnaryAsync("/grpc.health.v1.Health/Check", new HealthCheckRequest { Service = "proto.API" }, HealthCheckResponse.Parser, TimeSpan.FromSeconds(2));
                    if (health.Status == HealthCheckResponse.Types.ServingStatus.Serving)
                    {
                        return;
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or Sluice.Protocol.Grpc.GrpcException or OperationCanceledException or IOException)
                {
                    // Not listening yet, or refused while full: try again.
                }
            }

            Assert.True(DateTime.UtcNow < deadline, $"sluice serve did not serve within {timeout.TotalSeconds} s; its output:\n{OutputText}");
            await Task.Delay(100);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    private void Keep(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }

        foreach (var sub in Directory.GetDirectories(from))
        {
            CopyDirectory(sub, Path.Combine(to, Path.GetFileName(sub)));
        }
    }

    private static async Task RunAsync(string command, params string[] args)
    {
        var start = new ProcessStartInfo(command) { UseShellExecute = false, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{command} {string.Join(' ', args)} failed: {error}");
    }
}
