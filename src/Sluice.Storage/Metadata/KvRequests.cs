namespace Sluice.Storage.Metadata;

/// <summary>
/// etcd's <c>RangeRequest</c>: one key (<see cref="RangeEnd"/> null or empty), <c>[Key, RangeEnd)</c>,
/// or every key from <see cref="Key"/> on (<see cref="RangeEnd"/> = <see cref="KeyRanges.FromKey"/>).
/// </summary>
public sealed record RangeRequest(byte[] Key)
{
    /// <summary>Exclusive end of the range; null or empty for a single key.</summary>
    public byte[]? RangeEnd { get; init; }

    /// <summary>Maximum number of keys returned; 0 for no limit.</summary>
    public long Limit { get; init; }

    /// <summary>Revision to read at; 0 or less for the current revision.</summary>
    public long Revision { get; init; }

    /// <summary>Return keys without values.</summary>
    public bool KeysOnly { get; init; }

    /// <summary>Return only the count.</summary>
    public bool CountOnly { get; init; }

    /// <summary>A read of every key that starts with <paramref name="prefix"/>.</summary>
    public static RangeRequest Prefix(byte[] prefix) => new(KeyRanges.PrefixStart(prefix)) { RangeEnd = KeyRanges.PrefixEnd(prefix) };

    /// <summary>A read of every key that starts with <paramref name="prefix"/>.</summary>
    public static RangeRequest Prefix(string prefix) => Prefix(KeyRanges.Utf8(prefix));
}

/// <summary>etcd's <c>PutRequest</c>.</summary>
public sealed record PutRequest(byte[] Key, byte[] Value)
{
    /// <summary>Lease to attach (0 for none); the key is deleted when the lease ends.</summary>
    public long Lease { get; init; }

    /// <summary>Return the previous version of the key.</summary>
    public bool PrevKv { get; init; }

    /// <summary>Keep the current value (the key must exist).</summary>
    public bool IgnoreValue { get; init; }

    /// <summary>Keep the current lease (the key must exist).</summary>
    public bool IgnoreLease { get; init; }
}

/// <summary>etcd's <c>DeleteRangeRequest</c>; ranges as in <see cref="RangeRequest"/>.</summary>
public sealed record DeleteRangeRequest(byte[] Key)
{
    /// <summary>Exclusive end of the range; null or empty for a single key.</summary>
    public byte[]? RangeEnd { get; init; }

    /// <summary>Return the deleted versions.</summary>
    public bool PrevKv { get; init; }

    /// <summary>A delete of every key that starts with <paramref name="prefix"/>.</summary>
    public static DeleteRangeRequest Prefix(byte[] prefix) => new(KeyRanges.PrefixStart(prefix)) { RangeEnd = KeyRanges.PrefixEnd(prefix) };
}

/// <summary>etcd's compare operators.</summary>
public enum CompareResult
{
    Equal = 0,
    Greater = 1,
    Less = 2,
    NotEqual = 3,
}

/// <summary>etcd's compare targets.</summary>
public enum CompareTarget
{
    Version = 0,
    Create = 1,
    Mod = 2,
    Value = 3,
    Lease = 4,
}

/// <summary>
/// etcd's <c>Compare</c>. A missing key compares as version, revisions and lease 0; a value compare on a
/// missing key is false. With a <see cref="RangeEnd"/>, every key in the range must match.
/// </summary>
public sealed record Compare(byte[] Key, CompareTarget Target, CompareResult Result)
{
    /// <summary>Number compared for version, create, mod and lease targets.</summary>
    public long Number { get; init; }

    /// <summary>Bytes compared for the value target.</summary>
    public byte[]? Value { get; init; }

    /// <summary>Optional range end, as in <see cref="RangeRequest.RangeEnd"/>.</summary>
    public byte[]? RangeEnd { get; init; }

    public static Compare Version(byte[] key, CompareResult result, long version) => new(key, CompareTarget.Version, result) { Number = version };

    public static Compare CreateRevision(byte[] key, CompareResult result, long revision) => new(key, CompareTarget.Create, result) { Number = revision };

    public static Compare ModRevision(byte[] key, CompareResult result, long revision) => new(key, CompareTarget.Mod, result) { Number = revision };

    public static Compare LeaseId(byte[] key, CompareResult result, long lease) => new(key, CompareTarget.Lease, result) { Number = lease };

    public static Compare ValueOf(byte[] key, CompareResult result, byte[] value) => new(key, CompareTarget.Value, result) { Value = value };
}

/// <summary>One operation of a transaction branch: exactly one of the four requests is set.</summary>
public sealed record RequestOp
{
    private RequestOp()
    {
    }

    public RangeRequest? Range { get; private init; }

    public PutRequest? Put { get; private init; }

    public DeleteRangeRequest? DeleteRange { get; private init; }

    public TxnRequest? Txn { get; private init; }

    public static RequestOp ForRange(RangeRequest request) => new() { Range = request ?? throw new ArgumentNullException(nameof(request)) };

    public static RequestOp ForPut(PutRequest request) => new() { Put = request ?? throw new ArgumentNullException(nameof(request)) };

    public static RequestOp ForDeleteRange(DeleteRangeRequest request) => new() { DeleteRange = request ?? throw new ArgumentNullException(nameof(request)) };

    public static RequestOp ForTxn(TxnRequest request) => new() { Txn = request ?? throw new ArgumentNullException(nameof(request)) };
}

/// <summary>
/// etcd's <c>TxnRequest</c>: if every compare holds, run <see cref="Success"/>, else <see cref="Failure"/>,
/// atomically under one revision. Nested compares are evaluated against the state before the transaction.
/// </summary>
public sealed record TxnRequest
{
    public IReadOnlyList<Compare> Compares { get; init; } = [];

    public IReadOnlyList<RequestOp> Success { get; init; } = [];

    public IReadOnlyList<RequestOp> Failure { get; init; } = [];
}
