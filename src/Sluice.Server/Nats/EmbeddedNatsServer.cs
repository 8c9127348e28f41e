using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Sluice.Server.Configuration;

namespace Sluice.Server.Nats;

/// <summary>
/// <c>nats.embedded</c>: Sluice cannot link nats-server in as Liftbridge does, so it runs the <c>nats-server</c>
/// found on PATH as a child process on 127.0.0.1 (the port of the first <c>nats.servers</c> URL, else a free
/// one; with <c>nats.embedded.config</c> the file decides and only <c>-c</c> is passed), waits until it
/// accepts connections, and kills it by PID on shutdown.
/// </summary>
internal sealed partial class EmbeddedNatsServer : IAsyncDisposable
{
    /// <summary>How long nats-server may take to listen; it usually needs a few milliseconds.</summary>
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(15);

    private readonly Process _process;
    private readonly string _portsDirectory;
    private readonly ILogger _logger;

    private EmbeddedNatsServer(Process process, string portsDirectory, ILogger logger)
    {
        _process = process;
        _portsDirectory = portsDirectory;
        _logger = logger;
    }

    /// <summary>PID of the child nats-server.</summary>
    public int ProcessId { get; private set; }

    /// <summary>The client URL the broker connects to.</summary>
    public string Url { get; private set; } = string.Empty;

    /// <summary>The nats-server binary on PATH, or null.</summary>
    public static string? FindBinary() => FindOnPath("nats-server");

    private static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    public static async Task<EmbeddedNatsServer> StartAsync(NatsConnectionSettings settings, bool logOutput, ILogger logger, CancellationToken cancellationToken)
    {
        var binary = FindBinary() ?? throw new NatsAttachmentException(
            "nats.embedded is set but nats-server was not found on PATH. Install it (apt-get install nats-server) or run one yourself and set nats.servers.");
        var portsDirectory = Directory.CreateTempSubdirectory("sluice-nats-").FullName;
        var info = new ProcessStartInfo(binary) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        // A terminal's Ctrl-C signals its whole foreground process group: nats-server would exit by itself before the broker
        // closes its connection, and every requested stop would log a lost connection. In a session of its own it stops only
        // when DisposeAsync stops it. setsid execs nats-server in place (this child is no group leader), so the PID is nats-server's.
        if (FindOnPath("setsid") is { } setsid)
        {
            info.FileName = setsid;
            info.ArgumentList.Add(binary);
        }

        if (settings.EmbeddedConfig.Length > 0)
        {
            if (!File.Exists(settings.EmbeddedConfig))
            {
                throw new NatsAttachmentException($"nats.embedded.config: file not found: {settings.EmbeddedConfig}");
            }

            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(Path.GetFullPath(settings.EmbeddedConfig));
        }
        else
        {
            info.ArgumentList.Add("-a");
            info.ArgumentList.Add("127.0.0.1");
            info.ArgumentList.Add("-p");
            info.ArgumentList.Add(ConfiguredPort(settings)?.ToString(CultureInfo.InvariantCulture) ?? FreePort().ToString(CultureInfo.InvariantCulture));
        }

        // nats-server writes the ports it listens on here: the one way to learn the port a config file chose.
        info.ArgumentList.Add("--ports_file_dir");
        info.ArgumentList.Add(portsDirectory);

        var process = new Process { StartInfo = info };
        var server = new EmbeddedNatsServer(process, portsDirectory, logger);
        var output = new System.Text.StringBuilder();
        DataReceivedEventHandler onLine = (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (output)
            {
                if (output.Length < 16 * 1024)
                {
                    output.AppendLine(e.Data);
                }
            }

            if (logOutput)
            {
                LogOutput(logger, e.Data);
            }
        };
        process.OutputDataReceived += onLine;
        process.ErrorDataReceived += onLine;
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            process.Dispose();
            throw new NatsAttachmentException($"Cannot run {binary}: {ex.Message}", ex);
        }

        server.ProcessId = process.Id;
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        try
        {
            var port = await WaitForPortAsync(process, portsDirectory, () => { lock (output) { return output.ToString(); } }, cancellationToken).ConfigureAwait(false);
            server.Url = $"nats://127.0.0.1:{port}";
            LogStarted(logger, server.ProcessId, server.Url);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static int? ConfiguredPort(NatsConnectionSettings settings)
    {
        if (settings.Servers.Count == 0)
        {
            return null;
        }

        var url = settings.Servers[0].Contains("://", StringComparison.Ordinal) ? settings.Servers[0] : "nats://" + settings.Servers[0];
        return Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Port > 0 ? uri.Port : null;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Waits for the ports file, then for the port to accept a TCP connection.</summary>
    private static async Task<int> WaitForPortAsync(Process process, string portsDirectory, Func<string> output, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + StartTimeout;
        int? port = null;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (process.HasExited)
            {
                throw new NatsAttachmentException($"nats-server exited with code {process.ExitCode} before accepting connections:\n{output()}");
            }

            port ??= ReadPortsFile(portsDirectory);
            if (port is { } p && await AcceptsAsync(p, cancellationToken).ConfigureAwait(false))
            {
                return p;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new NatsAttachmentException($"nats-server did not accept connections within {StartTimeout.TotalSeconds:0} s:\n{output()}");
            }

            // Retry pace while nats-server starts; readiness itself is the condition.
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    private static int? ReadPortsFile(string directory)
    {
        foreach (var file in Directory.EnumerateFiles(directory, "*.ports"))
        {
            try
            {
                using var json = JsonDocument.Parse(File.ReadAllText(file));
                if (json.RootElement.TryGetProperty("nats", out var urls) && urls.GetArrayLength() > 0
                    && Uri.TryCreate(urls[0].GetString(), UriKind.Absolute, out var uri) && uri.Port > 0)
                {
                    return uri.Port;
                }
            }
            catch (Exception ex) when (ex is IOException or JsonException)
            {
                // Being written right now; read it again on the next pass.
            }
        }

        return null;
    }

    private static async Task<bool> AcceptsAsync(int port, CancellationToken cancellationToken)
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, port, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Kills the child by PID and waits for it to exit.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
            }

            await _process.WaitForExitAsync().ConfigureAwait(false);
            LogStopped(_logger, ProcessId);
        }
        catch (InvalidOperationException)
        {
            // Never started.
        }
        finally
        {
            _process.Dispose();
            try
            {
                Directory.Delete(_portsDirectory, recursive: true);
            }
            catch (IOException)
            {
                // A leftover temp directory is harmless.
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Embedded nats-server (pid {Pid}) listening on {Url}")]
    private static partial void LogStarted(ILogger logger, int pid, string url);

    [LoggerMessage(Level = LogLevel.Information, Message = "Embedded nats-server (pid {Pid}) stopped")]
    private static partial void LogStopped(ILogger logger, int pid);

    [LoggerMessage(Level = LogLevel.Information, Message = "nats-server: {Line}")]
    private static partial void LogOutput(ILogger logger, string line);
}
