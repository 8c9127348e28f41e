using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Sluice.TestKit;

/// <summary>How to start a <see cref="NatsServerProcess"/>.</summary>
public sealed record NatsServerProcessOptions
{
    /// <summary>Port on 127.0.0.1; null picks a free one.</summary>
    public int? Port { get; init; }

    /// <summary>Enables JetStream with a temporary store directory (<c>-js -sd</c>).</summary>
    public bool JetStream { get; init; }

    /// <summary>User/password authentication (<c>--user/--pass</c>).</summary>
    public string? User { get; init; }

    /// <summary>Password for <see cref="User"/>.</summary>
    public string? Password { get; init; }

    /// <summary>Token authentication (<c>--auth</c>).</summary>
    public string? Token { get; init; }

    /// <summary>Contents of a configuration file passed with <c>-c</c> (e.g. <c>max_payload: 1024</c>).</summary>
    public string? Config { get; init; }

    /// <summary>Further command-line arguments (e.g. <c>--tls --tlscert f --tlskey k</c>).</summary>
    public IReadOnlyList<string> ExtraArgs { get; init; } = [];

    /// <summary>
    /// Clients connect through a <see cref="TcpProxy"/> that keeps its port, and a restart runs the
    /// server on a new free port behind it. A test that kills and restarts the server needs this: the
    /// killed server's port can be taken by another test's server meanwhile, and its clients would
    /// reconnect to that one. Not with <see cref="Port"/>.
    /// </summary>
    public bool StableAddress { get; init; }
}

/// <summary>
/// A real <c>nats-server</c> on 127.0.0.1, started as a child process and stopped by PID.
/// A missing binary fails loudly (set NATS_SERVER_BIN, or <c>apt-get install -y nats-server</c>).
/// </summary>
public sealed class NatsServerProcess : IAsyncDisposable
{
    private static readonly string[] Candidates = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"];
    private readonly NatsServerProcessOptions _options;
    private readonly TempDirectory _dir = new("nats");
    private readonly StringBuilder _log = new();
    private readonly TcpProxy? _proxy;
    private Process? _process;
    private int _serverPort;

    private NatsServerProcess(NatsServerProcessOptions options, int port)
    {
        _options = options;
        _serverPort = port;
        if (options.StableAddress)
        {
            _proxy = TcpProxy.Start();
        }
    }

    /// <summary>The port clients connect to: the server's, or with <see cref="NatsServerProcessOptions.StableAddress"/> the proxy's.</summary>
    public int Port => _proxy?.Port ?? _serverPort;

    /// <summary><c>nats://127.0.0.1:port</c>.</summary>
    public string Url => $"nats://127.0.0.1:{Port}";

    /// <summary>PID of the running server process, or -1 when stopped.</summary>
    public int ProcessId => _process is { HasExited: false } p ? p.Id : -1;

    /// <summary>What the server has logged so far (for failure messages).</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>Path of the nats-server binary, or an exception that says how to install it.</summary>
    public static string FindBinary()
    {
        var fromEnv = Environment.GetEnvironmentVariable("NATS_SERVER_BIN");
        if (!string.IsNullOrEmpty(fromEnv) && File.Exists(fromEnv))
        {
            return fromEnv;
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = System.IO.Path.Combine(dir, "nats-server");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return Candidates.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException(
                "nats-server was not found (looked at $NATS_SERVER_BIN, $PATH and /usr/sbin). Install it: apt-get install -y nats-server");
    }

    /// <summary>Starts a server and waits until it answers with INFO.</summary>
    public static async Task<NatsServerProcess> StartAsync(NatsServerProcessOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new NatsServerProcessOptions();
        if (options.StableAddress && options.Port is not null)
        {
            throw new ArgumentException("StableAddress picks the server's ports itself; do not set Port as well", nameof(options));
        }

        var server = new NatsServerProcess(options, options.Port ?? FreePort());
        try
        {
            await server.StartProcessAsync(cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Kills the server (SIGKILL, by PID) and waits for it to exit.</summary>
    public async Task KillAsync()
    {
        var process = _process;
        _process = null;
        if (process is null)
        {
            return;
        }

        if (_proxy is not null)
        {
            _proxy.Target = null; // reconnects are reset until a server runs again
        }

        try
        {
            if (!process.HasExited)
            {
                process.Kill();
            }

            await process.WaitForExitAsync().ConfigureAwait(false);
        }
        finally
        {
            process.Dispose();
            _proxy?.DropConnections(); // the clients see the connection break, as with the server itself
        }
    }

    /// <summary>
    /// Starts the server again with the same settings (and the same JetStream store): on the same port,
    /// or with <see cref="NatsServerProcessOptions.StableAddress"/> on a new one behind the same proxy.
    /// </summary>
    public Task RestartAsync(CancellationToken cancellationToken = default)
    {
        if (_process is not null)
        {
            throw new InvalidOperationException("The server is still running; kill it first.");
        }

        if (_proxy is not null)
        {
            _serverPort = FreePort();
        }

        return StartProcessAsync(cancellationToken);
    }

    /// <summary>Kills the server and deletes its files.</summary>
    public async ValueTask DisposeAsync()
    {
        await KillAsync().ConfigureAwait(false);
        if (_proxy is not null)
        {
            await _proxy.DisposeAsync().ConfigureAwait(false);
        }

        _dir.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private async Task StartProcessAsync(CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(FindBinary())
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "-a", "127.0.0.1", "-p", _serverPort.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            info.ArgumentList.Add(arg);
        }

        if (_options.JetStream)
        {
            info.ArgumentList.Add("-js");
            info.ArgumentList.Add("-sd");
            info.ArgumentList.Add(_dir.Sub("js"));
        }

        if (_options.User is not null)
        {
            info.ArgumentList.Add("--user");
            info.ArgumentList.Add(_options.User);
            info.ArgumentList.Add("--pass");
            info.ArgumentList.Add(_options.Password ?? string.Empty);
        }

        if (_options.Token is not null)
        {
            info.ArgumentList.Add("--auth");
            info.ArgumentList.Add(_options.Token);
        }

        if (_options.Config is not null)
        {
            var path = _dir.Sub("nats.conf");
            await File.WriteAllTextAsync(path, _options.Config, cancellationToken).ConfigureAwait(false);
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(path);
        }

        foreach (var arg in _options.ExtraArgs)
        {
            info.ArgumentList.Add(arg);
        }

        var process = new Process { StartInfo = info };
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.Start();
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        _process = process;
        await WaitReadyAsync(process, cancellationToken).ConfigureAwait(false);
        if (_proxy is not null)
        {
            _proxy.Target = new IPEndPoint(IPAddress.Loopback, _serverPort);
        }
    }

    private async Task WaitReadyAsync(Process process, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (process.HasExited)
            {
                throw new InvalidOperationException($"nats-server exited with code {process.ExitCode} before accepting connections on port {_serverPort}:\n{Log}");
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, _serverPort, cancellationToken).ConfigureAwait(false);
                var buffer = new byte[5];
                using var stream = client.GetStream();
                var read = 0;
                while (read < buffer.Length)
                {
                    var n = await stream.ReadAsync(buffer.AsMemory(read), cancellationToken).ConfigureAwait(false);
                    if (n == 0)
                    {
                        break;
                    }

                    read += n;
                }

                if (read == 5 && Encoding.ASCII.GetString(buffer) == "INFO ")
                {
                    return;
                }
            }
            catch (SocketException)
            {
                // Not listening yet.
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"nats-server did not accept connections on 127.0.0.1:{_serverPort} within 15 s:\n{Log}");
            }

            // Polling interval while the server starts; readiness is the condition, this is only the retry pace.
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            if (_log.Length < 64 * 1024)
            {
                _log.AppendLine(line);
            }
        }
    }
}
