using System.Globalization;

namespace Sluice.Bench.Runs;

/// <summary>CPU time and memory of a server process, and hypervisor steal of the machine, from /proc (Linux).</summary>
public sealed class ProcessProbe : IDisposable
{
    // /proc reports process times in USER_HZ, which Linux fixes at 100 for every architecture's user ABI.
    private const double UserHz = 100;

    // RSS is sampled this often in case the kernel refuses to reset the peak (VmHWM).
    private static readonly TimeSpan RssSampleInterval = TimeSpan.FromMilliseconds(50);

    private readonly int _pid;
    private readonly Timer? _sampler;
    private readonly bool _peakReset;
    private long _sampledPeakKb;

    private ProcessProbe(int pid)
    {
        _pid = pid;
        if (pid > 0)
        {
            _peakReset = TryResetPeak(pid);
            _sampledPeakKb = ReadStatusKb(pid, "VmRSS:") ?? 0;
            _sampler = new Timer(_ => Sample(), null, RssSampleInterval, RssSampleInterval);
        }

        StartCpuSeconds = pid > 0 ? ReadCpuSeconds(pid) : 0;
        StartSteal = CpuJiffies.Read();
    }

    public double StartCpuSeconds { get; }

    public CpuJiffies StartSteal { get; }

    /// <summary>Starts measuring <paramref name="pid"/> (0: only the machine's steal).</summary>
    public static ProcessProbe Start(int pid) => new(pid);

    /// <summary>Server CPU seconds, server peak RSS in KiB (null without a pid), and steal % since the start.</summary>
    public (double? CpuSeconds, long? PeakRssKb, double? StealPercent) Stop()
    {
        _sampler?.Dispose();
        double? cpu = null;
        long? peak = null;
        if (_pid > 0)
        {
            Sample();
            cpu = ReadCpuSeconds(_pid) - StartCpuSeconds;
            var hwm = _peakReset ? ReadStatusKb(_pid, "VmHWM:") : null;
            peak = Math.Max(Interlocked.Read(ref _sampledPeakKb), hwm ?? 0);
        }

        return (cpu, peak, CpuJiffies.Read().StealPercentSince(StartSteal));
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
        if (ReadStatusKb(_pid, "VmRSS:") is { } rss)
        {
            long seen;
            do
            {
                seen = Interlocked.Read(ref _sampledPeakKb);
            }
            while (rss > seen && Interlocked.CompareExchange(ref _sampledPeakKb, rss, seen) != seen);
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
