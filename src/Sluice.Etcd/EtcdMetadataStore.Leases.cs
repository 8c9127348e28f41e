using Sluice.Storage.Metadata;
using Rpc = Etcdserverpb;

namespace Sluice.Etcd;

public sealed partial class EtcdMetadataStore
{
    /// <inheritdoc />
    public async ValueTask<LeaseGrantResponse> LeaseGrantAsync(long ttlSeconds, long id = 0, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ttlSeconds, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(id);
        var request = new Rpc.LeaseGrantRequest { TTL = ttlSeconds, ID = id };
        var response = await UnaryAsync((m, o) => m.Lease.LeaseGrantAsync(request, o), r => r.Header, new ErrorContext(LeaseId: id), cancellationToken).ConfigureAwait(false);
        if (!string.IsNullOrEmpty(response.Error))
        {
            throw new MetadataStoreException($"etcd: {response.Error}");
        }

        return new LeaseGrantResponse(Header(response.Header), response.ID, response.TTL);
    }

    /// <summary>
    /// One refresh, on a LeaseKeepAlive stream opened for it (a broker refreshes about once a second, so a stream per
    /// refresh costs little and needs no reconnect logic). Throws <see cref="LeaseNotFoundException"/> when etcd
    /// answers TTL 0 (the lease is gone).
    /// </summary>
    public async ValueTask<LeaseKeepAliveResponse> LeaseKeepAliveAsync(long id, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        Rpc.LeaseKeepAliveResponse response;
        var member = _members.Current;
        try
        {
            using var call = member.Lease.LeaseKeepAlive(Call(cancellationToken));
            await call.RequestStream.WriteAsync(new Rpc.LeaseKeepAliveRequest { ID = id }, cancellationToken).ConfigureAwait(false);
            if (!await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
            {
                throw Unavailable(new InvalidOperationException("etcd closed the keep-alive stream without an answer"));
            }

            response = call.ResponseStream.Current;
            await call.RequestStream.CompleteAsync().ConfigureAwait(false);
        }
        catch (Grpc.Core.RpcException e)
        {
            throw await MapAsync(e, member, new ErrorContext(LeaseId: id), cancellationToken).ConfigureAwait(false);
        }

        Observe(response.Header);
        if (response.TTL <= 0)
        {
            throw new LeaseNotFoundException(id);
        }

        return new LeaseKeepAliveResponse(Header(response.Header), response.ID, response.TTL);
    }

    /// <inheritdoc />
    public async ValueTask LeaseRevokeAsync(long id, CancellationToken cancellationToken = default)
    {
        var request = new Rpc.LeaseRevokeRequest { ID = id };
        await UnaryAsync((m, o) => m.Lease.LeaseRevokeAsync(request, o), r => r.Header, new ErrorContext(LeaseId: id), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<LeaseTimeToLiveResponse> LeaseTimeToLiveAsync(long id, bool keys = false, CancellationToken cancellationToken = default)
    {
        var request = new Rpc.LeaseTimeToLiveRequest { ID = id, Keys = keys };
        var response = await UnaryAsync((m, o) => m.Lease.LeaseTimeToLiveAsync(request, o), r => r.Header, new ErrorContext(LeaseId: id), cancellationToken).ConfigureAwait(false);
        return new LeaseTimeToLiveResponse(Header(response.Header), response.ID, response.TTL, response.GrantedTTL, response.Keys.Select(k => k.ToByteArray()).ToArray());
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<long>> LeaseLeasesAsync(CancellationToken cancellationToken = default)
    {
        var response = await UnaryAsync((m, o) => m.Lease.LeaseLeasesAsync(new Rpc.LeaseLeasesRequest(), o), r => r.Header, default, cancellationToken).ConfigureAwait(false);
        return response.Leases.Select(l => l.ID).ToArray();
    }
}
