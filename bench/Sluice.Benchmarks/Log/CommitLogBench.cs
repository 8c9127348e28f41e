using System.Diagnostics;
using Sluice.Storage.Log;

namespace Sluice.Benchmarks.Log;

/// <summary>Stopwatch measurements of the commit log (256-byte values; Never durability unless stated).</summary>
public static class CommitLogBench
{
    private const int ValueSize = 256;
    private static readonly byte[] Value = Enumerable.Range(0, ValueSize).Select(i => (byte)i).ToArray();

    private static LogRecord[] Batch(int size) =>
        Enumerable.Range(0, size).Select(_ => new LogRecord { Timestamp = (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100, Value = Value }).ToArray();

    private static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"sluice-bench-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Appends and reads back ~1M records in a temporary log, explaining each step.</summary>
    public static void Quick()
    {
        const int Records = 1_000_000;
        const int BatchSize = 100;
        var dir = TempDir();
        try
        {
            Console.WriteLine("Sluice quick start: one partition commit log in a temporary directory");
            Console.WriteLine($"  directory: {dir}");
            Console.WriteLine($"  records:   {Records:N0} values of {ValueSize} bytes, appended in batches of {BatchSize}");
            Console.WriteLine();
            var batch = Batch(BatchSize);
            using (var log = CommitLog.Open(dir))
            {
                var sw = Stopwatch.StartNew();
                for (var i = 0; i < Records / BatchSize; i++)
                {
                    log.Append(batch);
                }

                sw.Stop();
                Console.WriteLine($"1. append   {Records:N0} records in {sw.Elapsed.TotalSeconds:F2} s  = {Records / sw.Elapsed.TotalSeconds,12:N0} records/s  ({log.SizeInBytes / sw.Elapsed.TotalSeconds / 1e6:F0} MB/s)");
                Console.WriteLine($"            offsets 0..{log.NewestOffset:N0} in {log.SegmentCount} segment(s), {log.SizeInBytes / 1e6:F0} MB on disk");

                sw.Restart();
                long read = 0, offset = 0;
                while (true)
                {
                    using var records = log.Read(offset, 1 << 20);
                    if (records.IsEmpty)
                    {
                        break;
                    }

                    read += records.Count;
                    offset = records.NextOffset;
                }

                sw.Stop();
                Console.WriteLine($"2. read     {read:N0} records in {sw.Elapsed.TotalSeconds:F2} s  = {read / sw.Elapsed.TotalSeconds,12:N0} records/s  (every record's CRC-32C checked)");
            }

            var open = Stopwatch.StartNew();
            using (var log = CommitLog.Open(dir))
            {
                open.Stop();
                Console.WriteLine($"3. reopen   recovered {log.NewestOffset + 1:N0} records in {open.Elapsed.TotalMilliseconds:F0} ms (indexes loaded, tail checked)");
                var middle = log.NewestOffset / 2;
                using var one = log.Read(middle, 1);
                Console.WriteLine($"4. lookup   offset {middle:N0} -> value of {one[0].Value!.Value.Length} bytes, timestamp {one[0].Timestamp}");
            }

            Console.WriteLine();
            Console.WriteLine("Numbers vary with the machine; the full set is `dotnet run --project bench/Sluice.Benchmarks -c Release -- log`.");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The numbers of docs/benchmarks.md. Optional argument: runs per measurement (default 5).</summary>
    public static void Full(string[] args)
    {
        var runs = args.Length > 0 ? int.Parse(args[0]) : 5;
        Console.WriteLine($"commit log benchmarks, {runs} runs each, median shown (min..max)");
        Report("append, batch 100, never", "records/s", runs, () => AppendRate(1_000_000, 100));
        Report("sequential read, 1 MiB reads", "records/s", runs, () => ReadRate(1_000_000));
        foreach (var (batch, writers) in new[] { (1, 1), (1, 8), (100, 1), (100, 8) })
        {
            var fsyncs = new List<double>();
            Report($"append, always, batch {batch}, {writers} writer(s)", "records/s", runs, () =>
            {
                var (rate, fsyncRate) = AlwaysRate(batch, writers, TimeSpan.FromSeconds(2));
                fsyncs.Add(fsyncRate);
                return rate;
            });
            Console.WriteLine($"    fsyncs/s median {Median(fsyncs):N0}");
        }

        Recovery();
        IdleMemory(2000);
    }

    private static void Report(string name, string unit, int runs, Func<double> measure)
    {
        var values = Enumerable.Range(0, runs).Select(_ => measure()).ToList();
        Console.WriteLine($"{name,-40} {Median(values),14:N0} {unit}  ({values.Min():N0}..{values.Max():N0})");
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? 0 : sorted[sorted.Count / 2];
    }

    private static double AppendRate(int records, int batchSize)
    {
        var dir = TempDir();
        try
        {
            using var log = CommitLog.Open(dir);
            var batch = Batch(batchSize);
            var sw = Stopwatch.StartNew();
            for (var i = 0; i < records / batchSize; i++)
            {
                log.Append(batch);
            }

            return records / sw.Elapsed.TotalSeconds;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static double ReadRate(int records)
    {
        var dir = TempDir();
        try
        {
            using var log = CommitLog.Open(dir);
            var batch = Batch(100);
            for (var i = 0; i < records / 100; i++)
            {
                log.Append(batch);
            }

            var sw = Stopwatch.StartNew();
            long read = 0, offset = 0;
            while (true)
            {
                using var result = log.Read(offset, 1 << 20);
                if (result.IsEmpty)
                {
                    break;
                }

                read += result.Count;
                offset = result.NextOffset;
            }

            return read / sw.Elapsed.TotalSeconds;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static (double Records, double Fsyncs) AlwaysRate(int batchSize, int writers, TimeSpan duration)
    {
        var dir = TempDir();
        try
        {
            using var log = CommitLog.Open(dir, CommitLogOptions.Default with { Durability = DurabilityPolicy.Always });
            var batch = Batch(batchSize);
            long appended = 0;
            var sw = Stopwatch.StartNew();
            var tasks = Enumerable.Range(0, writers).Select(_ => Task.Run(() =>
            {
                while (sw.Elapsed < duration)
                {
                    log.Append(batch);
                    Interlocked.Add(ref appended, batchSize);
                }
            })).ToArray();
            Task.WaitAll(tasks);
            var seconds = sw.Elapsed.TotalSeconds;
            return (appended / seconds, log.FsyncCount / seconds);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void Recovery()
    {
        var dir = TempDir();
        try
        {
            var options = CommitLogOptions.Default with { SegmentMaxBytes = 1L << 30 };
            using (var log = CommitLog.Open(dir, options))
            {
                var batch = Batch(100);
                while (log.SizeInBytes < (1L << 30) - (64 * 1024))
                {
                    log.Append(batch);
                }

                Console.WriteLine($"recovery: active segment of {log.SizeInBytes / (1 << 20):N0} MiB, {log.NewestOffset + 1:N0} records, {log.SegmentCount} segment(s)");
            }

            var intact = new List<double>();
            var missing = new List<double>();
            for (var i = 0; i < 3; i++)
            {
                var sw = Stopwatch.StartNew();
                using (CommitLog.Open(dir, options))
                {
                    intact.Add(sw.Elapsed.TotalMilliseconds);
                }

                foreach (var index in Directory.GetFiles(dir, "*index"))
                {
                    File.Delete(index);
                }

                sw.Restart();
                using (CommitLog.Open(dir, options))
                {
                    missing.Add(sw.Elapsed.TotalMilliseconds);
                }
            }

            Console.WriteLine($"{"open 1 GiB log, intact indexes",-40} {Median(intact),14:N0} ms  ({intact.Min():N0}..{intact.Max():N0})");
            Console.WriteLine($"{"open 1 GiB log, indexes deleted",-40} {Median(missing),14:N0} ms  ({missing.Min():N0}..{missing.Max():N0})");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void IdleMemory(int partitions)
    {
        var dir = TempDir();
        var logs = new CommitLog[partitions];
        try
        {
            var batch = Batch(10);
            var before = GC.GetTotalMemory(forceFullCollection: true);
            for (var i = 0; i < partitions; i++)
            {
                logs[i] = CommitLog.Open(Path.Combine(dir, i.ToString()));
                logs[i].Append(batch);
            }

            var after = GC.GetTotalMemory(forceFullCollection: true);
            Console.WriteLine($"{"managed memory per idle open partition",-40} {(after - before) / (double)partitions,14:N0} bytes ({partitions:N0} partitions of 10 records)");
        }
        finally
        {
            foreach (var log in logs)
            {
                log?.Dispose();
            }

            Directory.Delete(dir, recursive: true);
        }
    }
}
