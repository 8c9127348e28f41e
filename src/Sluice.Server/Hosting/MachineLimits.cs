using System.Globalization;
using System.Runtime.InteropServices;

namespace Sluice.Server.Hosting;

/// <summary>
/// What the operating system lets this process have, read once at start: open files (RLIMIT_NOFILE) and
/// new threads (RLIMIT_NPROC for the user, the cgroup's pids.max). Linux only; elsewhere, and for any value
/// that cannot be read, the limit is unknown (null) and nothing is lowered for it.
/// </summary>
internal sealed record MachineLimits
{
    /// <summary>Nothing known: no limit is lowered.</summary>
    public static MachineLimits Unknown { get; } = new();

    /// <summary>The process's open-file limit (the soft limit, after it was raised to the hard one).</summary>
    public long? OpenFiles { get; init; }

    /// <summary>How many more threads this process can start before the kernel refuses (EAGAIN).</summary>
    public long? ThreadsAvailable { get; init; }

    /// <summary>Which limit <see cref="ThreadsAvailable"/> comes from, for messages ("RLIMIT_NPROC 300", "pids.max 300").</summary>
    public string ThreadLimitSource { get; init; } = "";

    /// <summary>
    /// Raises the soft open-file limit to the hard one (as most servers do at start), then reads the limits.
    /// Threads: RLIMIT_NPROC counts every thread of the real user across the machine (root is exempt), and
    /// a cgroup's pids.max every thread of the group and its children, so both are measured against current use.
    /// </summary>
    public static MachineLimits Probe()
    {
        if (!OperatingSystem.IsLinux())
        {
            return Unknown;
        }

        long? openFiles = null;
        try
        {
            if (GetRlimit(RlimitNofile, out var files) == 0)
            {
                if (files.Current < files.Maximum)
                {
                    var raised = files with { Current = files.Maximum };
                    if (SetRlimit(RlimitNofile, ref raised) == 0)
                    {
                        files = raised;
                    }
                }

                openFiles = files.Current == RlimInfinity ? null : (long)Math.Min(files.Current, long.MaxValue);
            }
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            // No libc to ask: unknown.
        }

        long? threads = null;
        var source = "";
        try
        {
            if (GetUid() != 0 && GetRlimit(RlimitNproc, out var nproc) == 0 && nproc.Current != RlimInfinity)
            {
                var used = ThreadsOfUser(GetUid());
                threads = Math.Max(0, (long)Math.Min(nproc.Current, long.MaxValue) - used);
                source = $"RLIMIT_NPROC {nproc.Current} with {used} threads of this user running";
            }
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
        }

        if (CgroupPidsAvailable() is { } pids && (threads is null || pids.Available < threads))
        {
            threads = pids.Available;
            source = pids.Source;
        }

        return new MachineLimits { OpenFiles = openFiles, ThreadsAvailable = threads, ThreadLimitSource = source };
    }

    /// <summary>Threads of processes whose real uid is <paramref name="uid"/>, from /proc/*/status.</summary>
    private static long ThreadsOfUser(uint uid)
    {
        long total = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(dir.AsSpan());
            if (name.IsEmpty || !char.IsAsciiDigit(name[0]))
            {
                continue;
            }

            try
            {
                uint? owner = null;
                long count = 0;
                foreach (var line in File.ReadLines(Path.Combine(dir, "status")))
                {
                    if (line.StartsWith("Uid:", StringComparison.Ordinal))
                    {
                        owner = uint.Parse(line.AsSpan(4).Trim().ToString().Split('\t', ' ')[0], CultureInfo.InvariantCulture);
                    }
                    else if (line.StartsWith("Threads:", StringComparison.Ordinal))
                    {
                        count = long.Parse(line.AsSpan(8).Trim(), CultureInfo.InvariantCulture);
                    }
                }

                if (owner == uid)
                {
                    total += count;
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
            {
                // The process ended while we looked, or hides its status: it cannot be ours to count.
            }
        }

        return total;
    }

    /// <summary>
    /// The tightest pids.max of this process's cgroup and its ancestors, less what each already holds
    /// (pids.current). cgroup v2 (the "0::" line of /proc/self/cgroup), else v1's pids controller.
    /// </summary>
    private static (long Available, string Source)? CgroupPidsAvailable()
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines("/proc/self/cgroup");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        string? root = null;
        string? path = null;
        foreach (var line in lines)
        {
            var parts = line.Split(':', 3);
            if (parts.Length != 3)
            {
                continue;
            }

            if (parts[0] == "0" && parts[1].Length == 0)
            {
                root = "/sys/fs/cgroup";
                path = parts[2];
                break;
            }

            if (parts[1].Split(',').Contains("pids"))
            {
                root = "/sys/fs/cgroup/pids";
                path = parts[2];
            }
        }

        if (root is null || path is null)
        {
            return null;
        }

        (long Available, string Source)? tightest = null;
        var relative = path.Trim('/');
        while (true)
        {
            var dir = relative.Length == 0 ? root : Path.Combine(root, relative);
            if (ReadCgroupValue(Path.Combine(dir, "pids.max")) is { } max && ReadCgroupValue(Path.Combine(dir, "pids.current")) is { } current)
            {
                var available = Math.Max(0, max - current);
                if (tightest is null || available < tightest.Value.Available)
                {
                    tightest = (available, $"cgroup pids.max {max} with {current} in use ({dir})");
                }
            }

            if (relative.Length == 0)
            {
                return tightest;
            }

            var slash = relative.LastIndexOf('/');
            relative = slash < 0 ? "" : relative[..slash];
        }
    }

    /// <summary>A cgroup file's number; null for "max", a missing file or anything unreadable.</summary>
    private static long? ReadCgroupValue(string file)
    {
        try
        {
            return long.TryParse(File.ReadAllText(file).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private const int RlimitNproc = 6;   // Linux x86-64 and arm64
    private const int RlimitNofile = 7;
    private const ulong RlimInfinity = ulong.MaxValue;

    [StructLayout(LayoutKind.Sequential)]
    private record struct Rlimit(ulong Current, ulong Maximum);

    // DllImport with blittable arguments: LibraryImport would need unsafe code, which this project keeps off.
    [DllImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int GetRlimit(int resource, out Rlimit limit);

    [DllImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int SetRlimit(int resource, ref Rlimit limit);

    [DllImport("libc", EntryPoint = "getuid")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern uint GetUid();
}
