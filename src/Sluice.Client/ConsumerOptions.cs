namespace Sluice.Client;

/// <summary>A partition of a stream.</summary>
/// <param name="Stream">The stream name.</param>
/// <param name="Partition">The partition.</param>
public readonly record struct StreamPartition(string Stream, int Partition)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Stream}[{Partition}]";
}

/// <summary>Where a consumer-group member starts reading a partition for which the group has no committed position.</summary>
public enum AutoOffsetReset
{
    /// <summary>At the oldest message the partition holds, so nothing published before the group started is skipped (the default).</summary>
    Earliest = 0,

    /// <summary>Only messages published after the member starts reading the partition (Kafka's <c>latest</c>, go-liftbridge's default).</summary>
    Latest = 1,

    /// <summary>
    /// Not at all: the partition is not read and <see cref="ConsumerOptions.OnError"/> gets a
    /// <see cref="NoCommittedOffsetException"/> (go-liftbridge's AutoOffsetNone); it is tried again on later fetches, so a
    /// position set with <c>SetCursor</c> for the group's cursor starts it.
    /// </summary>
    None = 2,
}

/// <summary>Settings of a consumer-group member (<see cref="SluiceClient.CreateConsumer"/>).</summary>
public sealed record ConsumerOptions
{
    /// <summary>The defaults: a generated consumer id, commits every 5 s (go-liftbridge's AutoCheckpoint).</summary>
    public static ConsumerOptions Default { get; } = new();

    /// <summary>The member's id in the group; null generates a unique one. A restarted process that reuses its id takes its place back.</summary>
    public string? ConsumerId { get; init; }

    /// <summary>
    /// How often the positions of handled messages are committed to the group's cursors; <see cref="TimeSpan.Zero"/>
    /// commits only on <see cref="SluiceConsumer.CommitAsync"/>, on a rebalance and on disposal. Default 5 s.
    /// </summary>
    public TimeSpan AutoCommitInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How often the member fetches its assignments from the coordinator (its heartbeat, and how fast it sees a
    /// rebalance); null means 0.4 × the server's <c>groups.consumer.timeout</c>, as go-liftbridge does.
    /// </summary>
    public TimeSpan? FetchInterval { get; init; }

    /// <summary>Where to start a partition the group has no committed position for. Default <see cref="AutoOffsetReset.Earliest"/>.</summary>
    public AutoOffsetReset AutoOffsetReset { get; init; } = AutoOffsetReset.Earliest;

    /// <summary>
    /// Called with errors the member meets while it runs (go-liftbridge's ConsumerError): a handler that threw (its message
    /// comes again), a partition with no committed position under <see cref="AutoOffsetReset.None"/>. The member carries
    /// on; the errors are logged either way.
    /// </summary>
    public Func<Exception, ValueTask>? OnError { get; init; }

    /// <summary>Called with the partitions the member starts reading after a rebalance (before their first message).</summary>
    public Func<IReadOnlyList<StreamPartition>, ValueTask>? PartitionsAssigned { get; init; }

    /// <summary>Called with the partitions the member stopped reading, after their handlers returned and their positions were committed.</summary>
    public Func<IReadOnlyList<StreamPartition>, ValueTask>? PartitionsRevoked { get; init; }

    internal void Validate()
    {
        if (ConsumerId is { Length: 0 })
        {
            throw new ArgumentException("consumer id cannot be empty", nameof(ConsumerId));
        }

        if (AutoCommitInterval < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(AutoCommitInterval), AutoCommitInterval, "auto-commit interval cannot be negative");
        }

        if (!Enum.IsDefined(AutoOffsetReset))
        {
            throw new ArgumentOutOfRangeException(nameof(AutoOffsetReset), AutoOffsetReset, "unknown auto offset reset");
        }

        if (FetchInterval is { } fetch && fetch <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(FetchInterval), fetch, "fetch interval must be positive");
        }
    }
}
