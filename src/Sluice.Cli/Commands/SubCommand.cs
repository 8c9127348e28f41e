using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text;
using Sluice.Cli.Output;
using Sluice.Client;

namespace Sluice.Cli.Commands;

/// <summary>`sluice sub`: print a stream partition's messages until Ctrl-C, a count, or the latest offset.</summary>
internal static class SubCommand
{
    public static Command Create()
    {
        var stream = new Argument<string>("stream") { Description = "The stream to read" };
        var partition = new Option<int>("--partition", "-p") { Description = "Partition to read (default 0)" }.NotNegative();
        var from = new Option<StartSpec>("--from", "-f")
        {
            Description = "Where to start: earliest, latest, new (the default: only messages published from now on), "
                + "offset:N, time:RFC3339 (e.g. time:2026-11-21T16:00:00Z) or ago:DURATION (e.g. ago:5m)",
            HelpName = "position",
            DefaultValueFactory = _ => StartSpec.NewOnly,
            CustomParser = result => StartSpec.Parse(result, result.Tokens.Single().Value),
        };
        var count = new Option<long>("--count", "-n") { Description = "Exit after this many messages" }.NotNegative();
        var stopAtLatest = new Option<bool>("--stop-at-latest") { Description = "Exit after the partition's newest message at the time of subscribing" };
        var readIsr = new Option<bool>("--read-isr-replica") { Description = "Read from a random in-sync replica instead of the leader" };
        var resume = new Option<bool>("--resume") { Description = "Resume the partition if it is paused" };
        var headers = new Option<bool>("--headers") { Description = "Text output: print the headers (name=value,...) after the value" };
        var timestamps = new Option<bool>("--timestamp", "-t") { Description = "Text output: print each message's timestamp after its offset" };

        var command = new Command("sub", "Print a stream partition's messages: offset, key and value (UTF-8 when printable, else base64:...)")
        {
            stream, partition, from, count, stopAtLatest, readIsr, resume, headers, timestamps,
        };
        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, parsed) =>
        {
            var info = await session.GetStreamAsync(parsed.GetRequiredValue(stream)).ConfigureAwait(false);
            var partitionId = parsed.GetValue(partition);
            ClientSession.CheckPartitions(info, [partitionId]);
            var options = parsed.GetRequiredValue(from).Apply(new SubscribeOptions
            {
                Partition = partitionId,
                ReadIsrReplica = parsed.GetValue(readIsr),
                Resume = parsed.GetValue(resume),
            });
            if (parsed.GetValue(stopAtLatest))
            {
                options = options.StopAtLatest();
            }

            var limit = parsed.IsGiven(count) ? parsed.GetValue(count) : long.MaxValue;
            var format = new MessageFormat(session.Output, parsed.GetValue(headers), parsed.GetValue(timestamps));
            if (limit == 0)
            {
                return 0;
            }

            long received = 0;
            try
            {
                await foreach (var message in session.Client.SubscribeAsync(info.Name, options, session.Interrupted).ConfigureAwait(false))
                {
                    format.Write(message);
                    if (++received == limit)
                    {
                        break;
                    }
                }
            }
            catch (OperationCanceledException) when (session.Interrupted.IsCancellationRequested)
            {
                // Ctrl-C is how a subscription normally ends.
            }
            catch (ReadonlyPartitionException)
            {
                // The end of a readonly partition, or --stop-at-latest on an empty one: nothing more will come.
            }
            catch (StreamDeletedException)
            {
                throw new CommandException($"stream {info.Name} was deleted");
            }
            catch (PartitionPausedException)
            {
                throw new CommandException($"stream {info.Name} partition {partitionId} was paused (use --resume to resume it)");
            }

            return 0;
        });
        return command;
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

            _line.Clear().Append(message.Offset.ToString(CultureInfo.InvariantCulture));
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
