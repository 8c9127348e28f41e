using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Sluice.Storage.Metadata;

/// <summary>Tuning of the embedded metadata store. Customise <see cref="Default"/> with <c>with { ... }</c>.</summary>
public sealed record MetadataStoreOptions
{
    /// <summary>The defaults listed on each property.</summary>
    public static MetadataStoreOptions Default { get; } = new();

    /// <summary>Most operations in one transaction, nested ones included (default 128, as etcd).</summary>
    public int MaxTxnOps { get; init; } = 128;

    /// <summary>Largest key plus value of one put (default 1.5 MiB, etcd's request limit).</summary>
    public int MaxPutBytes { get; init; } = 1536 * 1024;

    /// <summary>
    /// Automatic compaction keeps this many revisions of history (default 10,000; 0 disables). A watcher
    /// more than this far behind is cancelled with <see cref="CompactedException"/>.
    /// </summary>
    public long AutoCompactionRetainRevisions { get; init; } = 10_000;

    /// <summary>Automatic compaction keeps history newer than this window (default null: off).</summary>
    public TimeSpan? AutoCompactionRetention { get; init; }

    /// <summary>Write a snapshot and start a new log once the log passes this size (default 64 MiB).</summary>
    public long SnapshotAfterLogBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>How often leases are checked for expiry and auto-compaction runs (default 100 ms).</summary>
    public TimeSpan MaintenanceInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Idle interval after which a watcher with progress notify gets a progress response (default 10 min, as etcd).</summary>
    public TimeSpan WatchProgressInterval { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Clock for leases and time-based compaction (default <see cref="TimeProvider.System"/>).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Logger factory (default <see cref="NullLoggerFactory"/>).</summary>
    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxTxnOps, 1, nameof(MaxTxnOps));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPutBytes, 1, nameof(MaxPutBytes));
        ArgumentOutOfRangeException.ThrowIfNegative(AutoCompactionRetainRevisions, nameof(AutoCompactionRetainRevisions));
        ArgumentOutOfRangeException.ThrowIfLessThan(SnapshotAfterLogBytes, 1024, nameof(SnapshotAfterLogBytes));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(MaintenanceInterval, TimeSpan.Zero, nameof(MaintenanceInterval));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(WatchProgressInterval, TimeSpan.Zero, nameof(WatchProgressInterval));
        ArgumentNullException.ThrowIfNull(TimeProvider);
        ArgumentNullException.ThrowIfNull(LoggerFactory);
        if (AutoCompactionRetention is { } window)
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(window, TimeSpan.Zero, nameof(AutoCompactionRetention));
        }
    }
}
