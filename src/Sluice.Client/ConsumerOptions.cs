namespace Sluice.Client;

/// <summary>A partition of a stream.</summary>
/// <param name="Stream">The stream name.</param>
/// <param name="Partition">The partition.</param>
public readonly record struct StreamPartition(string Stream, int Partition)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Stream}[{Partition}]";
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

        if (FetchInterval is { } fetch && fetch <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(FetchInterval), fetch, "fetch interval must be positive");
        }
    }
}
