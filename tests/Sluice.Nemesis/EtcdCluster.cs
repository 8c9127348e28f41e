using System.Globalization;

namespace Sluice.Nemesis;

/// <summary>
/// An etcd cluster of several members on 127.0.0.1 (free client and peer ports, one data directory each), started
/// with the same compaction and quota flags as <c>LocalEtcd</c>. A member can be SIGKILLed and started again on its
/// ports and directory, as a crashed etcd node restarts.
/// </summary>
internal sealed class EtcdCluster : IAsyncDisposable
{
    private readonly string _directory;
    private readonly ChildProcess?[] _processes;

    private EtcdCluster(string directory, int members)
    {
        _directory = directory;
        ClientPorts = [.. Enumerable.Range(0, members).Select(_ => Ports.Free())];
        PeerPorts = [.. Enumerable.Range(0, members).Select(_ => Ports.Free())];
        _processes = new ChildProcess?[members];
    }

    public IReadOnlyList<int> ClientPorts { get; }

    public IReadOnlyList<int> PeerPorts { get; }

    public int Count => _processes.Length;

    public IEnumerable<string> ClientUrls => ClientPorts.Select(p => $"http://127.0.0.1:{p}");

    public bool IsRunning(int member) => _processes[member] is { HasExited: false };

    public static async Task<EtcdCluster> StartAsync(string directory, int members, CancellationToken cancellationToken)
    {
        var cluster = new EtcdCluster(directory, members);
        try
        {
            for (var i = 0; i < members; i++)
            {
                cluster.Start(i);
            }

            await cluster.WaitHealthyAsync(cancellationToken).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public void Start(int member)
    {
        if (IsRunning(member))
        {
            throw new InvalidOperationException($"etcd member e{member + 1} is already running");
        }

        var initialCluster = string.Join(',', PeerPorts.Select((p, i) => $"e{i + 1}=http://127.0.0.1:{p}"));
        var client = $"http://127.0.0.1:{ClientPorts[member]}";
        var peer = $"http://127.0.0.1:{PeerPorts[member]}";
        string[] arguments =
        [
            "--name", $"e{member + 1}",
            "--data-dir", Path.Combine(_directory, $"e{member + 1}"),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", initialCluster,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", "sluice-nemesis",
            "--auto-compaction-mode", "revision",
            "--auto-compaction-retention", "1000",
            "--quota-backend-bytes", (1L << 30).ToString(CultureInfo.InvariantCulture),
        ];
        _processes[member] = ChildProcess.Start("etcd", arguments, Path.Combine(_directory, $"e{member + 1}.log"));
    }

    public async Task KillAsync(int member)
    {
        if (_processes[member] is { } process)
        {
            _processes[member] = null;
            await process.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Waits until every running member answers its health check (a quorum has a leader).</summary>
    public async Task WaitHealthyAsync(CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
        for (var i = 0; i < Count; i++)
        {
            while (IsRunning(i))
            {
                try
                {
                    var body = await http.GetStringAsync(new Uri($"http://127.0.0.1:{ClientPorts[i]}/health"), cancellationToken).ConfigureAwait(false);
                    if (body.Contains("\"health\":\"true\"", StringComparison.Ordinal))
                    {
                        break;
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
                {
                }

                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }

            if (_processes[i] is { HasExited: true })
            {
                throw new InvalidOperationException($"etcd member e{i + 1} exited; see {Path.Combine(_directory, $"e{i + 1}.log")}");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < Count; i++)
        {
            await KillAsync(i).ConfigureAwait(false);
        }
    }
}

internal static class Ports
{
    public static int Free()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
