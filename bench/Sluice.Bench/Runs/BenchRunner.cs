using System.Diagnostics;
using Sluice.Bench.Options;
using Sluice.Bench.Reports;
using Sluice.Bench.Targets;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;

namespace Sluice.Bench.Runs;

/// <summary>Runs one producer or consumer benchmark and reports what it measured.</summary>
public static class BenchRunner
{
    public static IBenchTarget CreateTarget(BenchOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Target == BenchTarget.JetStream ? new JetStreamTarget(options) : new SluiceTarget(options);
    }

    /// <summary>Runs the benchmark <paramref name="options"/> describe; fails after <see cref="BenchOptions.Timeout"/>.</summary>
    public static async Task<BenchReport> RunAsync(BenchOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.Timeout);
        try
        {
            if (options.InProcess)
            {
                return await RunInProcessAsync(options, deadline.Token).ConfigureAwait(false);
            }

            await using var target = CreateTarget(options);
            await target.ConnectAsync(deadline.Token).ConfigureAwait(false);
            var report = options.Mode == BenchMode.Producer
                ? await ProduceAsync(options, target, deadline.Token).ConfigureAwait(false)
                : await ConsumeAsync(options, target, deadline.Token).ConfigureAwait(false);
            if (options.DeleteStream)
            {
                await target.DeleteStreamAsync(deadline.Token).ConfigureAwait(false);
            }

            return report;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"the run did not finish within {options.Timeout.TotalSeconds:F0} s (--timeout)");
        }
    }

    /// <summary>
    /// Starts a Sluice server in this process on a free loopback port with a temporary data dir
    /// (durability never), runs the benchmark against it and removes it. A consumer run first fills
    /// the stream with its messages (pub-batch 100, not measured).
    /// </summary>
    private static async Task<BenchReport> RunInProcessAsync(BenchOptions options, CancellationToken cancellationToken)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), $"sluice-bench-{Guid.NewGuid():N}");
        try
        {
            var serverOptions = ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dataDir };
            await using var server = await SluiceServer.StartAsync(serverOptions, ct: cancellationToken).ConfigureAwait(false);
            var local = options with { InProcess = false, Servers = [$"127.0.0.1:{server.Port}"] };
            if (local.Mode == BenchMode.Consumer)
            {
                var fill = local with { Mode = BenchMode.Producer, CreateStream = true, DeleteStream = false, PubBatch = 100, Partitions = Math.Max(local.Partitions, local.Partition + 1), Partition = 0 };
                var filled = await RunAsync(fill, cancellationToken).ConfigureAwait(false);
                if (filled.Errors > 0)
                {
                    throw new InvalidOperationException($"filling the in-process stream failed: {filled.FirstError}");
                }
            }

            var report = await RunAsync(local, cancellationToken).ConfigureAwait(false);
            return report with { Options = options };
        }
        finally
        {
            try
            {
                Directory.Delete(dataDir, recursive: true);
            }
            catch (DirectoryNotFoundException)
            {
            }
        }
    }

    private static async Task<BenchReport> ProduceAsync(BenchOptions options, IBenchTarget target, CancellationToken cancellationToken)
    {
        bool? created = options.CreateStream ? await target.CreateStreamAsync(cancellationToken).ConfigureAwait(false) : null;
        var workload = Workload.Generate(options.Messages, options.MessageSize, options.Partitions, options.Seed);
        var connections = new List<IBenchConnection>(options.Connections);
        var publishers = new List<IBenchPublisher>(options.Concurrent);
        try
        {
            for (var i = 0; i < options.Connections; i++)
            {
                connections.Add(await target.OpenConnectionAsync(cancellationToken).ConfigureAwait(false));
            }

            for (var i = 0; i < options.Concurrent; i++)
            {
                publishers.Add(await connections[i % connections.Count].OpenPublisherAsync(cancellationToken).ConfigureAwait(false));
            }

            var acks = options.AckPolicy != BenchAckPolicy.None;
            if (options.Warmup > 0)
            {
                var warmup = Workload.Generate(options.Warmup, options.MessageSize, options.Partitions, options.Seed + 1);
                await PublishAllAsync(options, publishers, publishers.Select(_ => new PublisherWorker()).ToArray(), warmup, acks, cancellationToken).ConfigureAwait(false);
            }

            var workers = publishers.Select(_ => new PublisherWorker()).ToArray();
            var client = ClientSnapshot.Take();
            using var probe = ProcessProbe.Start(options.ServerPids);
            var clock = Stopwatch.StartNew();
            await PublishAllAsync(options, publishers, workers, workload, acks, cancellationToken).ConfigureAwait(false);
            clock.Stop();
            var server = probe.Stop();
            var used = ClientSnapshot.Take() - client;

            var histogram = new Histograms.LatencyHistogram();
            foreach (var worker in workers)
            {
                histogram.Add(worker.Histogram);
            }

            var errors = workers.Sum(w => w.Errors);
            var delivered = options.Messages - errors;
            return Measured(options, clock, server, used, delivered, errors, delivered * options.MessageSize) with
            {
                Latency = LatencySummary.From(histogram),
                FirstError = workers.Select(w => w.FirstError).FirstOrDefault(e => e is not null)?.Message,
                StreamCreated = created,
            };
        }
        finally
        {
            foreach (var publisher in publishers)
            {
                await publisher.DisposeAsync().ConfigureAwait(false);
            }

            foreach (var connection in connections)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Publishes <paramref name="workload"/>, split evenly over the publishers, each driven by its worker.</summary>
    private static Task PublishAllAsync(BenchOptions options, List<IBenchPublisher> publishers, PublisherWorker[] workers, Workload workload, bool acks, CancellationToken cancellationToken)
    {
        var share = workload.Count / publishers.Count;
        var extra = workload.Count % publishers.Count;
        var runs = new Task[workers.Length];
        long from = 0;
        for (var w = 0; w < workers.Length; w++)
        {
            var (worker, publisher, start, end) = (workers[w], publishers[w], from, from + share + (w < extra ? 1 : 0));
            from = end;
            runs[w] = options.PubBatch <= 1
                ? Task.Run(() => worker.RunSyncAsync(publisher, workload, start, end, acks, cancellationToken), cancellationToken)
                : Task.Run(() => worker.RunWindowedAsync(publisher, workload, start, end, options.PubBatch, acks, cancellationToken), cancellationToken);
        }

        return Task.WhenAll(runs);
    }

    private static async Task<BenchReport> ConsumeAsync(BenchOptions options, IBenchTarget target, CancellationToken cancellationToken)
    {
        if (options.Warmup > 0)
        {
            await target.ConsumeAsync(Math.Min(options.Warmup, options.Messages), () => { }, cancellationToken).ConfigureAwait(false);
        }

        ClientSnapshot client = default;
        ProcessProbe? probe = null;
        var clock = new Stopwatch();
        try
        {
            var bytes = await target.ConsumeAsync(
                options.Messages,
                () =>
                {
                    client = ClientSnapshot.Take();
                    probe = ProcessProbe.Start(options.ServerPids);
                    clock.Start();
                },
                cancellationToken).ConfigureAwait(false);
            clock.Stop();
            var server = probe!.Stop();
            return Measured(options, clock, server, ClientSnapshot.Take() - client, options.Messages, errors: 0, bytes);
        }
        finally
        {
            probe?.Dispose();
        }
    }

    /// <summary>This process's CPU time, allocations and collections at one moment.</summary>
    /// <summary>A report of the counts, the timed part's duration, the server's CPU, peak RSS and steal, and the client's usage.</summary>
    private static BenchReport Measured(BenchOptions options, Stopwatch clock, ServerUsage server, ClientSnapshot used, long messages, long errors, long bytes)
    {
        return new BenchReport
        {
            Options = options,
            Messages = messages,
            Errors = errors,
            Bytes = bytes,
            DurationSeconds = clock.Elapsed.TotalSeconds,
            ServerCpuSeconds = server.CpuSeconds,
            ServerPeakRssKb = server.PeakRssKb,
            ServerProcesses = server.Processes,
            StealPercent = server.StealPercent,
            ClientCpuSeconds = used.CpuSeconds,
            ClientAllocatedBytes = used.AllocatedBytes,
            ClientGen0 = used.Gen0,
            ClientGen1 = used.Gen1,
            ClientGen2 = used.Gen2,
        };
    }

    private readonly record struct ClientSnapshot(double CpuSeconds, long AllocatedBytes, int Gen0, int Gen1, int Gen2)
    {
        public static ClientSnapshot Take()
        {
            using var self = Process.GetCurrentProcess();
            return new ClientSnapshot(
                self.TotalProcessorTime.TotalSeconds,
                GC.GetTotalAllocatedBytes(precise: false),
                GC.CollectionCount(0),
                GC.CollectionCount(1),
                GC.CollectionCount(2));
        }

        public static ClientSnapshot operator -(ClientSnapshot end, ClientSnapshot start) => new(
            end.CpuSeconds - start.CpuSeconds,
            end.AllocatedBytes - start.AllocatedBytes,
            end.Gen0 - start.Gen0,
            end.Gen1 - start.Gen1,
            end.Gen2 - start.Gen2);
    }
}
