using Google.Protobuf;
using Sluice.Storage.Metadata;
using Rpc = Etcdserverpb;

namespace Sluice.Etcd;

public sealed partial class EtcdMetadataStore
{
    /// <inheritdoc />
    public async ValueTask<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken = default)
    {
        var pb = ToPb(request);
        var response = await UnaryAsync((m, o) => m.Kv.RangeAsync(pb, o), r => r.Header, new ErrorContext(Revision: request.Revision), cancellationToken).ConfigureAwait(false);
        return FromPb(response);
    }

    /// <inheritdoc />
    public async ValueTask<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default)
    {
        var pb = ToPb(request);
        var response = await UnaryAsync((m, o) => m.Kv.PutAsync(pb, o), r => r.Header, new ErrorContext(LeaseId: request.Lease, Key: request.Key), cancellationToken).ConfigureAwait(false);
        return FromPb(response);
    }

    /// <inheritdoc />
    public async ValueTask<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default)
    {
        var pb = ToPb(request);
        var response = await UnaryAsync((m, o) => m.Kv.DeleteRangeAsync(pb, o), r => r.Header, default, cancellationToken).ConfigureAwait(false);
        return FromPb(response);
    }

    /// <inheritdoc />
    public async ValueTask<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default)
    {
        var pb = ToPb(request);
        var context = new ErrorContext(LeaseId: FirstLease(request), Revision: FirstRevision(request));
        var response = await UnaryAsync((m, o) => m.Kv.TxnAsync(pb, o), r => r.Header, context, cancellationToken).ConfigureAwait(false);
        return FromPb(response);
    }

    private static ByteString Wrap(byte[] bytes) => UnsafeByteOperations.UnsafeWrap(bytes);

    private static bool HasEnd(byte[]? end) => end is { Length: > 0 };

    private static Rpc.RangeRequest ToPb(RangeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ValidateKey(request.Key, nameof(request));
        ArgumentOutOfRangeException.ThrowIfNegative(request.Limit, nameof(request));
        var pb = new Rpc.RangeRequest
        {
            Key = Wrap(request.Key),
            Limit = request.Limit,
            Revision = Math.Max(0, request.Revision),
            KeysOnly = request.KeysOnly,
            CountOnly = request.CountOnly,
        };
        if (HasEnd(request.RangeEnd))
        {
            pb.RangeEnd = Wrap(request.RangeEnd!);
        }

        return pb;
    }

    private static Rpc.PutRequest ToPb(PutRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ValidateKey(request.Key, nameof(request));
        ArgumentNullException.ThrowIfNull(request.Value, nameof(request));
        return new Rpc.PutRequest
        {
            Key = Wrap(request.Key),
            Value = Wrap(request.Value),
            Lease = request.Lease,
            PrevKv = request.PrevKv,
            IgnoreValue = request.IgnoreValue,
            IgnoreLease = request.IgnoreLease,
        };
    }

    private static Rpc.DeleteRangeRequest ToPb(DeleteRangeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ValidateKey(request.Key, nameof(request));
        var pb = new Rpc.DeleteRangeRequest { Key = Wrap(request.Key), PrevKv = request.PrevKv };
        if (HasEnd(request.RangeEnd))
        {
            pb.RangeEnd = Wrap(request.RangeEnd!);
        }

        return pb;
    }

    private static Rpc.TxnRequest ToPb(TxnRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var pb = new Rpc.TxnRequest();
        foreach (var compare in request.Compares)
        {
            pb.Compare.Add(ToPb(compare));
        }

        pb.Success.Add(request.Success.Select(ToPb));
        pb.Failure.Add(request.Failure.Select(ToPb));
        return pb;
    }

    private static Rpc.Compare ToPb(Compare compare)
    {
        ArgumentNullException.ThrowIfNull(compare);
        ValidateKey(compare.Key, nameof(compare));
        var pb = new Rpc.Compare
        {
            Key = Wrap(compare.Key),
            Result = compare.Result switch
            {
                CompareResult.Equal => Rpc.Compare.Types.CompareResult.Equal,
                CompareResult.Greater => Rpc.Compare.Types.CompareResult.Greater,
                CompareResult.Less => Rpc.Compare.Types.CompareResult.Less,
                CompareResult.NotEqual => Rpc.Compare.Types.CompareResult.NotEqual,
                _ => throw new ArgumentOutOfRangeException(nameof(compare), compare.Result, "unknown compare result"),
            },
        };
        switch (compare.Target)
        {
            case CompareTarget.Version:
                pb.Target = Rpc.Compare.Types.CompareTarget.Version;
                pb.Version = compare.Number;
                break;
            case CompareTarget.Create:
                pb.Target = Rpc.Compare.Types.CompareTarget.Create;
                pb.CreateRevision = compare.Number;
                break;
            case CompareTarget.Mod:
                pb.Target = Rpc.Compare.Types.CompareTarget.Mod;
                pb.ModRevision = compare.Number;
                break;
            case CompareTarget.Value:
                pb.Target = Rpc.Compare.Types.CompareTarget.Value;
                pb.Value = Wrap(compare.Value ?? throw new ArgumentException("a value compare needs a value", nameof(compare)));
                break;
            case CompareTarget.Lease:
                pb.Target = Rpc.Compare.Types.CompareTarget.Lease;
                pb.Lease = compare.Number;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(compare), compare.Target, "unknown compare target");
        }

        if (HasEnd(compare.RangeEnd))
        {
            pb.RangeEnd = Wrap(compare.RangeEnd!);
        }

        return pb;
    }

    private static Rpc.RequestOp ToPb(RequestOp op)
    {
        ArgumentNullException.ThrowIfNull(op);
        return op switch
        {
            { Range: { } range } => new Rpc.RequestOp { RequestRange = ToPb(range) },
            { Put: { } put } => new Rpc.RequestOp { RequestPut = ToPb(put) },
            { DeleteRange: { } delete } => new Rpc.RequestOp { RequestDeleteRange = ToPb(delete) },
            { Txn: { } txn } => new Rpc.RequestOp { RequestTxn = ToPb(txn) },
            _ => throw new ArgumentException("a transaction op names no request", nameof(op)),
        };
    }

    private static long FirstLease(TxnRequest txn) =>
        txn.Success.Concat(txn.Failure).Select(op => op.Put?.Lease ?? (op.Txn is { } inner ? FirstLease(inner) : 0)).FirstOrDefault(l => l != 0);

    private static long FirstRevision(TxnRequest txn) =>
        txn.Success.Concat(txn.Failure).Select(op => op.Range?.Revision ?? (op.Txn is { } inner ? FirstRevision(inner) : 0)).FirstOrDefault(r => r > 0);

    private static ResponseHeader Header(Rpc.ResponseHeader? header) => new(header?.Revision ?? 0);

    internal static KeyValue FromPb(Mvccpb.KeyValue kv) =>
        new(kv.Key.ToByteArray(), kv.Value.ToByteArray(), kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease);

    private static RangeResponse FromPb(Rpc.RangeResponse r) => new(Header(r.Header), r.Kvs.Select(FromPb).ToArray(), r.More, r.Count);

    private static PutResponse FromPb(Rpc.PutResponse r) => new(Header(r.Header), r.PrevKv is null ? null : FromPb(r.PrevKv));

    private static DeleteRangeResponse FromPb(Rpc.DeleteRangeResponse r) => new(Header(r.Header), r.Deleted, r.PrevKvs.Select(FromPb).ToArray());

    private static TxnResponse FromPb(Rpc.TxnResponse r) => new(Header(r.Header), r.Succeeded, r.Responses.Select(FromPb).ToArray());

    private static ResponseOp FromPb(Rpc.ResponseOp op) => op.ResponseCase switch
    {
        Rpc.ResponseOp.ResponseOneofCase.ResponseRange => new ResponseOp { Range = FromPb(op.ResponseRange) },
        Rpc.ResponseOp.ResponseOneofCase.ResponsePut => new ResponseOp { Put = FromPb(op.ResponsePut) },
        Rpc.ResponseOp.ResponseOneofCase.ResponseDeleteRange => new ResponseOp { DeleteRange = FromPb(op.ResponseDeleteRange) },
        Rpc.ResponseOp.ResponseOneofCase.ResponseTxn => new ResponseOp { Txn = FromPb(op.ResponseTxn) },
        _ => new ResponseOp(),
    };
}
