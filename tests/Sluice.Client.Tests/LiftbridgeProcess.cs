using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Sluice.TestKit;

namespace Sluice.Client.Tests;

/// <summary>
/// A real Liftbridge server (one node, embedded NATS, Raft seed) on 127.0.0.1 as a child process, stopped by PID.
/// Used by <see cref="RealServer"/> when <see cref="BinaryVariable"/> names the binary (scripts/client-vs-liftbridge.sh);
/// the default test command never starts it.
/// </summary>
internal sealed class LiftbridgeProcess : IAsyncDisposable
{
    /// <summary>The environment variable that names the Liftbridge binary and switches RealServer to it.</summary>
    public const string BinaryVariable = "SLUICE_TEST_LIFTBRIDGE_BIN";

    private readonly TempDirectory _dir = new("liftbridge");
    private readonly string _binary;
    private readonly int _listenPort;
    private readonly int _advertisedPort;
    private readonly int _natsPort = FreePort();
    private Process? _process;
    private long _logStart; // where this run's lines begin in the log (a restart appends)

    private LiftbridgeProcess(string binary, int listenPort, int advertisedPort)
    {
        _binary = binary;
        _listenPort = listenPort;
        _advertisedPort = advertisedPort;
    }

    /// <summary>The binary from <see cref="BinaryVariable"/>, or null to use Sluice.</summary>
    public static string? Binary => Environment.GetEnvironmentVariable(BinaryVariable) is { Length: > 0 } path ? path : null;

    public int ListenPort => _listenPort;

    /// <summary>Starts a node listening on a free port; it advertises <paramref name="advertisedPort"/> (a proxy's) when given.</summary>
    public static async Task<LiftbridgeProcess> StartAsync(string binary, int cursorPartitions, long? replicationMaxBytes, int? advertisedPort = null)
    {
        var port = FreePort();
        var server = new LiftbridgeProcess(binary, port, advertisedPort ?? port);
        try
        {
            server.WriteConfig(cursorPartitions, replicationMaxBytes);
            await server.RunAsync().ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private string ConfigPath => Path.Combine(_dir.Path, "liftbridge.yaml");

    private string LogPath => Path.Combine(_dir.Path, "liftbridge.log");

    private void WriteConfig(int cursorPartitions, long? replicationMaxBytes)
    {
        File.WriteAllText(Path.Combine(_dir.Path, "nats.conf"), $"listen: 127.0.0.1:{_natsPort}\n");
        var yaml = new StringBuilder()
            .AppendLine(CultureInfo.InvariantCulture, $"listen: 127.0.0.1:{_listenPort}")
            .AppendLine("host: 127.0.0.1")
            .AppendLine(CultureInfo.InvariantCulture, $"port: {_advertisedPort}")
            .AppendLine(CultureInfo.InvariantCulture, $"data.dir: {_dir.Path}/data")
            .AppendLine("logging.level: info")
            .AppendLine(CultureInfo.InvariantCulture, $"cursors.stream.partitions: {cursorPartitions}")
            .AppendLine(CultureInfo.InvariantCulture, $"nats.embedded.config: {_dir.Path}/nats.conf")
            .AppendLine("nats.servers:")
            .AppendLine(CultureInfo.InvariantCulture, $"  - nats://127.0.0.1:{_natsPort}")
            .AppendLine("clustering:")
            .AppendLine(CultureInfo.InvariantCulture, $"  server.id: liftbridge-{_listenPort}")
            .AppendLine("  raft.bootstrap.seed: true");
        if (replicationMaxBytes is { } max)
        {
            yaml.AppendLine(CultureInfo.InvariantCulture, $"  replication.max.bytes: {max}");
        }

        File.WriteAllText(ConfigPath, yaml.ToString());
    }

    private async Task RunAsync()
    {
        var info = new ProcessStartInfo(_binary)
        {
            ArgumentList = { "--config", ConfigPath, "--raft-bootstrap-seed", "--embedded-nats", "--data-dir", Path.Combine(_dir.Path, "data") },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        _logStart = File.Exists(LogPath) ? new FileInfo(LogPath).Length : 0;
        var log = new StreamWriter(LogPath, append: true) { AutoFlush = true };
        var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => Write(log, e.Data);
        process.ErrorDataReceived += (_, e) => Write(log, e.Data);
        process.Exited += (_, _) => log.Dispose();
        process.EnableRaisingEvents = true;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        // Ready when it leads the metadata Raft group and answers with the broker list: CreateStream works from then on.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"Liftbridge exited with {process.ExitCode}; see {LogPath}");
            }

            // It answers FetchMetadata before its Raft node leads, and a CreateStream sent then waits out its deadline.
            if (Leads() && await AnswersAsync().ConfigureAwait(false))
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Liftbridge did not answer within 30 s; see {LogPath}");
            }

            await Task.Delay(100).ConfigureAwait(false); // polling a child process's readiness, not synchronising a test
        }
    }

    private static void Write(StreamWriter log, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (log)
        {
            try
            {
                log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // the process exited while its last lines were in flight
            }
        }
    }

    private bool Leads()
    {
        using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Position = _logStart;
        return new StreamReader(stream).ReadToEnd().Contains("Server became metadata leader", StringComparison.Ordinal);
    }

    private async Task<bool> AnswersAsync()
    {
        try
        {
            await using var client = await SluiceClient.ConnectAsync([$"127.0.0.1:{_listenPort}"], SluiceClientOptions.Default with { ConnectTimeout = TimeSpan.FromSeconds(1) }).ConfigureAwait(false);
            var metadata = await client.FetchMetadataAsync().ConfigureAwait(false);
            return metadata.Brokers.Count > 0;
        }
        catch (SluiceException)
        {
            return false;
        }
    }

    /// <summary>Stops the server (SIGTERM, then SIGKILL after 10 s) and waits for it to exit; its data stays for a restart.</summary>
    public async Task StopAsync()
    {
        if (_process is not { } process)
        {
            return;
        }

        _process = null;
        if (!process.HasExited)
        {
            // SIGTERM, so Liftbridge stops as an operator would stop it (Process.Kill only sends SIGKILL).
            using (var term = Process.Start("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await term.WaitForExitAsync().ConfigureAwait(false);
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill();
                await process.WaitForExitAsync().ConfigureAwait(false);
            }
        }

        process.Dispose();
    }

    /// <summary>Starts the stopped server again on the same ports with the same data.</summary>
    public Task RestartAsync() => RunAsync();

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _dir.Dispose();
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
