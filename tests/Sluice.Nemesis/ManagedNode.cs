using Sluice.TestKit;

namespace Sluice.Nemesis;

/// <summary>
/// One server process of a cluster under test, kept across restarts: its id, port, data directory (on a tmpfs of its
/// own when the disk-full fault may hit it) and log file, and what the nemesis does to the process and its disk.
/// </summary>
internal class ManagedNode(string id, int port, SmallTmpfs? tmpfs, string workDirectory)
{
    public string Id { get; } = id;

    public int Port { get; } = port;

    public SmallTmpfs? Tmpfs { get; } = tmpfs;

    public string DataDirectory { get; } = tmpfs is null ? Path.Combine(workDirectory, id) : Path.Combine(tmpfs.Path, "data");

    public string LogFile { get; } = Path.Combine(workDirectory, id + ".log");

    /// <summary>The running process, or null while it is stopped.</summary>
    public ChildProcess? Process { get; set; }

    /// <summary>True while the process runs (stopped by SIGSTOP counts as running).</summary>
    public bool IsRunning => Process is { HasExited: false };

    private string? _filler;

    public async Task KillAsync()
    {
        if (Process is { } process)
        {
            Process = null;
            await process.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>SIGTERM, then SIGKILL if it has not exited within 30 s.</summary>
    public async Task StopGracefullyAsync()
    {
        if (Process is { } process)
        {
            await process.StopAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            Process = null;
            await process.DisposeAsync().ConfigureAwait(false);
        }
    }

    public void Signal(string name) => Process?.Signal(name);

    public void FillDisk()
    {
        var tmpfs = Tmpfs ?? throw new InvalidOperationException($"the disk-full fault needs {Id}'s data on a tmpfs");
        _filler = tmpfs.Fill("nemesis-filler");
    }

    public void FreeDisk()
    {
        if (_filler is { } filler)
        {
            File.Delete(filler);
            _filler = null;
        }
    }
}
