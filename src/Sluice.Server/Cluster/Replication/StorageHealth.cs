using System.Diagnostics;

namespace Sluice.Server.Cluster.Replication;

/// <summary>
/// Whether this broker's data directory has run out of space: set when a partition write fails with "no space left
/// on device", cleared once the file system has <see cref="Headroom"/> free again (checked at most once a second).
/// While it is set, this broker gives up the leaderships it cannot serve and its followers tell their leaders not
/// to count them into the ISR, so no leadership comes back to it until it can write again.
/// </summary>
internal sealed class StorageHealth(string dataDir)
{
    /// <summary>Free space that counts as room again: several segment rolls and large batches.</summary>
    public const long Headroom = 8L << 20;

    private static readonly long CheckEvery = Stopwatch.Frequency;
    private readonly Lock _lock = new();
    private bool _full;
    private long _checkedAt;

    public bool IsFull
    {
        get
        {
            if (!Volatile.Read(ref _full))
            {
                return false; // every follower fetch asks: no lock while the disk is fine
            }

            lock (_lock)
            {
                if (!_full || Stopwatch.GetTimestamp() - _checkedAt < CheckEvery)
                {
                    return _full;
                }

                _checkedAt = Stopwatch.GetTimestamp();
                _full = FreeBytes() < Headroom;
                return _full;
            }
        }
    }

    /// <summary>A write here failed for lack of space.</summary>
    public void ReportFull()
    {
        lock (_lock)
        {
            _full = true;
            _checkedAt = Stopwatch.GetTimestamp();
        }
    }

    private long FreeBytes()
    {
        try
        {
            return new DriveInfo(Path.GetFullPath(dataDir)).AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return 0; // unknown: stay full until a check succeeds
        }
    }
}
