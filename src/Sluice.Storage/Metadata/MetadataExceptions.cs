namespace Sluice.Storage.Metadata;

/// <summary>Base of the metadata store's errors.</summary>
public class MetadataStoreException : Exception
{
    public MetadataStoreException(string message)
        : base(message)
    {
    }

    public MetadataStoreException(string message, Exception? inner)
        : base(message, inner)
    {
    }
}

/// <summary>The revision asked for was compacted (etcd's <c>ErrCompacted</c>); also ends a watch that fell behind.</summary>
public sealed class CompactedException : MetadataStoreException
{
    public CompactedException(long requestedRevision, long compactRevision)
        : base($"mvcc: required revision has been compacted (requested {requestedRevision}, compacted at {compactRevision})")
    {
        RequestedRevision = requestedRevision;
        CompactRevision = compactRevision;
    }

    public long RequestedRevision { get; }

    /// <summary>The store's compaction revision; a watcher resyncs by reading at or after it.</summary>
    public long CompactRevision { get; }
}

/// <summary>The revision asked for is above the current one (etcd's <c>ErrFutureRev</c>).</summary>
public sealed class FutureRevisionException : MetadataStoreException
{
    public FutureRevisionException(long requestedRevision, long currentRevision)
        : base($"mvcc: required revision is a future revision (requested {requestedRevision}, current {currentRevision})")
    {
        RequestedRevision = requestedRevision;
        CurrentRevision = currentRevision;
    }

    public long RequestedRevision { get; }

    public long CurrentRevision { get; }
}

/// <summary>The lease does not exist (never granted, expired or revoked).</summary>
public sealed class LeaseNotFoundException : MetadataStoreException
{
    public LeaseNotFoundException(long leaseId)
        : base($"requested lease not found: {leaseId}")
    {
        LeaseId = leaseId;
    }

    public long LeaseId { get; }
}

/// <summary>A lease with the requested id already exists.</summary>
public sealed class LeaseExistsException : MetadataStoreException
{
    public LeaseExistsException(long leaseId)
        : base($"lease already exists: {leaseId}")
    {
        LeaseId = leaseId;
    }

    public long LeaseId { get; }
}

/// <summary>A put with <c>IgnoreValue</c> or <c>IgnoreLease</c> named a key that does not exist.</summary>
public sealed class KeyNotFoundForUpdateException : MetadataStoreException
{
    public KeyNotFoundForUpdateException(string key)
        : base($"key not found: {key}")
    {
    }
}

/// <summary>
/// A write failed because the disk did (full, or an I/O error) and was not applied. Reads keep serving the last
/// durable state; the store cuts its log back and accepts writes again once the disk does (free space, say).
/// </summary>
public sealed class MetadataStoreFaultedException : MetadataStoreException
{
    public MetadataStoreFaultedException(Exception inner)
        : base($"metadata write failed after an I/O error and was not applied: {inner.Message}", inner)
    {
    }
}

/// <summary>
/// A record in the middle of a metadata log fails its checksum while intact records follow it: corruption, not
/// a torn write, so nothing is truncated and the file is left as it was. <c>sluice repair</c> keeps the records
/// before <see cref="Position"/> and moves the damaged file aside.
/// </summary>
public sealed class MetadataLogDamagedException : MetadataStoreException
{
    public MetadataLogDamagedException(string path, long position, int intactRecords, long nextIntactPosition)
        : base($"metadata log {path} is damaged at byte {position}: the record there fails its checksum but intact records follow it (from byte {nextIntactPosition}), so this is corruption, not a torn write; {intactRecords} records before it are intact; the file was left unchanged")
    {
        Path = path;
        Position = position;
        IntactRecords = intactRecords;
    }

    /// <summary>The damaged log file.</summary>
    public string Path { get; }

    /// <summary>Byte offset of the first record that is not intact.</summary>
    public long Position { get; }

    /// <summary>How many records precede the damage (what a repair keeps).</summary>
    public int IntactRecords { get; }
}

/// <summary>Another process (or another store in this one) holds the directory's lock.</summary>
public sealed class MetadataStoreLockedException : MetadataStoreException
{
    public MetadataStoreLockedException(string directory, Exception inner)
        : base($"{directory} is in use by another Sluice process (its lock file {System.IO.Path.Combine(directory, "LOCK")} is held)", inner)
    {
        Directory = directory;
    }

    /// <summary>The locked directory.</summary>
    public string Directory { get; }
}

/// <summary>An on-disk file failed validation in a way recovery cannot repair.</summary>
public sealed class MetadataCorruptException : MetadataStoreException
{
    public MetadataCorruptException(string message)
        : base(message)
    {
    }
}

/// <summary>
/// The metadata store could not be reached in time (a remote etcd that is down, unreachable or past the call's
/// deadline). Nothing is known about whether a write was applied: retry idempotently (a compare on the mod revision).
/// </summary>
public sealed class MetadataUnavailableException : MetadataStoreException
{
    public MetadataUnavailableException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}
