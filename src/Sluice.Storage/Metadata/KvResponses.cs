namespace Sluice.Storage.Metadata;

/// <summary>etcd's <c>RangeResponse</c>.</summary>
/// <param name="Header">Revision the read was served at (the current one unless a revision was asked for).</param>
/// <param name="Kvs">Matching keys in ascending key order, capped by the limit; empty when count-only.</param>
/// <param name="More">True when the limit cut the answer short.</param>
/// <param name="Count">Number of keys in the range, whatever the limit.</param>
public sealed record RangeResponse(ResponseHeader Header, IReadOnlyList<KeyValue> Kvs, bool More, long Count);

/// <summary>etcd's <c>PutResponse</c>.</summary>
public sealed record PutResponse(ResponseHeader Header, KeyValue? PrevKv);

/// <summary>etcd's <c>DeleteRangeResponse</c>.</summary>
public sealed record DeleteRangeResponse(ResponseHeader Header, long Deleted, IReadOnlyList<KeyValue> PrevKvs);

/// <summary>One answer inside a <see cref="TxnResponse"/>; the member matching the request op is set.</summary>
public sealed record ResponseOp
{
    public RangeResponse? Range { get; init; }

    public PutResponse? Put { get; init; }

    public DeleteRangeResponse? DeleteRange { get; init; }

    public TxnResponse? Txn { get; init; }
}

/// <summary>etcd's <c>TxnResponse</c>.</summary>
public sealed record TxnResponse(ResponseHeader Header, bool Succeeded, IReadOnlyList<ResponseOp> Responses);

/// <summary>etcd's <c>CompactionResponse</c>.</summary>
public sealed record CompactResponse(ResponseHeader Header);

/// <summary>etcd's <c>HashKVResponse</c>: a CRC-32C of the key space at a revision, for consistency checks.</summary>
public sealed record HashKVResponse(ResponseHeader Header, uint Hash, long CompactRevision, long HashRevision);
