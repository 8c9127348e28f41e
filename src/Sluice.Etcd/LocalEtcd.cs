using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Sluice.Etcd;

/// <summary>
/// A one-member etcd run as a child process on 127.0.0.1, for <c>sluice cluster</c> and the tests: free client and
/// peer ports, a temp or given data directory, stopped by its PID. It can be stopped and started again on the same
/// ports and directory (a member restart).
/// </summary>
/// <remarks>
/// Auto-compaction keeps the last 1,000 revisions (revision mode, not periodic): history is bounded by count whatever
/// the write rate, so a watcher more than 1,000 changes behind gets a compacted error and re-reads, as with the
/// embedded store's own retained-revisions rule. The backend quota is 1 GiB (etcd's default is 2 GiB), so a runaway
/// writer on a developer machine hits etcd's NOSPACE alarm before it fills the disk.
/// </remarks>
public sealed class LocalEtcd : IAsyncDisposable
{
    /// <summary>The executable started, found on PATH (Debian's <c>etcd-server</c> package).</summary>
    public const string Executable = "etcd";

    private const int LogLinesKept = 40;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly bool _ownsDirectory;
    private readonly LocalEtcdTls? _tls;
    private readonly Queue<string> _log = new();
    private Process? _process;
    private volatile bool _saidReady;

    private LocalEtcd(string dataDirectory, bool ownsDirectory, int clientPort, int peerPort, LocalEtcdTls? tls)
    {
        _tls = tls;
        DataDirectory = dataDirectory;
        _ownsDirectory = ownsDirectory;
        ClientPort = clientPort;
        PeerPort = peerPort;
    }

    /// <summary>The client URL, <c>http://127.0.0.1:port</c> (<c>https://</c> with TLS).</summary>
    public string ClientUrl => $"{(_tls is null ? "http" : "https")}://127.0.0.1:{ClientPort}";

    public int ClientPort { get; }

    public int PeerPort { get; }

    public string DataDirectory { get; }

    /// <summary>The running etcd's process id, or null while it is stopped.</summary>
    public int? ProcessId => _process is { HasExited: false } p ? p.Id : null;

    /// <summary>Starts etcd and waits until it answers its health check. Fails loudly when the binary is missing.</summary>
    /// <param name="dataDirectory">Where etcd keeps its data; null for a new temp directory, deleted on dispose.</param>
    /// <param name="tls">Serve clients over TLS (and require client certificates when it names a CA); null for plain http.</param>
    /// <param name="cancellationToken">Stops the wait for etcd to answer.</param>
    public static async Task<LocalEtcd> StartAsync(string? dataDirectory = null, LocalEtcdTls? tls = null, CancellationToken cancellationToken = default)
    {
        var owns = dataDirectory is null;
        var directory = dataDirectory ?? Path.Combine(Path.GetTempPath(), "sluice-etcd-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        for (var attempt = 1; ; attempt++)
        {
            // A port free a moment ago can be taken by another process before etcd binds it: then new ports, a few times.
            var etcd = new LocalEtcd(directory, owns, FreePort(), FreePort(), tls);
            try
            {
                await etcd.StartAgainAsync(cancellationToken).ConfigureAwait(false);
                return etcd;
            }
            catch (InvalidOperationException e) when (attempt < 3 && e.Message.Contains("address already in use", StringComparison.Ordinal))
            {
                await etcd.StopAsync().ConfigureAwait(false); // the data directory stays for the next attempt
            }
            catch
            {
                await etcd.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
    }

    /// <summary>Starts the stopped member again on the same ports and data directory, and waits until it answers.</summary>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        if (ProcessId is not null)
        {
            throw new InvalidOperationException("etcd is already running");
        }

        var peerUrl = $"http://127.0.0.1:{PeerPort}";
        var start = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
        {
            "--name", "sluice",
            "--data-dir", DataDirectory,
            "--listen-client-urls", ClientUrl,
            "--advertise-client-urls", ClientUrl,
            "--listen-peer-urls", peerUrl,
            "--initial-advertise-peer-urls", peerUrl,
            "--initial-cluster", $"sluice={peerUrl}",
            "--auto-compaction-mode", "revision",
            "--auto-compaction-retention", "1000",
            "--quota-backend-bytes", (1L << 30).ToString(CultureInfo.InvariantCulture),
        })
        {
            start.ArgumentList.Add(argument);
        }

        if (_tls is not null)
        {
            start.ArgumentList.Add("--cert-file");
            start.ArgumentList.Add(_tls.CertFile);
            start.ArgumentList.Add("--key-file");
            start.ArgumentList.Add(_tls.KeyFile);
            if (_tls.ClientCaFile is not null)
            {
                start.ArgumentList.Add("--client-cert-auth");
                start.ArgumentList.Add("--trusted-ca-file");
                start.ArgumentList.Add(_tls.ClientCaFile);
            }
        }

        _saidReady = false;
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("etcd did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"cannot run '{Executable}': {e.Message}. Install it (Debian: apt-get install etcd-server) or put it on PATH.", e);
        }

        process.OutputDataReceived += (_, e) => Remember(e.Data);
        process.ErrorDataReceived += (_, e) => Remember(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        AppDomain.CurrentDomain.ProcessExit += KillOnExit; // a test run or CLI that exits without disposing leaves no etcd behind
        await WaitHealthyAsync(process, cancellationToken).ConfigureAwait(false);
    }

    private void KillOnExit(object? sender, EventArgs e)
    {
        try
        {
            if (_process is { HasExited: false } process)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Exited meanwhile.
        }
    }

    /// <summary>Kills etcd (its whole process tree) by PID and waits for it to exit.</summary>
    public async Task StopAsync()
    {
        if (_process is not { } process)
        {
            return;
        }

        _process = null;
        AppDomain.CurrentDomain.ProcessExit -= KillOnExit;
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            await process.WaitForExitAsync().ConfigureAwait(false);
        }
        finally
        {
            process.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        if (_ownsDirectory)
        {
            try
            {
                Directory.Delete(DataDirectory, recursive: true);
            }
            catch (IOException)
            {
                // A temp directory left behind is harmless.
            }
        }
    }

    private async Task WaitHealthyAsync(Process process, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
        var deadline = DateTime.UtcNow + StartTimeout;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (process.HasExited)
            {
                throw new InvalidOperationException($"etcd exited with code {process.ExitCode} while starting; its last lines:{Environment.NewLine}{RecentLog()}");
            }

            try
            {
                // Over TLS /health would need this process to hold a trusted client certificate; etcd's own
                // "ready to serve client requests" line says the same.
                if (_tls is not null ? _saidReady : (await http.GetStringAsync(new Uri($"{ClientUrl}/health"), cancellationToken).ConfigureAwait(false)).Contains("\"health\":\"true\"", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // The probe timed out; try again.
            }

            if (DateTime.UtcNow > deadline)
            {
                await StopAsync().ConfigureAwait(false);
                throw new TimeoutException($"etcd did not become healthy within {StartTimeout.TotalSeconds} s; its last lines:{Environment.NewLine}{RecentLog()}");
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    private void Remember(string? line)
    {
        if (line is null)
        {
            return;
        }

        if (line.Contains("ready to serve client requests", StringComparison.Ordinal))
        {
            _saidReady = true;
        }

        lock (_log)
        {
            _log.Enqueue(line);
            while (_log.Count > LogLinesKept)
            {
                _log.Dequeue();
            }
        }
    }

    /// <summary>The last lines etcd wrote (for error messages).</summary>
    public string RecentLog()
    {
        lock (_log)
        {
            return string.Join(Environment.NewLine, _log);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>TLS for a <see cref="LocalEtcd"/>'s client URL.</summary>
/// <param name="CertFile">Server certificate (PEM).</param>
/// <param name="KeyFile">Its private key (PEM).</param>
/// <param name="ClientCaFile">When set, clients must present a certificate signed by this CA (PEM).</param>
public sealed record LocalEtcdTls(string CertFile, string KeyFile, string? ClientCaFile = null);
