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
/// The store can no longer write because its disk failed. Reads keep serving the last durable state;
/// reopen the store to recover.
/// </summary>
public sealed class MetadataStoreFaultedException : MetadataStoreException
{
    public MetadataStoreFaultedException(Exception inner)
        : base($"metadata store is faulted after an I/O error and accepts no more writes: {inner.Message}", inner)
    {
    }
}

/// <summary>An on-disk file failed validation in a way recovery cannot repair.</summary>
public sealed class MetadataCorruptException : MetadataStoreException
{
    public MetadataCorruptException(string message)
        : base(message)
    {
    }
}
