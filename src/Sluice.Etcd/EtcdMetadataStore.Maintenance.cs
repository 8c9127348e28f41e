using Grpc.Core;
using Sluice.Storage.Metadata;
using Rpc = Etcdserverpb;

namespace Sluice.Etcd;

public sealed partial class EtcdMetadataStore
{
    /// <summary>
    /// Compacts etcd's history at <paramref name="revision"/> and waits until the compaction is physically applied,
    /// so a read below it fails as soon as this returns.
    /// </summary>
    public async ValueTask<CompactResponse> CompactAsync(long revision, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(revision, 1);
        var request = new Rpc.CompactionRequest { Revision = revision, Physical = true };
        var response = await UnaryAsync((m, o) => m.Kv.CompactAsync(request, o), r => r.Header, new ErrorContext(Revision: revision), cancellationToken).ConfigureAwait(false);
        Max(ref _compactRevision, revision);
        return new CompactResponse(Header(response.Header));
    }

    /// <summary>
    /// etcd's HashKV from the member calls go to now. Like the embedded store's it is a CRC-32C (Castagnoli), but
    /// over etcd's own encoding of each key version (its revision key and marshalled KeyValue in the bolt "key"
    /// bucket), so it is comparable only between members of one etcd cluster, never with the embedded store's hash.
    /// </summary>
    public async ValueTask<HashKVResponse> HashKVAsync(long revision = 0, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(revision);
        var request = new Rpc.HashKVRequest { Revision = revision };
        var response = await UnaryAsync((m, o) => m.Maintenance.HashKVAsync(request, o), r => r.Header, new ErrorContext(Revision: revision), cancellationToken).ConfigureAwait(false);
        Max(ref _compactRevision, response.CompactRevision);
        return new HashKVResponse(Header(response.Header), response.Hash, response.CompactRevision, revision > 0 ? revision : response.Header.Revision);
    }

    /// <summary>
    /// Streams etcd's snapshot (its bolt database file, as <c>etcdctl snapshot save</c> writes it and
    /// <c>etcdctl snapshot restore</c> reads it) from the member calls go to now. Not the embedded store's format.
    /// The deadline applies to each chunk, so a large snapshot is not cut off while it keeps flowing.
    /// </summary>
    public async Task SnapshotAsync(Stream destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ThrowIfDisposed();
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var member = _members.Current;
        try
        {
            using var call = member.Maintenance.Snapshot(new Rpc.SnapshotRequest(), new CallOptions(cancellationToken: idle.Token));
            while (true)
            {
                idle.CancelAfter(_options.RequestTimeout);
                if (!await call.ResponseStream.MoveNext(idle.Token).ConfigureAwait(false))
                {
                    break;
                }

                var chunk = call.ResponseStream.Current;
                Observe(chunk.Header);
                await destination.WriteAsync(chunk.Blob.Memory, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw Unavailable(e);
        }
        catch (RpcException e)
        {
            throw await MapAsync(e, member, default, cancellationToken).ConfigureAwait(false);
        }
    }
}
