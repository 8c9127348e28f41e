using System.Globalization;

namespace Sluice.Bench.Runs;

/// <summary>What one server process used over a probe: CPU seconds and peak RSS in KiB.</summary>
public sealed record ProcessUsage(int Pid, double CpuSeconds, long PeakRssKb);

/// <summary>What the probed server processes used together, and hypervisor steal of the machine.</summary>
/// <param name="CpuSeconds">CPU time summed over every process; null without a pid.</param>
/// <param name="PeakRssKb">Each process's peak RSS, summed: what a machine must hold for all of them at once, at worst; null without a pid.</param>
/// <param name="StealPercent">Hypervisor steal as a share of the machine's CPU time; null when /proc/stat is unreadable.</param>
/// <param name="Processes">Each process on its own, in the order given.</param>
public sealed record ServerUsage(double? CpuSeconds, long? PeakRssKb, double? StealPercent, IReadOnlyList<ProcessUsage> Processes);

/// <summary>
/// CPU time and memory of the server processes (all of a cluster's: brokers, etcd, nats-servers), and hypervisor
/// steal of the machine, from /proc (Linux).
/// </summary>
public sealed class ProcessProbe : IDisposable
{
    // /proc reports process times in USER_HZ, which Linux fixes at 100 for every architecture's user ABI.
    private const double UserHz = 100;

    // RSS is sampled this often in case the kernel refuses to reset the peak (VmHWM).
    private static readonly TimeSpan RssSampleInterval = TimeSpan.FromMilliseconds(50);

    private readonly int[] _pids;
    private readonly double[] _startCpu;
    private readonly long[] _sampledPeakKb;
    private readonly bool[] _peakReset;
    private readonly Timer? _sampler;

    private ProcessProbe(IReadOnlyList<int> pids)
    {
        _pids = [.. pids];
        _peakReset = new bool[_pids.Length];
        _sampledPeakKb = new long[_pids.Length];
        _startCpu = new double[_pids.Length];
        for (var i = 0; i < _pids.Length; i++)
        {
            _peakReset[i] = TryResetPeak(_pids[i]);
            _sampledPeakKb[i] = ReadStatusKb(_pids[i], "VmRSS:") ?? 0;
            _startCpu[i] = ReadCpuSeconds(_pids[i]);
        }

        if (_pids.Length > 0)
        {
            _sampler = new Timer(_ => Sample(), null, RssSampleInterval, RssSampleInterval);
        }

        StartSteal = CpuJiffies.Read();
    }

    public CpuJiffies StartSteal { get; }

    /// <summary>Starts measuring <paramref name="pids"/> (none: only the machine's steal).</summary>
    public static ProcessProbe Start(IReadOnlyList<int> pids)
    {
        ArgumentNullException.ThrowIfNull(pids);
        return new ProcessProbe(pids);
    }

    /// <summary>What the processes used since the start, each and summed, and steal % since the start.</summary>
    public ServerUsage Stop()
    {
        _sampler?.Dispose();
        Sample();
        var processes = new ProcessUsage[_pids.Length];
        for (var i = 0; i < _pids.Length; i++)
        {
            var hwm = _peakReset[i] ? ReadStatusKb(_pids[i], "VmHWM:") : null;
            processes[i] = new ProcessUsage(_pids[i], ReadCpuSeconds(_pids[i]) - _startCpu[i], Math.Max(Interlocked.Read(ref _sampledPeakKb[i]), hwm ?? 0));
        }

        var steal = CpuJiffies.Read().StealPercentSince(StartSteal);
        return processes.Length == 0
            ? new ServerUsage(null, null, steal, processes)
            : new ServerUsage(processes.Sum(p => p.CpuSeconds), processes.Sum(p => p.PeakRssKb), steal, processes);
    }

    public void Dispose() => _sampler?.Dispose();

    /// <summary>utime + stime of <paramref name="pid"/> in seconds (fields 14 and 15 of /proc/pid/stat).</summary>
    public static double ReadCpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        // The command name (field 2) may contain spaces; the fields after it start past the last ')'.
        var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // rest[0] is field 3 (state), so utime (14) and stime (15) are rest[11] and rest[12].
        var ticks = long.Parse(rest[11], CultureInfo.InvariantCulture) + long.Parse(rest[12], CultureInfo.InvariantCulture);
        return ticks / UserHz;
    }

    private static bool TryResetPeak(int pid)
    {
        try
        {
            // "5" resets the peak RSS (VmHWM) to the current RSS; allowed for our own children.
            File.WriteAllText($"/proc/{pid}/clear_refs", "5");
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long? ReadStatusKb(int pid, string field)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith(field, StringComparison.Ordinal))
                {
                    var parts = line[field.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[0], CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
            // The process ended; the caller reports what was sampled.
        }

        return null;
    }

    private void Sample()
    {
        for (var i = 0; i < _pids.Length; i++)
        {
            if (ReadStatusKb(_pids[i], "VmRSS:") is { } rss)
            {
                long seen;
                do
                {
                    seen = Interlocked.Read(ref _sampledPeakKb[i]);
                }
                while (rss > seen && Interlocked.CompareExchange(ref _sampledPeakKb[i], rss, seen) != seen);
            }
        }
    }
}

/// <summary>The machine's total and steal jiffies from the first line of /proc/stat.</summary>
public readonly record struct CpuJiffies(long Total, long Steal)
{
    public static CpuJiffies Read()
    {
        try
        {
            using var reader = new StreamReader("/proc/stat");
            var line = reader.ReadLine() ?? string.Empty;
            // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in user).
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long total = 0;
            for (var i = 1; i <= 8 && i < fields.Length; i++)
            {
                total += long.Parse(fields[i], CultureInfo.InvariantCulture);
            }

            return new CpuJiffies(total, fields.Length > 8 ? long.Parse(fields[8], CultureInfo.InvariantCulture) : 0);
        }
        catch (IOException)
        {
            return default;
        }
    }

    /// <summary>Steal as a percentage of all CPU time since <paramref name="start"/>; null when /proc/stat is unreadable.</summary>
    public double? StealPercentSince(CpuJiffies start)
    {
        var total = Total - start.Total;
        return total <= 0 ? null : 100.0 * (Steal - start.Steal) / total;
    }
}
