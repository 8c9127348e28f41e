using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Threading.Channels;
using Sluice.Cli.Output;
using Sluice.Client;
using Spectre.Console;

namespace Sluice.Cli.Commands;

/// <summary>`sluice pub`: publish values from the arguments or lines from stdin, pipelined.</summary>
internal static class PubCommand
{
    // Enough acks outstanding to keep the publish stream's batches full; bounds memory when stdin never ends.
    private const int MaxInFlight = 1024;

    // Stdin is read in large chunks: one read per line would dominate a 10,000-line publish.
    private const int StdinBufferSize = 64 * 1024;

    public static Command Create()
    {
        var stream = new Argument<string>("stream") { Description = "The stream to publish to" };
        var values = new Argument<string[]>("values")
        {
            Description = "Message values; with none (or just -), each line of stdin is a message",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var key = new Option<string>("--key", "-k") { Description = "Message key (also what --partition-by-key hashes)" };
        var headers = new Option<string[]>("--header", "-H")
        {
            Description = "Message header name=value (repeatable)",
            HelpName = "name=value",
            AllowMultipleArgumentsPerToken = false,
        };
        var partition = new Option<int>("--partition", "-p") { Description = "Publish to this partition (default 0)" }.NotNegative();
        var byKey = new Option<bool>("--partition-by-key") { Description = "Choose the partition from the key's CRC-32 (as every Liftbridge client does)" };
        var roundRobin = new Option<bool>("--round-robin") { Description = "Spread the messages over the partitions in turn" };
        var ackPolicy = new Option<string>("--ack-policy")
        {
            Description = "When the server acks: leader (stored by the leader, the default), all (by every in-sync replica) or none (no ack)",
            DefaultValueFactory = _ => "leader",
            HelpName = "none|leader|all",
        };
        ackPolicy.AcceptOnlyFromAmong("none", "leader", "all");
        var expectedOffset = new Option<long>("--expected-offset")
        {
            Description = "Offset the first message must get (streams with --optimistic-concurrency); the next ones expect +1, +2, ...",
        }.NotNegative();
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print every ack when reading stdin too (normally a summary)" };
        var input = new Option<string>("--input", "-i")
        {
            // No default value factory, so help shows no "[default: ...]" beside the list; raw applies when absent.
            Description = "How each value (argument or stdin line) is read: raw (the default: its bytes as they are), "
                + "base64 (with or without sub's base64: prefix), hex, or sub (a value as sub prints it: base64:... decoded, anything else as is)",
            HelpName = "raw|base64|hex|sub",
        };
        input.AcceptOnlyFromAmong(InputDecoder.Modes);

        var command = new Command("pub", "Publish messages to a stream and print where they were stored")
        {
            stream, values, key, headers, partition, byKey, roundRobin, ackPolicy, expectedOffset, verbose, input,
        };
        command.Validators.Add(result =>
        {
            var chosen = new Option[] { partition, byKey, roundRobin }.Count(o => result.GetResult(o) is { Implicit: false });
            if (chosen > 1)
            {
                result.AddError("--partition, --partition-by-key and --round-robin exclude each other");
            }
        });

        ClientCommand.SetAction(command, new ConnectionFlags(), async (session, parsed) =>
        {
            var metadata = await session.Client.FetchMetadataAsync(new FetchMetadataOptions { Streams = [parsed.GetRequiredValue(stream)] }, session.Interrupted)
                .ConfigureAwait(false);
            var info = metadata.GetStream(parsed.GetRequiredValue(stream)) ?? throw new CommandException($"stream {parsed.GetRequiredValue(stream)} does not exist");
            ClientSession.CheckPartitions(info, [parsed.GetValue(partition)]);

            var options = new MessageOptions
            {
                Key = parsed.GetValue(key) is { } k ? Encoding.UTF8.GetBytes(k) : ReadOnlyMemory<byte>.Empty,
                AckPolicy = parsed.GetValue(ackPolicy) switch { "none" => AckPolicy.None, "all" => AckPolicy.All, _ => AckPolicy.Leader },
            };
            foreach (var header in parsed.GetValue(headers) ?? [])
            {
                var equals = header.IndexOf('=', StringComparison.Ordinal);
                if (equals <= 0)
                {
                    throw new UsageException($"--header \"{header}\" is not name=value");
                }

                options = options.WithHeader(header[..equals], Encoding.UTF8.GetBytes(header[(equals + 1)..]));
            }

            IPartitioner? partitioner = parsed.GetValue(byKey) ? new KeyPartitioner() : parsed.GetValue(roundRobin) ? new RoundRobinPartitioner() : null;
            var given = parsed.GetValue(values) ?? [];
            var fromStdin = given.Length == 0 || given is ["-"];
            if (!fromStdin && given.Contains("-"))
            {
                throw new UsageException("\"-\" (read stdin) cannot be mixed with values");
            }

            using var publisher = new Publisher(session, info.Name, options, metadata, partitioner, parsed.GetValue(partition),
                parsed.IsGiven(expectedOffset) ? parsed.GetValue(expectedOffset) : null,
                printEachAck: session.Output.IsJson || !fromStdin || parsed.GetValue(verbose));
            var decoder = new InputDecoder(parsed.GetValue(input) ?? InputDecoder.Raw, fromStdin ? "stdin line" : "value");
            var source = Decode(fromStdin ? ReadStdinLinesAsync(Console.OpenStandardInput(), session.Interrupted) : Encode(given), decoder);
            var failure = session.Output is { IsJson: false, IsTerminal: true } && fromStdin && !parsed.GetValue(verbose)
                ? await publisher.PublishWithProgressAsync(source).ConfigureAwait(false)
                : await publisher.PublishAsync(source).ConfigureAwait(false);
            if (!publisher.PrintsEachAck)
            {
                publisher.PrintSummary();
            }

            return failure is null ? 0 : throw failure;
        });
        return command;
    }

    private static async IAsyncEnumerable<byte[]> Encode(string[] values)
    {
        foreach (var value in values)
        {
            yield return Encoding.UTF8.GetBytes(value);
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    private static async IAsyncEnumerable<byte[]> Decode(IAsyncEnumerable<byte[]> values, InputDecoder decoder)
    {
        long number = 0;
        await foreach (var value in values.ConfigureAwait(false))
        {
            yield return decoder.Decode(value, ++number);
        }
    }

    /// <summary>
    /// The lines of stdin as bytes, unchanged: a line ends at \n (a \r before it belongs to the line ending, for files
    /// written on Windows). Text decoding would turn bytes that are not UTF-8 into U+FFFD.
    /// </summary>
    internal static async IAsyncEnumerable<byte[]> ReadStdinLinesAsync(Stream stdin, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        var buffer = new byte[StdinBufferSize];
        var filled = 0;
        while (true)
        {
            var read = await stdin.ReadAsync(buffer.AsMemory(filled), ct).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            filled += read;
            var lineStart = 0;
            int newline;
            while ((newline = Array.IndexOf(buffer, (byte)'\n', lineStart, filled - lineStart)) >= 0)
            {
                yield return Line(buffer, lineStart, newline);
                lineStart = newline + 1;
            }

            filled -= lineStart;
            Buffer.BlockCopy(buffer, lineStart, buffer, 0, filled);
            if (filled == buffer.Length)
            {
                Array.Resize(ref buffer, buffer.Length * 2); // a line longer than the buffer
            }
        }

        if (filled > 0)
        {
            yield return Line(buffer, 0, filled); // the last line had no \n
        }

        static byte[] Line(byte[] buffer, int start, int end) =>
            buffer[start..(end > start && buffer[end - 1] == (byte)'\r' ? end - 1 : end)];
    }

    /// <summary>Turns a value as given (an argument's UTF-8 or a stdin line's bytes) into the bytes to publish.</summary>
    internal sealed class InputDecoder(string mode, string what)
    {
        public const string Raw = "raw";

        public static readonly string[] Modes = [Raw, "base64", "hex", "sub"];

        public byte[] Decode(byte[] value, long number)
        {
            try
            {
                return mode switch
                {
                    "base64" => Convert.FromBase64String(WithoutBase64Prefix(Text(value).Trim())),
                    "hex" => Convert.FromHexString(Text(value).Trim()),
                    "sub" when value.AsSpan().StartsWith(Base64Prefix) => Convert.FromBase64String(Text(value)[Payload.Base64Prefix.Length..]),
                    _ => value,
                };
            }
            catch (FormatException)
            {
                throw new UsageException($"{what} {number} is not {(mode == "hex" ? "hex" : "base64")} (--input {mode})");
            }
        }

        private static ReadOnlySpan<byte> Base64Prefix => "base64:"u8;

        private static string Text(byte[] value) => Encoding.ASCII.GetString(value);

        private static string WithoutBase64Prefix(string text) =>
            text.StartsWith(Payload.Base64Prefix, StringComparison.Ordinal) ? text[Payload.Base64Prefix.Length..] : text;
    }

    private readonly record struct Outcome(long Index, int Partition, SluiceAck? Ack, Exception? Error);

    /// <summary>
    /// Sends messages without waiting for each ack (at most <see cref="MaxInFlight"/> outstanding) and reports the
    /// acks in input order, whatever order they arrive in.
    /// </summary>
    private sealed class Publisher(
        ClientSession session, string stream, MessageOptions options, SluiceMetadata metadata, IPartitioner? partitioner, int partition,
        long? expectedOffset, bool printEachAck) : IDisposable
    {
        private readonly Channel<Outcome> _outcomes = Channel.CreateUnbounded<Outcome>(new UnboundedChannelOptions { SingleReader = true });
        private readonly SemaphoreSlim _window = new(MaxInFlight);
        private readonly TaskCompletionSource _allAcked = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Dictionary<int, (long First, long Last)> _offsets = [];
        private readonly Stopwatch _clock = new();
        private long _outstanding;
        private volatile bool _sendingDone;
        private volatile bool _failed;
        private long _reported;
        private Outcome? _firstError;

        public long Reported => Interlocked.Read(ref _reported);

        public void Dispose() => _window.Dispose();

        public bool PrintsEachAck => printEachAck;

        /// <summary>Publishes under a live progress line (a terminal is watching and nothing else is printed meanwhile).</summary>
        public async Task<CommandException?> PublishWithProgressAsync(IAsyncEnumerable<byte[]> source)
        {
            CommandException? failure = null;
            await session.Output.Ansi.Progress()
                .AutoClear(true)
                .Columns(new SpinnerColumn(), new TaskDescriptionColumn { Alignment = Justify.Left }, new ElapsedTimeColumn())
                .StartAsync(async context =>
                {
                    var task = context.AddTask($"publishing to {stream}");
                    task.IsIndeterminate = true;
                    using var ticker = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
                    var run = PublishAsync(source);
                    while (!run.IsCompleted)
                    {
                        var done = Reported;
                        var seconds = Math.Max(_clock.Elapsed.TotalSeconds, 0.001);
                        task.Description = $"publishing to {Markup.Escape(stream)}: {done:N0} acked ({done / seconds:N0} msg/s)";
                        await Task.WhenAny(run, ticker.WaitForNextTickAsync().AsTask()).ConfigureAwait(false);
                    }

                    failure = await run.ConfigureAwait(false);
                }).ConfigureAwait(false);
            return failure;
        }

        /// <summary>Publishes everything the source yields; returns why it stopped early, if it did.</summary>
        public async Task<CommandException?> PublishAsync(IAsyncEnumerable<byte[]> source)
        {
            _clock.Start();
            var reporter = ReportAsync();
            long sent = 0;
            var interrupted = false;
            try
            {
                await foreach (var value in source.ConfigureAwait(false))
                {
                    if (_failed)
                    {
                        break;
                    }

                    await SendAsync(sent++, value).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (session.Interrupted.IsCancellationRequested)
            {
                interrupted = true;
            }
            finally
            {
                _sendingDone = true;
                if (Interlocked.Read(ref _outstanding) == 0)
                {
                    _allAcked.TrySetResult();
                }

                // Acks still on their way arrive, or time out after the client's ack wait time.
                await _allAcked.Task.ConfigureAwait(false);
                _outcomes.Writer.TryComplete();
                await reporter.ConfigureAwait(false);
                _clock.Stop();
            }

            if (_firstError is { } failure)
            {
                return new CommandException($"message {failure.Index + 1} (partition {failure.Partition}): {Describe(failure.Error!)}"
                    + (Reported > 0 ? $"; the {Reported} before it were published" : ""));
            }

            return interrupted ? new CommandException($"interrupted after {Reported} messages") : null;
        }

        private async Task SendAsync(long index, byte[] value)
        {
            var target = partitioner?.GetPartition(stream, options.Key.Span, value, metadata) ?? partition;
            var messageOptions = options with
            {
                Partition = target,
                ExpectedOffset = expectedOffset is { } first ? first + index : -1,
            };
            if (options.AckPolicy == AckPolicy.None)
            {
                await session.Client.PublishAsync(stream, value, static (_, _) => { }, messageOptions, session.Interrupted).ConfigureAwait(false);
                _outcomes.Writer.TryWrite(new Outcome(index, target, null, null));
                return;
            }

            await _window.WaitAsync(session.Interrupted).ConfigureAwait(false);
            Interlocked.Increment(ref _outstanding);
            try
            {
                await session.Client.PublishAsync(stream, value, (ack, error) => Complete(new Outcome(index, target, ack, error)), messageOptions, session.Interrupted)
                    .ConfigureAwait(false);
            }
            catch (Exception e)
            {
                Complete(new Outcome(index, target, null, e)); // never queued: no ack will come
                if (e is not SluiceException)
                {
                    throw; // interrupted, or a bug: stop reading input
                }
            }
        }

        private void Complete(Outcome outcome)
        {
            if (outcome.Error is not null)
            {
                _failed = true;
            }

            _outcomes.Writer.TryWrite(outcome);
            _window.Release();
            if (Interlocked.Decrement(ref _outstanding) == 0 && _sendingDone)
            {
                _allAcked.TrySetResult();
            }
        }

        /// <summary>Prints (or counts) outcomes in input order; stops printing at the first failure.</summary>
        private async Task ReportAsync()
        {
            var early = new Dictionary<long, Outcome>();
            long next = 0;
            await foreach (var outcome in _outcomes.Reader.ReadAllAsync().ConfigureAwait(false))
            {
                early[outcome.Index] = outcome;
                while (early.Remove(next, out var ready))
                {
                    next++;
                    if (_firstError is not null)
                    {
                        continue;
                    }

                    if (ready.Error is not null || (ready.Ack is null && options.AckPolicy != AckPolicy.None))
                    {
                        _firstError = ready.Error is null ? ready with { Error = new SluiceException("no ack") } : ready;
                        continue;
                    }

                    Record(ready);
                }
            }

            // Outcomes after a gap (a message that was never sent) are not reported: input order is the contract.
        }

        private void Record(Outcome outcome)
        {
            Interlocked.Increment(ref _reported);
            if (outcome.Ack is { } ack)
            {
                _offsets[outcome.Partition] = _offsets.TryGetValue(outcome.Partition, out var range) ? (range.First, ack.Offset) : (ack.Offset, ack.Offset);
            }

            if (!printEachAck)
            {
                return;
            }

            if (session.Output.IsJson)
            {
                session.Output.WriteJson(new AckJson(outcome.Index, stream, outcome.Partition, outcome.Ack?.Offset), CliJsonContext.Default.AckJson);
            }
            else
            {
                session.Output.WriteLine(outcome.Ack is { } a
                    ? $"partition {outcome.Partition} offset {a.Offset.ToString(CultureInfo.InvariantCulture)}"
                    : $"partition {outcome.Partition} sent (ack policy none)");
            }
        }

        public void PrintSummary()
        {
            var count = Reported;
            var seconds = Math.Max(_clock.Elapsed.TotalSeconds, 0.001);
            var offsets = _offsets.Count == 0
                ? ""
                : "; offsets " + string.Join(", ", _offsets.OrderBy(o => o.Key).Select(o => $"partition {o.Key}: {o.Value.First}-{o.Value.Last}"));
            session.Output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"published {count} message{(count == 1 ? "" : "s")} to {stream} in {seconds:0.00}s ({count / seconds:0} msg/s){offsets}"));
        }

        private string Describe(Exception error) => error switch
        {
            ReadonlyPartitionException => "the partition is readonly",
            NoSuchPartitionException => $"stream {stream} or its partition does not exist",
            PartitionPausedException => "the partition is paused",
            _ => ClientCommand.Describe(error, session.Servers, session.Interrupted.IsCancellationRequested).Message,
        };
    }
}
