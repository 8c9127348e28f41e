using Sluice.Storage.Log.Files;

namespace Sluice.Storage.Log;

/// <summary>
/// Settings of one partition log. Immutable; customise with <c>CommitLogOptions.Default with { ... }</c>.
/// Sizes and counts of 0 mean "unlimited" where noted, as in Liftbridge.
/// </summary>
public sealed record CommitLogOptions
{
    /// <summary>The defaults below.</summary>
    public static CommitLogOptions Default { get; } = new();

    /// <summary>A segment rolls once it holds this many bytes (default 256 MiB, at most 1 GiB). A segment can exceed it by one batch.</summary>
    public long SegmentMaxBytes { get; init; } = 256L * 1024 * 1024;

    /// <summary>A segment with data rolls once it is this old, measured from its first write in this process (default 168 h; zero disables).</summary>
    public TimeSpan SegmentMaxAge { get; init; } = TimeSpan.FromHours(168);

    /// <summary>Retention keeps at most this many bytes of segments (default 0 = unlimited).</summary>
    public long RetentionMaxBytes { get; init; }

    /// <summary>Retention keeps at most this many records (default 0 = unlimited).</summary>
    public long RetentionMaxMessages { get; init; }

    /// <summary>Retention deletes segments whose newest record timestamp is older than this (default 168 h; zero disables).</summary>
    public TimeSpan RetentionMaxAge { get; init; } = TimeSpan.FromHours(168);

    /// <summary>When appends reach stable storage (default <see cref="DurabilityPolicy.Never"/>).</summary>
    public DurabilityPolicy Durability { get; init; } = DurabilityPolicy.Never;

    /// <summary>Period of the background fsync under <see cref="DurabilityPolicy.Interval"/> (default 1 s).</summary>
    public TimeSpan FsyncInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a changed high watermark may stay only in memory before it is checkpointed to disk
    /// (default 5 s, as Kafka's and Liftbridge's HW checkpoint). Writing the checkpoint on every commit
    /// cost a file create, rename and writeback per acknowledged publish; the log end recovers what a
    /// crash loses. <see cref="TimeSpan.Zero"/> checkpoints on every change.
    /// </summary>
    public TimeSpan HighWatermarkCheckpointInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Bytes of log between two offset/time index entries (default 4 KiB: one page to scan per lookup).</summary>
    public int IndexIntervalBytes { get; init; } = 4096;

    /// <summary>Largest encoded record accepted by an append (default 16 MiB).</summary>
    public int MaxRecordBytes { get; init; } = 16 * 1024 * 1024;

    /// <summary>Open-file budget shared by all logs using it (default <see cref="FileHandleBudget.Shared"/>, 512 handles).</summary>
    public FileHandleBudget FileHandles { get; init; } = FileHandleBudget.Shared;

    /// <summary>
    /// Told how long each fsync of a segment took (null, the default, times nothing). Runs on the syncing
    /// thread, so it must be quick: the server feeds a histogram with it.
    /// </summary>
    public Action<TimeSpan>? FsyncObserver { get; init; }

    /// <summary>Clock for segment age and retention age (default <see cref="System.TimeProvider.System"/>).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal void Validate()
    {
        if (SegmentMaxBytes <= 0 || SegmentMaxBytes > 1L << 30)
        {
            throw new ArgumentOutOfRangeException(nameof(SegmentMaxBytes), SegmentMaxBytes, "SegmentMaxBytes must be between 1 byte and 1 GiB.");
        }

        if (SegmentMaxAge < TimeSpan.Zero || RetentionMaxAge < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(SegmentMaxAge), "Ages cannot be negative.");
        }

        if (RetentionMaxBytes < 0 || RetentionMaxMessages < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(RetentionMaxBytes), "Retention limits cannot be negative (0 = unlimited).");
        }

        if (HighWatermarkCheckpointInterval < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(HighWatermarkCheckpointInterval), HighWatermarkCheckpointInterval, "HighWatermarkCheckpointInterval cannot be negative.");
        }

        if (Durability == DurabilityPolicy.Interval && FsyncInterval <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(FsyncInterval), FsyncInterval, "FsyncInterval must be positive with the Interval policy.");
        }

        if (!Enum.IsDefined(Durability))
        {
            throw new ArgumentOutOfRangeException(nameof(Durability), Durability, "Unknown durability policy.");
        }

        if (IndexIntervalBytes < 64)
        {
            throw new ArgumentOutOfRangeException(nameof(IndexIntervalBytes), IndexIntervalBytes, "IndexIntervalBytes must be at least 64.");
        }

        if (MaxRecordBytes < 64 || MaxRecordBytes > 256 * 1024 * 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxRecordBytes), MaxRecordBytes, "MaxRecordBytes must be between 64 bytes and 256 MiB.");
        }

        ArgumentNullException.ThrowIfNull(FileHandles);
        ArgumentNullException.ThrowIfNull(TimeProvider);
    }
}
