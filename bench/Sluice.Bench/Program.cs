using Sluice.Bench.Options;
using Sluice.Bench.Runs;

namespace Sluice.Bench;

/// <summary>The <c>sluice-bench</c> command: Liftbridge's producer/consumer benchmark against Sluice or NATS JetStream.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        return await RunAsync(args, Console.Out, Console.Error, stop.Token).ConfigureAwait(false);
    }

    /// <summary>Parses, runs and prints; returns 0 on success, 1 when the run failed or had errors, 2 on a usage error.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        BenchOptions? options;
        try
        {
            options = BenchArguments.Parse(args);
        }
        catch (BenchUsageException ex)
        {
            await error.WriteLineAsync($"sluice-bench: {ex.Message}\n\n{BenchArguments.Usage}").ConfigureAwait(false);
            return 2;
        }

        if (options is null)
        {
            await output.WriteLineAsync(BenchArguments.Usage).ConfigureAwait(false);
            return 0;
        }

        if (options.Mode == BenchMode.PartitionState)
        {
            return await ClusterModes.PartitionStateAsync(options, output, cancellationToken).ConfigureAwait(false);
        }

        if (options.Mode == BenchMode.Group)
        {
            return await GroupMode.RunAsync(options, output, cancellationToken).ConfigureAwait(false);
        }

        if (options.Mode == BenchMode.Pulse)
        {
            return await ClusterModes.PulseAsync(options, output, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            var report = await BenchRunner.RunAsync(options, cancellationToken).ConfigureAwait(false);
            await output.WriteLineAsync(options.Output == BenchOutput.Json ? report.ToJson() : report.ToText()).ConfigureAwait(false);
            return report.Errors == 0 ? 0 : 1;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync($"sluice-bench: {ex.GetType().Name}: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
    }
}
