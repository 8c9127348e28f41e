namespace Sluice.Client;

/// <summary>Where a subscription starts reading.</summary>
public enum StartPosition
{
    /// <summary>Only messages published after the subscription starts (the default).</summary>
    NewOnly = 0,

    /// <summary>At <see cref="SubscribeOptions.StartOffset"/>.</summary>
    Offset = 1,

    /// <summary>At the oldest message the partition still holds.</summary>
    Earliest = 2,

    /// <summary>At the newest message.</summary>
    Latest = 3,

    /// <summary>At the first message received at or after <see cref="SubscribeOptions.StartTime"/>.</summary>
    Timestamp = 4,
}

/// <summary>Where a subscription stops reading.</summary>
public enum StopPosition
{
    /// <summary>Never: read until cancelled or disposed (the default).</summary>
    OnCancel = 0,

    /// <summary>After the message at <see cref="SubscribeOptions.StopOffset"/>.</summary>
    Offset = 1,

    /// <summary>After the newest message at the time of subscribing.</summary>
    Latest = 2,

    /// <summary>After the last message received at or before <see cref="SubscribeOptions.StopTime"/>.</summary>
    Timestamp = 3,
}

/// <summary>
/// How to subscribe to a stream partition (go-liftbridge <c>SubscriptionOption</c>s). Immutable:
/// start from <see cref="Default"/> and chain the <c>StartAt…</c>/<c>StopAt…</c> methods, or use
/// <c>with { ... }</c>: <c>SubscribeOptions.Default.StartAtEarliest().StopAtLatest() with { Partition = 1 }</c>.
/// </summary>
public sealed record SubscribeOptions
{
    /// <summary>Partition 0, new messages only, no stop, read from the leader.</summary>
    public static SubscribeOptions Default { get; } = new();

    /// <summary>The partition to read; must not be negative. Default 0.</summary>
    public int Partition { get; init; }

    /// <summary>Where to start. Default <see cref="Client.StartPosition.NewOnly"/>.</summary>
    public StartPosition StartPosition { get; init; } = StartPosition.NewOnly;

    /// <summary>The first offset, with <see cref="Client.StartPosition.Offset"/>. Default 0.</summary>
    public long StartOffset { get; init; }

    /// <summary>The start time, with <see cref="Client.StartPosition.Timestamp"/>. Default null.</summary>
    public DateTimeOffset? StartTime { get; init; }

    /// <summary>Where to stop. Default <see cref="Client.StopPosition.OnCancel"/>.</summary>
    public StopPosition StopPosition { get; init; } = StopPosition.OnCancel;

    /// <summary>The last offset, with <see cref="Client.StopPosition.Offset"/>. Default 0.</summary>
    public long StopOffset { get; init; }

    /// <summary>
    /// The stop time, with <see cref="Client.StopPosition.Timestamp"/>; must not be in the future. Default null.
    /// It covers its whole 100 ns tick, so a message's <see cref="SluiceMessage.Timestamp"/> as the stop time includes that message.
    /// </summary>
    public DateTimeOffset? StopTime { get; init; }

    /// <summary>Read from a random in-sync replica instead of the leader (spreads read load; may lag the leader). Default false.</summary>
    public bool ReadIsrReplica { get; init; }

    /// <summary>Resume the partition first if it is paused. Default false.</summary>
    public bool Resume { get; init; }

    /// <summary>Read backwards, from the start position towards offset 0 (Liftbridge v2.4+ servers). Default false.</summary>
    public bool Reverse { get; init; }

    /// <summary>The group member a consumer-group subscription reads for (set by <see cref="SluiceConsumer"/>), or null.</summary>
    internal Protocol.Api.Consumer? GroupConsumer { get; init; }

    /// <summary>Start at <paramref name="offset"/>.</summary>
    /// <param name="offset">The first offset to read.</param>
    public SubscribeOptions StartAtOffset(long offset) => this with { StartPosition = StartPosition.Offset, StartOffset = offset };

    /// <summary>Start at the first message received at or after <paramref name="time"/>.</summary>
    /// <param name="time">The start time.</param>
    public SubscribeOptions StartAtTime(DateTimeOffset time) => this with { StartPosition = StartPosition.Timestamp, StartTime = time };

    /// <summary>Start at the first message received within the last <paramref name="ago"/> (computed now).</summary>
    /// <param name="ago">How far back to start.</param>
    public SubscribeOptions StartAtTimeDelta(TimeSpan ago) => StartAtTime(DateTimeOffset.UtcNow - ago);

    /// <summary>Start at the oldest message the partition holds.</summary>
    public SubscribeOptions StartAtEarliest() => this with { StartPosition = StartPosition.Earliest };

    /// <summary>Start at the newest message.</summary>
    public SubscribeOptions StartAtLatest() => this with { StartPosition = StartPosition.Latest };

    /// <summary>Start with messages published after subscribing (the default).</summary>
    public SubscribeOptions StartAtNewOnly() => this with { StartPosition = StartPosition.NewOnly };

    /// <summary>Stop after the message at <paramref name="offset"/>.</summary>
    /// <param name="offset">The last offset to read.</param>
    public SubscribeOptions StopAtOffset(long offset) => this with { StopPosition = StopPosition.Offset, StopOffset = offset };

    /// <summary>Stop after the last message received at or before <paramref name="time"/>, which must not be in the future.</summary>
    /// <param name="time">The stop time.</param>
    public SubscribeOptions StopAtTime(DateTimeOffset time) => this with { StopPosition = StopPosition.Timestamp, StopTime = time };

    /// <summary>Stop after the newest message at the time of subscribing.</summary>
    public SubscribeOptions StopAtLatest() => this with { StopPosition = StopPosition.Latest };

    /// <summary>Local checks, made before any call to a server.</summary>
    internal void Validate()
    {
        if (Partition < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(Partition), Partition, "partition cannot be less than 0");
        }

        if (!Enum.IsDefined(StartPosition))
        {
            throw new ArgumentOutOfRangeException(nameof(StartPosition), StartPosition, "unknown start position");
        }

        if (!Enum.IsDefined(StopPosition))
        {
            throw new ArgumentOutOfRangeException(nameof(StopPosition), StopPosition, "unknown stop position");
        }

        if (StartPosition == StartPosition.Timestamp && StartTime is null)
        {
            throw new ArgumentException("StartTime is required with StartPosition.Timestamp", nameof(StartTime));
        }

        if (StopPosition == StopPosition.Timestamp)
        {
            if (StopTime is not { } stop)
            {
                throw new ArgumentException("StopTime is required with StopPosition.Timestamp", nameof(StopTime));
            }

            if (stop > DateTimeOffset.UtcNow)
            {
                throw new ArgumentOutOfRangeException(nameof(StopTime), stop, "stop time cannot be in the future");
            }
        }
    }
}
