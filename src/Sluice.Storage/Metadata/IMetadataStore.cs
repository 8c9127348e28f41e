namespace Sluice.Storage.Metadata;

/// <summary>
/// Everything Sluice remembers besides messages, behind a contract shaped 1:1 on etcd's v3 KV, Watch, Lease and
/// Maintenance APIs. The embedded implementation is <see cref="Embedded.EmbeddedMetadataStore"/>; a cluster maps the
/// same calls onto a real etcd.
/// </summary>
/// <remarks>
/// Revisions follow etcd: an empty store is at revision 1, each write transaction adds one, and a transaction that
/// changes nothing leaves it alone. Every write is durable when its task completes.
/// </remarks>
public interface IMetadataStore : IAsyncDisposable
{
    /// <summary>Current (durable, visible) store revision.</summary>
    long Revision { get; }

    /// <summary>Revision of the last compaction (0 when never compacted).</summary>
    long CompactRevision { get; }

    /// <summary>Reads keys. Throws <see cref="CompactedException"/> or <see cref="FutureRevisionException"/> for bad revisions.</summary>
    ValueTask<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken = default);

    /// <summary>Writes one key. Throws <see cref="LeaseNotFoundException"/> for an unknown lease.</summary>
    ValueTask<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default);

    /// <summary>Deletes one key or a range; deleting nothing does not advance the revision.</summary>
    ValueTask<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default);

    /// <summary>Compares, then runs one branch atomically under a single revision.</summary>
    ValueTask<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default);

    /// <summary>Discards history at and below <paramref name="revision"/> (the latest version of each key at it stays readable).</summary>
    ValueTask<CompactResponse> CompactAsync(long revision, CancellationToken cancellationToken = default);

    /// <summary>CRC-32C of the key space at <paramref name="revision"/> (0 for current).</summary>
    ValueTask<HashKVResponse> HashKVAsync(long revision = 0, CancellationToken cancellationToken = default);

    /// <summary>
    /// Watches a key or range: replays history from the start revision, then follows live changes, one response
    /// per revision, in order, with no gaps or duplicates. The consumer sets the pace (nothing is buffered or
    /// dropped); a watcher that falls behind a compaction ends with <see cref="CompactedException"/>.
    /// </summary>
    IAsyncEnumerable<WatchResponse> WatchAsync(WatchRequest request, CancellationToken cancellationToken = default);

    /// <summary>Asks every synced watcher to send a progress notification at the current revision.</summary>
    void RequestWatchProgress();

    /// <summary>Grants a lease of <paramref name="ttlSeconds"/>; <paramref name="id"/> 0 lets the store pick one.</summary>
    ValueTask<LeaseGrantResponse> LeaseGrantAsync(long ttlSeconds, long id = 0, CancellationToken cancellationToken = default);

    /// <summary>Refreshes a lease to its granted TTL. Throws <see cref="LeaseNotFoundException"/> when it is gone.</summary>
    ValueTask<LeaseKeepAliveResponse> LeaseKeepAliveAsync(long id, CancellationToken cancellationToken = default);

    /// <summary>Revokes a lease, deleting its keys in one revision. Throws <see cref="LeaseNotFoundException"/>.</summary>
    ValueTask LeaseRevokeAsync(long id, CancellationToken cancellationToken = default);

    /// <summary>Remaining TTL of a lease (-1 when it does not exist), with its keys if asked.</summary>
    ValueTask<LeaseTimeToLiveResponse> LeaseTimeToLiveAsync(long id, bool keys = false, CancellationToken cancellationToken = default);

    /// <summary>Ids of the live leases.</summary>
    ValueTask<IReadOnlyList<long>> LeaseLeasesAsync(CancellationToken cancellationToken = default);

    /// <summary>Writes a consistent snapshot of the whole store to <paramref name="destination"/>.</summary>
    Task SnapshotAsync(Stream destination, CancellationToken cancellationToken = default);
}
