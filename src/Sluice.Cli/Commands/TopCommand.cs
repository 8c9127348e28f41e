using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Serialization;
using Sluice.Cli.Output;
using Sluice.Client;
using Spectre.Console;

namespace Sluice.Cli.Commands;

/// <summary>
/// <c>sluice top</c>: the busiest partitions, refreshed every interval. Rates come from each partition leader's newest
/// offset (FetchPartitionMetadata), so it works against any broker, Liftbridge's included.
/// </summary>
internal static class TopCommand
{
    /// <summary>Partition leaders asked at once: a node with thousands of partitions is sampled without a burst of thousands of calls.</summary>
    private const int ParallelCalls = 16;

    public static Command Create()
    {
        var interval = FlagParsers.Duration("--interval", "How often to sample (default 1s)");
        var limit = new Option<int>("--limit", "-n") { Description = "How many partitions to show (default 20)", DefaultValueFactory = _ => 20 };
        var iterations = new Option<int>("--iterations") { Description = "Stop after this many samples (default: until Ctrl-C); the first sample only sets the baseline" };
        var streams = new Option<string[]>("--stream") { Description = "Only these streams (repeatable; default all)", AllowMultipleArgumentsPerToken = true };
        var command = new Command("top", "Show the busiest partitions live: messages per second, high watermark, newest offset, ISR") { interval, limit, iterations, streams };
        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, parsed) =>
        {
            var every = parsed.GetValue(interval) ?? TimeSpan.FromSeconds(1);
            var shown = parsed.GetValue(limit);
            var samples = parsed.GetValue(iterations);
            if (every <= TimeSpan.Zero || shown <= 0 || samples < 0)
            {
                throw new UsageException("--interval and --limit must be positive and --iterations not negative");
            }

            var sampler = new Sampler(session.Client, parsed.GetValue(streams) ?? []);
            if (session.Output.IsTerminal && !session.Output.IsJson && samples == 0)
            {
                await session.Output.Ansi.Live(new Text("sampling...")).StartAsync(async live =>
                {
                    while (!session.Interrupted.IsCancellationRequested)
                    {
                        var view = await sampler.NextAsync(session.Interrupted).ConfigureAwait(false);
                        live.UpdateTarget(Render(view, shown));
                        live.Refresh();
                        await Wait(every, session.Interrupted).ConfigureAwait(false);
                    }
                }).ConfigureAwait(false);
                return 0;
            }

            // Redirected, JSON or a fixed number of samples: one table (or JSON line) per sample after the baseline.
            for (var i = 0; samples == 0 || i < samples; i++)
            {
                var view = await sampler.NextAsync(session.Interrupted).ConfigureAwait(false);
                if (i > 0)
                {
                    if (session.Output.IsJson)
                    {
                        session.Output.WriteJson(view.ToJson(shown), TopJsonContext.Default.TopJson);
                    }
                    else
                    {
                        session.Output.Ansi.Write(Render(view, shown));
                    }

                    await session.Output.FlushAsync().ConfigureAwait(false);
                }

                if (samples == 0 || i + 1 < samples)
                {
                    await Wait(every, session.Interrupted).ConfigureAwait(false);
                }

                if (session.Interrupted.IsCancellationRequested)
                {
                    break;
                }
            }

            return 0;
        });
        return command;
    }

    private static async Task Wait(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Ctrl-C ends the view normally.
        }
    }

    private static Rows Render(View view, int shown)
    {
        var top = view.Busiest(shown);
        var table = CommandOutput.CreateTable("STREAM", "PARTITION", "LEADER", "ISR", "HIGH WATERMARK", "NEWEST OFFSET", "MSGS/S", "STATE");
        foreach (var row in top)
        {
            CommandOutput.AddRow(table, row.Stream, StreamCommand.Number(row.Partition), row.Leader, $"{row.Isr}/{row.Replicas}",
                StreamCommand.Number(row.HighWatermark), StreamCommand.Number(row.NewestOffset), Rate(row.Rate), row.State);
        }

        var header = string.Create(CultureInfo.InvariantCulture,
            $"{view.Time:HH:mm:ss}  {view.Partitions.Count} partitions, {Rate(view.TotalRate)} msgs/s in total, {view.UnderReplicated} under-replicated, {view.Unavailable} unreachable");
        return new Rows(new Text(header), table);
    }

    private static string Rate(double rate) => rate.ToString(rate >= 100 ? "F0" : "F1", CultureInfo.InvariantCulture);

    /// <summary>Samples every partition's leader and turns the change since the last sample into rates.</summary>
    private sealed class Sampler(SluiceClient client, IReadOnlyList<string> streams)
    {
        private Dictionary<(string, int), long> _previous = [];
        private long _previousAt;

        public async Task<View> NextAsync(CancellationToken cancellationToken)
        {
            var metadata = await client.FetchMetadataAsync(new FetchMetadataOptions { Streams = streams.Count > 0 ? streams : null }, cancellationToken).ConfigureAwait(false);
            var partitions = metadata.Streams.Values
                .SelectMany(s => s.Partitions.Values.Select(p => (Stream: s.Name, Partition: p)))
                .ToList();
            var rows = new Row?[partitions.Count];
            var unavailable = 0;
            await Parallel.ForEachAsync(
                Enumerable.Range(0, partitions.Count),
                new ParallelOptions { MaxDegreeOfParallelism = ParallelCalls, CancellationToken = cancellationToken },
                async (i, ct) =>
                {
                    var (stream, partition) = partitions[i];
                    try
                    {
                        var live = await client.FetchPartitionMetadataAsync(stream, partition.Id, ct).ConfigureAwait(false);
                        var state = live.Paused ? "paused" : live.Readonly ? "readonly" : live.Isr.Count < live.Replicas.Count ? "under-replicated" : "";
                        rows[i] = new Row(stream, partition.Id, live.LeaderId, live.Isr.Count, live.Replicas.Count, live.HighWatermark, live.NewestOffset, 0, state);
                    }
                    catch (SluiceException)
                    {
                        Interlocked.Increment(ref unavailable); // no leader right now, or it is unreachable
                    }
                }).ConfigureAwait(false);

            var now = Stopwatch.GetTimestamp();
            var seconds = _previousAt == 0 ? 0 : Stopwatch.GetElapsedTime(_previousAt, now).TotalSeconds;
            var sampled = rows.OfType<Row>()
                .Select(r => seconds > 0 && _previous.TryGetValue((r.Stream, r.Partition), out var before) && r.NewestOffset >= before
                    ? r with { Rate = (r.NewestOffset - before) / seconds }
                    : r)
                .ToList();
            _previous = sampled.ToDictionary(r => (r.Stream, r.Partition), r => r.NewestOffset);
            _previousAt = now;
            return new View(DateTimeOffset.Now, sampled, sampled.Count(r => r.Isr < r.Replicas), unavailable);
        }
    }

    private sealed record Row(string Stream, int Partition, string Leader, int Isr, int Replicas, long HighWatermark, long NewestOffset, double Rate, string State);

    private sealed record View(DateTimeOffset Time, IReadOnlyList<Row> Partitions, int UnderReplicated, int Unavailable)
    {
        public double TotalRate => Partitions.Sum(p => p.Rate);

        public IEnumerable<Row> Busiest(int count) => Partitions
            .OrderByDescending(p => p.Rate)
            .ThenByDescending(p => p.NewestOffset)
            .ThenBy(p => p.Stream, StringComparer.Ordinal)
            .ThenBy(p => p.Partition)
            .Take(count);

        public TopJson ToJson(int count) => new(
            Time.ToString("O", CultureInfo.InvariantCulture),
            Partitions.Count,
            Math.Round(TotalRate, 1),
            UnderReplicated,
            Unavailable,
            [.. Busiest(count).Select(r => new TopPartitionJson(r.Stream, r.Partition, r.Leader, r.Isr, r.Replicas, r.HighWatermark, r.NewestOffset, Math.Round(r.Rate, 1), r.State))]);
    }
}

/// <summary>One <c>sluice top --output json</c> sample (field names are part of the CLI's interface).</summary>
internal sealed record TopJson(string Time, int Partitions, double MessagesPerSecond, int UnderReplicated, int Unreachable, IReadOnlyList<TopPartitionJson> Busiest);

internal sealed record TopPartitionJson(string Stream, int Partition, string Leader, int Isr, int Replicas, long HighWatermark, long NewestOffset, double MessagesPerSecond, string State);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(TopJson))]
internal sealed partial class TopJsonContext : JsonSerializerContext;
