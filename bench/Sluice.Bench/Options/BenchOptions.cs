namespace Sluice.Bench.Options;

/// <summary>What the tool does: publish a workload, or read one back.</summary>
public enum BenchMode
{
    /// <summary>Publish <see cref="BenchOptions.Messages"/> messages and measure throughput and ack latency.</summary>
    Producer,

    /// <summary>Read <see cref="BenchOptions.Messages"/> messages from the start of a partition and measure throughput.</summary>
    Consumer,

    /// <summary>Print a partition's leader, replicas and ISR as one JSON line (for scripts driving a cluster).</summary>
    PartitionState,

    /// <summary>
    /// Publish one message (or a window) at a time until SIGTERM or SIGINT and print every pause between two
    /// acks longer than <see cref="BenchOptions.GapMilliseconds"/>, with wall-clock times, so a script that
    /// kills brokers can tell how long each failover stopped the acks.
    /// </summary>
    Pulse,

    /// <summary>
    /// A consumer group of <see cref="BenchOptions.Concurrent"/> members drains <see cref="BenchOptions.Messages"/> messages of
    /// an existing stream, then one more member joins and one leaves: throughput and rebalance times (Runs/GroupMode.cs).
    /// </summary>
    Group,
}

/// <summary>The system under test.</summary>
public enum BenchTarget
{
    /// <summary>A Sluice (or Liftbridge) server through <c>Sluice.Client</c>.</summary>
    Sluice,

    /// <summary>A NATS server with JetStream through the official client, NATS.Net.</summary>
    JetStream,
}

/// <summary>Which acknowledgement a publish waits for (Liftbridge's ack policies).</summary>
public enum BenchAckPolicy
{
    /// <summary>No ack: publishes are fire-and-forget and no latency is recorded.</summary>
    None,

    /// <summary>The partition leader has stored the message (JetStream: the PubAck).</summary>
    Leader,

    /// <summary>Every in-sync replica has stored the message (JetStream: the PubAck, sent once a quorum of the replicas stored it).</summary>
    All,
}

/// <summary>How the report is printed.</summary>
public enum BenchOutput
{
    /// <summary>Human-readable lines.</summary>
    Text,

    /// <summary>One JSON object.</summary>
    Json,
}

/// <summary>Everything one run of the tool needs; <see cref="BenchArguments.Parse"/> builds it from the command line.</summary>
public sealed record BenchOptions
{
    /// <summary>Liftbridge's default listen address.</summary>
    public const string DefaultSluiceServer = "127.0.0.1:9292";

    /// <summary>nats-server's default listen address.</summary>
    public const string DefaultNatsServer = "nats://127.0.0.1:4222";

    public static BenchOptions Default { get; } = new();

    public BenchMode Mode { get; init; } = BenchMode.Producer;

    public BenchTarget Target { get; init; } = BenchTarget.Sluice;

    /// <summary>The HTTP/2 implementation under Sluice's client (ignored for JetStream).</summary>
    public Sluice.Client.Grpc.GrpcTransport Transport { get; init; } = Sluice.Client.Grpc.GrpcTransport.Native;

    /// <summary>Servers to connect to; empty means the target's default (<see cref="ServersOrDefault"/>).</summary>
    public IReadOnlyList<string> Servers { get; init; } = [];

    public string Stream { get; init; } = "bench-stream";

    public string Subject { get; init; } = "bench-subject";

    public long Messages { get; init; } = 100_000;

    public int MessageSize { get; init; } = 256;

    /// <summary>1: one synchronous publish per message. More: that many publishes in flight per publisher (a sliding window).</summary>
    public int PubBatch { get; init; } = 1;

    /// <summary>
    /// Messages published (producer: through the same publishers, same concurrency and window) or read
    /// (consumer: in a first subscription) before the timed part, so the client's code is compiled and
    /// tiered up as in a long-running application. The same for both targets. 0 (the default): none.
    /// </summary>
    public long Warmup { get; init; }

    /// <summary>Publishers (Liftbridge's goroutines), spread over <see cref="Connections"/> connections.</summary>
    public int Concurrent { get; init; } = 1;

    /// <summary>
    /// Client connections the publishers share, publisher i on connection i mod N. The default, 1, is
    /// Liftbridge's bench tool: its goroutines share one client. <see cref="Concurrent"/> gives every
    /// publisher a connection of its own, as separate processes would have.
    /// </summary>
    public int Connections { get; init; } = 1;

    public int Partitions { get; init; } = 1;

    /// <summary>Replication factor of the stream <see cref="CreateStream"/> creates (-1: every broker; JetStream: its replicas, 1..5).</summary>
    public int ReplicationFactor { get; init; } = 1;

    /// <summary>The created stream's min ISR for ack policy all; null: the server's default.</summary>
    public int? MinIsr { get; init; }

    /// <summary>Pulse mode: a pause between acks longer than this is printed.</summary>
    public int GapMilliseconds { get; init; } = 50;

    /// <summary>The partition consumer mode reads.</summary>
    public int Partition { get; init; }

    public BenchAckPolicy AckPolicy { get; init; } = BenchAckPolicy.Leader;

    public bool CreateStream { get; init; }

    public bool DeleteStream { get; init; }

    public BenchOutput Output { get; init; } = BenchOutput.Text;

    /// <summary>Group mode: the members' assignment fetch interval (their heartbeat); null: the consumer's default (0.4 × the server's consumer timeout).</summary>
    public TimeSpan? FetchInterval { get; init; }

    /// <summary>The whole run fails if it has not finished by then (a lost ack would otherwise hang it).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Server processes whose CPU time and memory are measured around the timed part and summed: every process a
    /// system needs (a cluster's brokers and its etcd, say). Empty: none.
    /// </summary>
    public IReadOnlyList<int> ServerPids { get; init; } = [];

    /// <summary>Starts a Sluice server inside this process (temp data dir, free port) instead of connecting to one.</summary>
    public bool InProcess { get; init; }

    /// <summary>Seed of the random payloads, so both targets get the same bytes.</summary>
    public int Seed { get; init; } = 1;

    public IReadOnlyList<string> ServersOrDefault =>
        Servers.Count > 0 ? Servers : [Target == BenchTarget.JetStream ? DefaultNatsServer : DefaultSluiceServer];
}
