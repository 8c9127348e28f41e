using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Sluice.Bench.Options;
using Sluice.Bench.Targets;
using Sluice.Client;

namespace Sluice.Bench.Runs;

/// <summary>
/// The two modes bench/cluster.sh uses around a local cluster: <c>partition-state</c> (who leads a
/// partition, who is in its ISR) and <c>pulse</c> (a publisher whose pauses between acks are printed with
/// wall-clock times, so the script can match them with the moments it killed a leader).
/// </summary>
public static class ClusterModes
{
    /// <summary>Prints <c>{"leader":..,"replicas":[..],"isr":[..]}</c>; returns 1 when the partition is unknown.</summary>
    public static async Task<int> PartitionStateAsync(BenchOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        await using var client = await SluiceClient.ConnectAsync(options.ServersOrDefault, SluiceClientOptions.Default, cancellationToken).ConfigureAwait(false);
        var metadata = await client.FetchMetadataAsync(null, cancellationToken).ConfigureAwait(false);
        var partition = metadata.GetStream(options.Stream)?.GetPartition(options.Partition);
        using var buffer = new MemoryStream();
        await using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("stream", options.Stream);
            json.WriteNumber("partition", options.Partition);
            if (partition is not null)
            {
                json.WriteString("leader", partition.LeaderId);
                json.WriteStartArray("replicas");
                foreach (var replica in partition.Replicas)
                {
                    json.WriteStringValue(replica);
                }

                json.WriteEndArray();
                json.WriteStartArray("isr");
                foreach (var member in partition.Isr)
                {
                    json.WriteStringValue(member);
                }

                json.WriteEndArray();
            }

            json.WriteEndObject();
        }

        await output.WriteLineAsync(System.Text.Encoding.UTF8.GetString(buffer.ToArray())).ConfigureAwait(false);
        return partition is null ? 1 : 0;
    }

    /// <summary>
    /// Publishes one message at a time (awaiting each ack) to <see cref="BenchOptions.Stream"/> until
    /// SIGTERM, SIGINT or <paramref name="cancellationToken"/>. Every pause between two successful acks
    /// longer than <see cref="BenchOptions.GapMilliseconds"/> is printed at once as
    /// <c>gap FROM_US TO_US ERRORS [FIRST_ERROR]</c>: the Unix-epoch microseconds of the last ack before the
    /// pause and of the first ack after it, and how many publishes failed in between; and, at most once a
    /// second while acks flow, <c>ack NOW_US TOTAL</c>. The client is used as an
    /// application would use it: default options (idempotent publishing on, 5 s ack wait), so a publish in flight
    /// when its leader dies is resent to the new leader with the same message id.
    /// </summary>
    public static async Task<int> PulseAsync(BenchOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }

        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);

        await using var client = await SluiceClient.ConnectAsync(options.ServersOrDefault, SluiceClientOptions.Default, stop.Token).ConfigureAwait(false);
        var workload = Workload.Generate(1024, options.MessageSize, partitions: 1, options.Seed);
        var messageOptions = new MessageOptions { Partition = options.Partition, AckPolicy = SluiceTarget.ToClient(options.AckPolicy) };
        var gap = options.GapMilliseconds * 1000L;
        long acked = 0;
        long errors = 0;
        long errorsInGap = 0;
        string? firstErrorInGap = null;
        var lastAck = UnixMicroseconds();
        var lastBeat = lastAck;
        var started = Stopwatch.GetTimestamp();
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"pulse {options.Stream} ack {options.AckPolicy.ToString().ToLowerInvariant()} from {lastAck}")).ConfigureAwait(false);
        for (long i = 0; !stop.IsCancellationRequested; i++)
        {
            try
            {
                await client.PublishAsync(options.Stream, workload[i % workload.Count].Value, messageOptions, stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                errors++;
                if (errorsInGap++ == 0)
                {
                    firstErrorInGap = $"{ex.GetType().Name}: {ex.Message}".ReplaceLineEndings(" ");
                }

                continue;
            }

            acked++;
            var now = UnixMicroseconds();
            if (now - lastAck > gap)
            {
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"gap {lastAck} {now} {errorsInGap}{(firstErrorInGap is null ? "" : " " + firstErrorInGap)}")).ConfigureAwait(false);
                await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            }

            if (now - lastBeat >= 1_000_000)
            {
                // A heartbeat, so a script can wait until acks flow again before its next kill.
                await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"ack {now} {acked}")).ConfigureAwait(false);
                await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                lastBeat = now;
            }

            lastAck = now;
            errorsInGap = 0;
            firstErrorInGap = null;
        }

        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"acked {acked} errors {errors} in {seconds:F1} s")).ConfigureAwait(false);
        return 0;
    }

    private static long UnixMicroseconds() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / 10;
}
