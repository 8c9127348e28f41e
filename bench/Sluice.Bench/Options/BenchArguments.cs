using System.Globalization;

namespace Sluice.Bench.Options;

/// <summary>The command line was wrong; the message says what to change.</summary>
public sealed class BenchUsageException(string message) : Exception(message);

/// <summary>
/// Parses the command line. The flags follow Liftbridge's bench/producer and bench/consumer
/// (same long names, short aliases and defaults), plus <c>--target</c> to pick the system.
/// </summary>
public static class BenchArguments
{
    public const string Usage = """
        usage: sluice-bench <producer|consumer|group|partition-state|pulse> [flags]

          group             a consumer group of -c members drains the first -n messages of --stream (publish
                            them first in producer mode), then a member joins and one leaves while a publisher
                            keeps every partition busy: prints msgs/s and each rebalance's time until every
                            partition is read again by its new owner

          partition-state   print the leader, replicas and ISR of --stream/--partition as one JSON line
          pulse             publish to --stream until SIGTERM/SIGINT (--pub-batch in flight, default 1) and
                            print "gap FROM_US TO_US ERRORS [FIRST_ERROR]" (Unix microseconds) for every pause
                            between acks over --gap-ms, then "acked N errors M"

          -t, --target sluice|jetstream   system under test (default sluice)
          -s, --servers a,b               servers (default 127.0.0.1:9292, or nats://127.0.0.1:4222 for jetstream)
              --stream NAME               stream name (default bench-stream)
              --subject SUBJECT           subject the stream records (default bench-subject)
          -n, --messages N                messages to publish or read (default 100000)
              --message-size, --ms N      payload bytes (default 256)
              --pub-batch, --pb N         1 = synchronous publish per message; N > 1 = N publishes in flight
                                          per publisher (sliding window) (default 1)
          -c, --concurrent N              publishers (default 1)
              --connections N             client connections the publishers share, publisher i on
                                          connection i mod N (default 1: like Liftbridge's tool, whose
                                          goroutines share one client; N = -c gives each its own)
              --warmup N                  messages published (or read) before the timed part, by the same
                                          publishers (or a first subscription): the client code is then
                                          JIT-tiered as in a long-running app (default 0)
          -p, --partitions N              partitions; messages go round-robin (default 1)
              --replication-factor N      replication factor of the stream --create-stream creates
                                          (default 1; -1 = every broker; jetstream: replicas 1..5, whose
                                          PubAck waits for a quorum of them)
              --min-isr N                 min ISR of that stream for ack policy all (default: the server's)
              --gap-ms N                  pulse: report pauses between acks longer than this (default 50)
              --fetch-interval-ms N       group: the members' assignment fetch interval (default: the
                                          consumer's, 0.4 x the server's groups.consumer.timeout)
              --partition N               partition consumer mode reads (default 0)
              --ack-policy none|leader|all  (default leader)
              --transport native|httpclient   HTTP/2 under Sluice's client (default native)
              --create-stream             create the stream first (an existing one is kept)
              --delete-stream             delete the stream at the end
          -o, --output text|json          (default text)
              --timeout SECONDS           fail the run after this long (default 600)
              --server-pid PID[,PID...]   measure these server processes' CPU time and memory around the timed
                                          part, summed (every process a system needs: brokers, etcd, ...)
              --seed N                    seed of the random payloads (default 1)
              --in-process                start a Sluice server in this process (temp dir, free port) and
                                          report allocations and GCs of client and server together
          -h, --help
        """;

    /// <summary>Parses <paramref name="args"/>; null means help was asked for.</summary>
    /// <exception cref="BenchUsageException">An unknown flag, a missing or malformed value, or an invalid combination.</exception>
    public static BenchOptions? Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Count == 0)
        {
            throw new BenchUsageException("missing mode: producer or consumer");
        }

        if (args[0] is "-h" or "--help" or "help")
        {
            return null;
        }

        var options = BenchOptions.Default with
        {
            Mode = args[0] switch
            {
                "producer" => BenchMode.Producer,
                "consumer" => BenchMode.Consumer,
                "partition-state" => BenchMode.PartitionState,
                "pulse" => BenchMode.Pulse,
                "group" => BenchMode.Group,
                _ => throw new BenchUsageException($"unknown mode '{args[0]}': expected producer, consumer, group, partition-state or pulse"),
            },
        };

        for (var i = 1; i < args.Count; i++)
        {
            var arg = args[i];
            string? inline = null;
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                inline = arg[(eq + 1)..];
                arg = arg[..eq];
            }

            string Value()
            {
                if (inline is not null)
                {
                    return inline;
                }

                if (i + 1 >= args.Count)
                {
                    throw new BenchUsageException($"{arg} needs a value");
                }

                return args[++i];
            }

            void NoValue()
            {
                if (inline is not null)
                {
                    throw new BenchUsageException($"{arg} takes no value");
                }
            }

            switch (arg)
            {
                case "-h" or "--help":
                    return null;
                case "-t" or "--target":
                    options = options with { Target = Enum(Value(), arg, ("sluice", BenchTarget.Sluice), ("liftbridge", BenchTarget.Sluice), ("jetstream", BenchTarget.JetStream)) };
                    break;
                case "-s" or "--servers":
                    var servers = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    options = options with { Servers = servers.Length > 0 ? servers : throw new BenchUsageException($"{arg} needs at least one server") };
                    break;
                case "--stream":
                    options = options with { Stream = Name(Value(), arg) };
                    break;
                case "--subject":
                    options = options with { Subject = Name(Value(), arg) };
                    break;
                case "-n" or "--messages" or "--expected":
                    options = options with { Messages = Integer(Value(), arg, min: 1, max: 100_000_000) };
                    break;
                case "--ms" or "--message-size":
                    options = options with { MessageSize = (int)Integer(Value(), arg, min: 0, max: 64 * 1024 * 1024) };
                    break;
                case "--pb" or "--pub-batch":
                    options = options with { PubBatch = (int)Integer(Value(), arg, min: 1, max: 1_000_000) };
                    break;
                case "--warmup":
                    options = options with { Warmup = Integer(Value(), arg, min: 0, max: 100_000_000) };
                    break;
                case "-c" or "--concurrent":
                    options = options with { Concurrent = (int)Integer(Value(), arg, min: 1, max: 10_000) };
                    break;
                case "--connections":
                    options = options with { Connections = (int)Integer(Value(), arg, min: 1, max: 10_000) };
                    break;
                case "-p" or "--partitions":
                    options = options with { Partitions = (int)Integer(Value(), arg, min: 1, max: 10_000) };
                    break;
                case "--replication-factor":
                    options = options with { ReplicationFactor = (int)Integer(Value(), arg, min: -1, max: 1_000) };
                    break;
                case "--min-isr":
                    options = options with { MinIsr = (int)Integer(Value(), arg, min: 1, max: 1_000) };
                    break;
                case "--gap-ms":
                    options = options with { GapMilliseconds = (int)Integer(Value(), arg, min: 1, max: 3_600_000) };
                    break;
                case "--fetch-interval-ms":
                    options = options with { FetchInterval = TimeSpan.FromMilliseconds(Integer(Value(), arg, min: 1, max: 3_600_000)) };
                    break;
                case "--partition":
                    options = options with { Partition = (int)Integer(Value(), arg, min: 0, max: 10_000) };
                    break;
                case "--ack-policy":
                    options = options with { AckPolicy = Enum(Value(), arg, ("none", BenchAckPolicy.None), ("leader", BenchAckPolicy.Leader), ("all", BenchAckPolicy.All)) };
                    break;
                case "--transport":
                    options = options with { Transport = Enum(Value(), arg, ("native", Sluice.Client.Grpc.GrpcTransport.Native), ("httpclient", Sluice.Client.Grpc.GrpcTransport.HttpClient)) };
                    break;
                case "--create-stream":
                    NoValue();
                    options = options with { CreateStream = true };
                    break;
                case "--delete-stream":
                    NoValue();
                    options = options with { DeleteStream = true };
                    break;
                case "-o" or "--output":
                    options = options with { Output = Enum(Value(), arg, ("text", BenchOutput.Text), ("json", BenchOutput.Json)) };
                    break;
                case "--timeout":
                    options = options with { Timeout = TimeSpan.FromSeconds(Integer(Value(), arg, min: 1, max: 86_400)) };
                    break;
                case "--server-pid":
                    var pids = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    options = options with
                    {
                        ServerPids = pids.Length > 0
                            ? [.. options.ServerPids, .. pids.Select(pid => (int)Integer(pid, arg, min: 1, max: int.MaxValue))]
                            : throw new BenchUsageException($"{arg} needs at least one pid"),
                    };
                    break;
                case "--in-process":
                    NoValue();
                    options = options with { InProcess = true };
                    break;
                case "--seed":
                    options = options with { Seed = (int)Integer(Value(), arg, min: int.MinValue, max: int.MaxValue) };
                    break;
                default:
                    throw new BenchUsageException($"unknown flag '{args[i]}'");
            }
        }

        Validate(options);
        return options;
    }

    private static void Validate(BenchOptions o)
    {
        if (o.Mode == BenchMode.Group && (o.Target != BenchTarget.Sluice || o.InProcess))
        {
            throw new BenchUsageException("group needs a Sluice server (--servers), not --target jetstream or --in-process");
        }

        if (o.Mode is BenchMode.PartitionState or BenchMode.Pulse or BenchMode.Group)
        {
            if (o.Target != BenchTarget.Sluice || o.InProcess)
            {
                throw new BenchUsageException("partition-state and pulse need a Sluice cluster (--servers), not --target jetstream or --in-process");
            }

            if (o.ReplicationFactor == 0)
            {
                throw new BenchUsageException("--replication-factor cannot be 0");
            }

            return;
        }

        if (o.ReplicationFactor == 0)
        {
            throw new BenchUsageException("--replication-factor cannot be 0");
        }

        if (o.Target == BenchTarget.JetStream && o.MinIsr is not null)
        {
            throw new BenchUsageException("--min-isr does not apply to --target jetstream: its PubAck waits for a quorum of the replicas");
        }

        if (o.Target == BenchTarget.JetStream && o.ReplicationFactor is < 1 or > 5)
        {
            throw new BenchUsageException($"--replication-factor {o.ReplicationFactor}: a JetStream stream has 1 to 5 replicas");
        }

        if (o.Mode == BenchMode.Consumer)
        {
            if (o.Concurrent != 1 || o.PubBatch != 1 || o.Connections != 1)
            {
                throw new BenchUsageException("--concurrent, --connections and --pub-batch apply to producer mode only");
            }

            if (o.CreateStream)
            {
                throw new BenchUsageException("--create-stream applies to producer mode only (a consumer reads an existing stream)");
            }
        }
        else if (o.Partition != 0)
        {
            throw new BenchUsageException("--partition applies to consumer mode only (producers spread over --partitions)");
        }

        if (o.Connections > o.Concurrent)
        {
            throw new BenchUsageException($"--connections ({o.Connections}) cannot exceed --concurrent ({o.Concurrent}): a connection without a publisher measures nothing");
        }

        if (o.InProcess && (o.Target != BenchTarget.Sluice || o.Servers.Count > 0 || o.ServerPids.Count > 0))
        {
            throw new BenchUsageException("--in-process runs a Sluice server here: it excludes --target jetstream, --servers and --server-pid");
        }

        if (o.Messages < o.Concurrent)
        {
            throw new BenchUsageException($"--messages ({o.Messages}) must be at least --concurrent ({o.Concurrent})");
        }

        if (o.Target == BenchTarget.JetStream && (o.Stream.Contains('.', StringComparison.Ordinal) || o.Stream.Contains('*', StringComparison.Ordinal) || o.Stream.Contains('>', StringComparison.Ordinal)))
        {
            throw new BenchUsageException($"a JetStream stream name cannot contain '.', '*' or '>': '{o.Stream}'");
        }
    }

    private static long Integer(string text, string flag, long min, long max = long.MaxValue)
    {
        if (!long.TryParse(text.Replace("_", string.Empty, StringComparison.Ordinal), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
        {
            throw new BenchUsageException($"{flag}: '{text}' is not a whole number");
        }

        if (value < min || value > max)
        {
            throw new BenchUsageException(max == long.MaxValue
                ? $"{flag}: {value} is below the minimum {min}"
                : $"{flag}: {value} is outside {min}..{max}");
        }

        return value;
    }

    private static T Enum<T>(string text, string flag, params (string Name, T Value)[] choices)
    {
        foreach (var (name, value) in choices)
        {
            if (string.Equals(name, text, StringComparison.OrdinalIgnoreCase))
            {
                return value;
            }
        }

        throw new BenchUsageException($"{flag}: '{text}' is not one of {string.Join(", ", choices.Select(c => c.Name))}");
    }

    private static string Name(string text, string flag)
    {
        if (string.IsNullOrWhiteSpace(text) || text.Any(char.IsWhiteSpace))
        {
            throw new BenchUsageException($"{flag}: '{text}' must be non-empty and contain no spaces");
        }

        return text;
    }
}
