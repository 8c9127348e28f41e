using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text;
using System.Threading.Channels;
using Sluice.Cli.Output;
using Sluice.Client;
using Sluice.Protocol.Grpc;

namespace Sluice.Cli.Commands;

/// <summary>`sluice sub`: print a stream's messages (every partition, or one) until Ctrl-C, a count, the latest offset or a quiet period.</summary>
internal static class SubCommand
{
    // Messages read ahead of printing, across all partitions; a slow terminal holds the subscriptions back.
    private const int ReadAhead = 1024;

    public static Command Create()
    {
        var stream = new Argument<string>("stream") { Description = "The stream to read" };
        var partition = new Option<int>("--partition", "-p") { Description = "Read only this partition (default: every partition of the stream)" }.NotNegative();
        var from = new Option<StartSpec>("--from", "-f")
        {
            // No default value factory: help would print the record; StartSpec.NewOnly is applied when the flag is absent.
            Description = "Where to start: earliest, latest, new (the default: only messages published from now on), "
                + "offset:N, time:RFC3339 (e.g. time:2026-11-21T16:00:00Z) or ago:DURATION (e.g. ago:5m)",
            HelpName = "position",
            CustomParser = result => StartSpec.Parse(result, result.Tokens.Single().Value),
        };
        var count = new Option<long>("--count", "-n") { Description = "Exit after this many messages (over all the partitions read)" }.NotNegative();
        var stopAtLatest = new Option<bool>("--stop-at-latest") { Description = "Exit after each partition's newest message at the time of subscribing" };
        var idle = FlagParsers.Duration("--idle", "Exit (code 0) once no message has arrived for this long, e.g. 2s");
        var readIsr = new Option<bool>("--read-isr-replica") { Description = "Read from a random in-sync replica instead of the leader" };
        var resume = new Option<bool>("--resume") { Description = "Resume the partition if it is paused" };
        var headers = new Option<bool>("--headers") { Description = "Text output: print the headers (name=value,...) after the value" };
        var timestamps = new Option<bool>("--timestamp", "-t") { Description = "Text output: print each message's timestamp after its offset" };

        var command = new Command("sub", "Print a stream's messages: partition, offset, key and value (UTF-8 when printable, else base64:...)")
        {
            stream, partition, from, count, stopAtLatest, idle, readIsr, resume, headers, timestamps,
        };
        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, parsed) =>
        {
            var info = await session.GetStreamAsync(parsed.GetRequiredValue(stream)).ConfigureAwait(false);
            int[] partitions = parsed.IsGiven(partition) ? [parsed.GetValue(partition)] : [.. info.Partitions.Keys.Order()];
            ClientSession.CheckPartitions(info, partitions);
            var start = parsed.GetValue(from) ?? StartSpec.NewOnly;
            var template = start.Apply(new SubscribeOptions
            {
                ReadIsrReplica = parsed.GetValue(readIsr),
                Resume = parsed.GetValue(resume),
            });
            if (parsed.GetValue(stopAtLatest))
            {
                template = template.StopAtLatest();
            }

            var limit = parsed.IsGiven(count) ? parsed.GetValue(count) : long.MaxValue;
            var format = new MessageFormat(session.Output, parsed.GetValue(headers), parsed.GetValue(timestamps));
            if (limit == 0)
            {
                return 0;
            }

            var reader = new PartitionReader(session, info.Name, template);
            return await reader.PrintAsync(partitions, format, limit, parsed.GetValue(idle)).ConfigureAwait(false);
        });
        return command;
    }

    /// <summary>Subscribes to each partition at once and prints their messages as they arrive, merged into one output.</summary>
    private sealed class PartitionReader(ClientSession session, string stream, SubscribeOptions template)
    {
        private readonly Channel<SluiceMessage> _messages = Channel.CreateBounded<SluiceMessage>(
            new BoundedChannelOptions(ReadAhead) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

        public async Task<int> PrintAsync(int[] partitions, MessageFormat format, long limit, TimeSpan? idle)
        {
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(session.Interrupted);
            var readers = partitions.Select(p => ReadAsync(p, stop)).ToArray();
            var allEnded = Task.WhenAll(readers).ContinueWith(_ => _messages.Writer.TryComplete(), CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            long received = 0;
            try
            {
                while (received < limit && await WaitAsync(idle).ConfigureAwait(false))
                {
                    while (received < limit && _messages.Reader.TryRead(out var message))
                    {
                        format.Write(message);
                        received++;
                    }
                }
            }
            catch (OperationCanceledException) when (session.Interrupted.IsCancellationRequested)
            {
                // Ctrl-C is how a subscription normally ends.
            }
            finally
            {
                await stop.CancelAsync().ConfigureAwait(false);
                await allEnded.ConfigureAwait(false);
            }

            await Task.WhenAll(readers).ConfigureAwait(false); // a partition's failure, worded by ReadAsync
            return 0;
        }

        /// <summary>True when a message is ready; false when every partition has ended or none arrived for <paramref name="idle"/>.</summary>
        private async Task<bool> WaitAsync(TimeSpan? idle)
        {
            if (idle is not { } quiet)
            {
                return await _messages.Reader.WaitToReadAsync(session.Interrupted).ConfigureAwait(false);
            }

            using var quietPeriod = CancellationTokenSource.CreateLinkedTokenSource(session.Interrupted);
            quietPeriod.CancelAfter(quiet);
            try
            {
                return await _messages.Reader.WaitToReadAsync(quietPeriod.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!session.Interrupted.IsCancellationRequested)
            {
                return false;
            }
        }

        private async Task ReadAsync(int partition, CancellationTokenSource stop)
        {
            try
            {
                await foreach (var message in session.Client.SubscribeAsync(stream, template with { Partition = partition }, stop.Token).ConfigureAwait(false))
                {
                    await _messages.Writer.WriteAsync(message, stop.Token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                // Ended by Ctrl-C, --count, --idle or another partition's failure.
            }
            catch (ReadonlyPartitionException)
            {
                // The end of a readonly partition, or --stop-at-latest on an empty one: nothing more will come.
            }
            catch (Exception e)
            {
                await stop.CancelAsync().ConfigureAwait(false); // one partition failing ends the command
                throw e switch
                {
                    StreamDeletedException => new CommandException($"stream {stream} was deleted"),
                    PartitionPausedException => new CommandException($"stream {stream} partition {partition} was paused (run sub with --resume to resume it)"),
                    // The server refuses to open a subscription on a paused partition with FAILED_PRECONDITION; its text names the API field.
                    SluiceException { StatusCode: GrpcStatusCode.FailedPrecondition } when !template.Resume =>
                        new CommandException($"stream {stream} partition {partition} is paused (run sub with --resume to resume it)"),
                    _ => e,
                };
            }
        }
    }

    /// <summary>A parsed --from value.</summary>
    internal sealed record StartSpec(StartPosition Position, long Offset = 0, DateTimeOffset? Time = null, TimeSpan? Ago = null)
    {
        public static StartSpec NewOnly { get; } = new(StartPosition.NewOnly);

        public SubscribeOptions Apply(SubscribeOptions options) => Position switch
        {
            StartPosition.Earliest => options.StartAtEarliest(),
            StartPosition.Latest => options.StartAtLatest(),
            StartPosition.Offset => options.StartAtOffset(Offset),
            StartPosition.Timestamp when Ago is { } ago => options.StartAtTimeDelta(ago),
            StartPosition.Timestamp => options.StartAtTime(Time!.Value),
            _ => options.StartAtNewOnly(),
        };

        public static StartSpec? Parse(ArgumentResult result, string text)
        {
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            var kind = (colon < 0 ? text : text[..colon]).ToLowerInvariant();
            var value = colon < 0 ? null : text[(colon + 1)..];
            switch (kind)
            {
                case "earliest" when value is null:
                    return new(StartPosition.Earliest);
                case "latest" when value is null:
                    return new(StartPosition.Latest);
                case "new" when value is null:
                    return NewOnly;
                case "offset" when long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var offset):
                    return new(StartPosition.Offset, Offset: offset);
                case "time" when DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time):
                    return new(StartPosition.Timestamp, Time: time);
                case "ago" when value is not null:
                    var ago = FlagParsers.ParseDuration(result, value, "--from ago");
                    return ago is null ? null : new(StartPosition.Timestamp, Ago: ago);
                default:
                    result.AddError($"--from: \"{text}\" is not one of earliest, latest, new, offset:N, time:RFC3339, ago:DURATION");
                    return null;
            }
        }
    }

    /// <summary>One line per message, as text columns or as a JSON object.</summary>
    private sealed class MessageFormat(CommandOutput output, bool headers, bool timestamps)
    {
        private readonly StringBuilder _line = new();

        public void Write(SluiceMessage message)
        {
            if (output.IsJson)
            {
                output.WriteJson(ToJson(message), CliJsonContext.Default.MessageJson);
                return;
            }

            _line.Clear().Append(message.Partition.ToString(CultureInfo.InvariantCulture))
                .Append('\t').Append(message.Offset.ToString(CultureInfo.InvariantCulture));
            if (timestamps)
            {
                _line.Append('\t').Append(Timestamps.Format(message.Timestamp));
            }

            _line.Append('\t').Append(Payload.ForText(message.Key.Span)).Append('\t').Append(Payload.ForText(message.Value.Span));
            if (headers)
            {
                _line.Append('\t').AppendJoin(',', message.Headers.OrderBy(h => h.Key, StringComparer.Ordinal)
                    .Select(h => h.Key + "=" + Payload.ForText(h.Value.Span)));
            }

            output.WriteLine(_line.ToString());
        }

        private static MessageJson ToJson(SluiceMessage message)
        {
            var key = Payload.TryDecodeUtf8(message.Key.Span);
            var value = Payload.TryDecodeUtf8(message.Value.Span);
            var headerTexts = message.Headers.ToDictionary(h => h.Key, h => Payload.TryDecodeUtf8(h.Value.Span), StringComparer.Ordinal);
            var utf8 = key is not null && value is not null && headerTexts.Values.All(v => v is not null);
            return new MessageJson(
                message.Stream,
                message.Partition,
                message.Offset,
                Timestamps.Format(message.Timestamp),
                utf8 ? "utf8" : "base64",
                utf8 ? key! : Convert.ToBase64String(message.Key.Span),
                utf8 ? value! : Convert.ToBase64String(message.Value.Span),
                utf8
                    ? headerTexts.ToDictionary(h => h.Key, h => h.Value!, StringComparer.Ordinal)
                    : message.Headers.ToDictionary(h => h.Key, h => Convert.ToBase64String(h.Value.Span), StringComparer.Ordinal));
        }
    }
}
