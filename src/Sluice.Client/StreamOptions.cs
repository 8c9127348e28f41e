namespace Sluice.Client;

/// <summary>
/// Settings of a new stream (go-liftbridge <c>StreamOption</c>s). Every nullable property left null
/// is sent as "unset", so the server's configured default applies. Immutable: start from
/// <see cref="Default"/> and customise with <c>with { ... }</c>.
/// </summary>
public sealed record StreamOptions
{
    /// <summary>Replication factor meaning "every broker in the cluster" (go-liftbridge <c>MaxReplicationFactor</c>).</summary>
    public const int MaxReplicationFactor = -1;

    /// <summary>One partition, replication factor 1, server defaults for everything else.</summary>
    public static StreamOptions Default { get; } = new();

    /// <summary>NATS queue group the stream's partitions join; streams in one group share the subject's messages. Default null.</summary>
    public string? Group { get; init; }

    /// <summary>Copies of each partition; <see cref="MaxReplicationFactor"/> (-1) means every broker. Default 1.</summary>
    public int ReplicationFactor { get; init; } = 1;

    /// <summary>Shortcut for <c>ReplicationFactor = MaxReplicationFactor</c> (go-liftbridge <c>MaxReplication()</c>).</summary>
    public bool MaxReplication
    {
        get => ReplicationFactor == MaxReplicationFactor;
        init => ReplicationFactor = value ? MaxReplicationFactor : 1;
    }

    /// <summary>Number of partitions; partition N &gt; 0 maps to the NATS subject "&lt;subject&gt;.N". Must not be negative. Default 1.</summary>
    public int Partitions { get; init; } = 1;

    /// <summary>Bytes a partition keeps before the oldest segments are deleted. Default null (server setting).</summary>
    public long? RetentionMaxBytes { get; init; }

    /// <summary>Messages a partition keeps before the oldest segments are deleted. Default null (server setting).</summary>
    public long? RetentionMaxMessages { get; init; }

    /// <summary>Age after which messages are deleted (sent in milliseconds). Default null (server setting).</summary>
    public TimeSpan? RetentionMaxAge { get; init; }

    /// <summary>How often retention and compaction run (sent in milliseconds). Default null (server setting).</summary>
    public TimeSpan? CleanerInterval { get; init; }

    /// <summary>Size at which a log segment is rolled. Default null (server setting).</summary>
    public long? SegmentMaxBytes { get; init; }

    /// <summary>Age at which a log segment is rolled (sent in milliseconds). Default null (server setting).</summary>
    public TimeSpan? SegmentMaxAge { get; init; }

    /// <summary>Concurrent workers used by compaction (go-liftbridge <c>CompactMaxGoroutines</c>). Default null (server setting).</summary>
    public int? CompactMaxGoroutines { get; init; }

    /// <summary>Compact the log by key (keep the newest message per key). Default null (server setting).</summary>
    public bool? CompactEnabled { get; init; }

    /// <summary>A partition with no messages for this long is paused (sent in milliseconds). Default null (server setting).</summary>
    public TimeSpan? AutoPauseTime { get; init; }

    /// <summary>Do not auto-pause partitions that have subscribers. Default null (server setting).</summary>
    public bool? AutoPauseDisableIfSubscribers { get; init; }

    /// <summary>Minimum in-sync replicas for a message with AckPolicy ALL to be committed. Default null (server setting).</summary>
    public int? MinIsr { get; init; }

    /// <summary>Enforce expected offsets on publish (optimistic concurrency control). Default null (server setting).</summary>
    public bool? OptimisticConcurrencyControl { get; init; }

    /// <summary>Encrypt the stream's data at rest. Default null (server setting).</summary>
    public bool? Encryption { get; init; }
}

/// <summary>Which partitions PauseStream pauses (go-liftbridge <c>PauseOption</c>s).</summary>
public sealed record PauseStreamOptions
{
    /// <summary>Every partition, resumed one at a time.</summary>
    public static PauseStreamOptions Default { get; } = new();

    /// <summary>The partitions to pause; null or empty means all of them. Default null.</summary>
    public IReadOnlyList<int>? Partitions { get; init; }

    /// <summary>When a paused partition is resumed (by a publish or a subscription), resume every partition of the stream. Default false.</summary>
    public bool ResumeAll { get; init; }
}

/// <summary>Which partitions SetStreamReadonly changes, and how (go-liftbridge <c>ReadonlyOption</c>s).</summary>
public sealed record SetStreamReadonlyOptions
{
    /// <summary>Every partition becomes readonly.</summary>
    public static SetStreamReadonlyOptions Default { get; } = new();

    /// <summary>The partitions to change; null or empty means all of them. Default null.</summary>
    public IReadOnlyList<int>? Partitions { get; init; }

    /// <summary>True makes the partitions readonly, false makes them writable again. Default true.</summary>
    public bool Readonly { get; init; } = true;
}

/// <summary>What FetchMetadata asks for (go-liftbridge <c>MetadataOption</c>s).</summary>
public sealed record FetchMetadataOptions
{
    /// <summary>Every stream, no consumer groups.</summary>
    public static FetchMetadataOptions Default { get; } = new();

    /// <summary>Only these streams; null or empty means every stream. Default null.</summary>
    public IReadOnlyList<string>? Streams { get; init; }

    /// <summary>These consumer groups too. Default null (none).</summary>
    public IReadOnlyList<string>? ConsumerGroups { get; init; }
}
