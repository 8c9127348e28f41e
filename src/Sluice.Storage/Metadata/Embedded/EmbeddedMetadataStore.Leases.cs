using Sluice.Storage.Metadata.Persistence;

namespace Sluice.Storage.Metadata.Embedded;

public sealed partial class EmbeddedMetadataStore
{
    /// <inheritdoc />
    public async ValueTask<LeaseGrantResponse> LeaseGrantAsync(long ttlSeconds, long id = 0, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ttlSeconds, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(id);
        cancellationToken.ThrowIfCancellationRequested();
        Task durable;
        long revision;
        lock (_writeLock)
        {
            ThrowIfFaulted();
            if (id == 0)
            {
                do
                {
                    id = NewLeaseId();
                }
                while (_leases.ContainsKey(id));
            }
            else if (_leases.ContainsKey(id))
            {
                throw new LeaseExistsException(id);
            }

            revision = _pendingRevision;
            durable = CommitLocked(new LogRecord(revision, [LogEntry.LeaseGrant(id, ttlSeconds)]));
        }

        await durable.ConfigureAwait(false);
        return new LeaseGrantResponse(new ResponseHeader(revision), id, ttlSeconds);
    }

    /// <inheritdoc />
    public ValueTask<LeaseKeepAliveResponse> LeaseKeepAliveAsync(long id, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_writeLock)
        {
            ThrowIfFaulted();
            if (!_leases.TryGetValue(id, out var lease))
            {
                throw new LeaseNotFoundException(id);
            }

            // Keep-alives are not logged (as etcd): after a restart every lease starts a fresh TTL anyway.
            lease.ExpiresAt = _time.GetTimestamp() + (lease.Ttl * _time.TimestampFrequency);
            return ValueTask.FromResult(new LeaseKeepAliveResponse(new ResponseHeader(_visibleRevision), id, lease.Ttl));
        }
    }

    /// <inheritdoc />
    public async ValueTask LeaseRevokeAsync(long id, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Task durable;
        lock (_writeLock)
        {
            durable = RevokeLocked(id);
        }

        await durable.ConfigureAwait(false);
    }

    private Task RevokeLocked(long id)
    {
        ThrowIfFaulted();
        if (!_leases.TryGetValue(id, out var lease))
        {
            throw new LeaseNotFoundException(id);
        }

        var entries = new List<LogEntry>(lease.Keys.Count + 1);
        var keys = lease.Keys.ToList();
        keys.Sort(static (a, b) => a.AsSpan().SequenceCompareTo(b));
        foreach (var key in keys)
        {
            entries.Add(LogEntry.Delete(key));
        }

        entries.Add(LogEntry.LeaseRevoke(id));
        var revision = keys.Count > 0 ? _pendingRevision + 1 : _pendingRevision;
        return CommitLocked(new LogRecord(revision, entries));
    }

    /// <inheritdoc />
    public ValueTask<LeaseTimeToLiveResponse> LeaseTimeToLiveAsync(long id, bool keys = false, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_writeLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var header = new ResponseHeader(_visibleRevision);
            if (!_leases.TryGetValue(id, out var lease))
            {
                return ValueTask.FromResult(new LeaseTimeToLiveResponse(header, id, -1, 0, []));
            }

            var remaining = lease.ExpiresAt - _time.GetTimestamp();
            var seconds = Math.Max(0, (long)Math.Ceiling(remaining / (double)_time.TimestampFrequency));
            IReadOnlyList<byte[]> attached = keys ? [.. lease.Keys.Select(k => k.ToArray())] : [];
            return ValueTask.FromResult(new LeaseTimeToLiveResponse(header, id, seconds, lease.Ttl, attached));
        }
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<long>> LeaseLeasesAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_writeLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            IReadOnlyList<long> ids = [.. _leases.Keys.Order()];
            return ValueTask.FromResult(ids);
        }
    }

    /// <summary>Revokes every lease whose TTL ran out; their keys are deleted and watchers see the deletes.</summary>
    internal async Task ExpireLeasesAsync()
    {
        var now = _time.GetTimestamp();
        var durable = new List<Task>();
        lock (_writeLock)
        {
            if (_fault is not null || _disposed)
            {
                return;
            }

            foreach (var lease in _leases.Values.Where(l => l.ExpiresAt <= now).ToList())
            {
                durable.Add(RevokeLocked(lease.Id));
            }
        }

        await Task.WhenAll(durable).ConfigureAwait(false);
    }
}
