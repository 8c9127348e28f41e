using System.Text;
using Sluice.Storage.Metadata.Persistence;

namespace Sluice.Storage.Metadata.Embedded;

public sealed partial class EmbeddedMetadataStore
{
    /// <inheritdoc />
    public ValueTask<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellationToken = default)
    {
        ValidateRange(request);
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        _rw.EnterReadLock();
        try
        {
            var visible = Volatile.Read(ref _visibleRevision);
            var revision = CheckReadRevision(request.Revision, visible);
            return ValueTask.FromResult(ReadRange(request, revision, visible, context: null));
        }
        finally
        {
            _rw.ExitReadLock();
        }
    }

    /// <inheritdoc />
    public async ValueTask<PutResponse> PutAsync(PutRequest request, CancellationToken cancellationToken = default)
    {
        var response = await TxnAsync(new TxnRequest { Success = [RequestOp.ForPut(request)] }, cancellationToken).ConfigureAwait(false);
        return response.Responses[0].Put!;
    }

    /// <inheritdoc />
    public async ValueTask<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, CancellationToken cancellationToken = default)
    {
        var response = await TxnAsync(new TxnRequest { Success = [RequestOp.ForDeleteRange(request)] }, cancellationToken).ConfigureAwait(false);
        return response.Responses[0].DeleteRange!;
    }

    /// <inheritdoc />
    public async ValueTask<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default)
    {
        ValidateTxn(request);
        cancellationToken.ThrowIfCancellationRequested(); // the last point where the caller can back out
        TxnResponse response;
        Task durable;
        lock (_writeLock)
        {
            ThrowIfFaulted();
            var context = new TxnContext(_pendingRevision + 1);
            response = ExecuteTxn(request, context);
            if (context.Entries.Count > 0)
            {
                durable = CommitLocked(new LogRecord(context.Revision, context.Entries));
            }
            else
            {
                // Reads only: answer once what they saw is durable, so they never report an unacknowledged write.
                durable = WaitDurableAsync(_pendingRevision);
            }
        }

        await durable.ConfigureAwait(false);
        return response;
    }

    /// <summary>Writes of the transaction being executed, layered over the index.</summary>
    private sealed class TxnContext(long revision)
    {
        public long Revision { get; } = revision;

        public List<LogEntry> Entries { get; } = [];

        /// <summary>Key to its state after this transaction's writes (null: deleted here).</summary>
        public Dictionary<byte[], KeyValue?> Overlay { get; } = new(ByteArrayComparer.Instance);

        public HashSet<byte[]> PutKeys { get; } = new(ByteArrayComparer.Instance);

        public List<(byte[] Key, byte[]? End)> DeleteRanges { get; } = [];
    }

    private TxnResponse ExecuteTxn(TxnRequest request, TxnContext context)
    {
        // Compares, nested ones included, see the state before the transaction (as etcd).
        var succeeded = true;
        foreach (var compare in request.Compares)
        {
            if (!Evaluate(compare))
            {
                succeeded = false;
                break;
            }
        }

        var ops = succeeded ? request.Success : request.Failure;
        var responses = new List<ResponseOp>(ops.Count);
        foreach (var op in ops)
        {
            responses.Add(ExecuteOp(op, context));
        }

        var revision = context.Entries.Count > 0 ? context.Revision : _pendingRevision;
        return new TxnResponse(new ResponseHeader(revision), succeeded, responses);
    }

    private ResponseOp ExecuteOp(RequestOp op, TxnContext context)
    {
        if (op.Range is { } range)
        {
            if (range.Revision > 0)
            {
                var revision = CheckReadRevision(range.Revision, _pendingRevision);
                return new ResponseOp { Range = ReadRange(range, revision, _pendingRevision, context: null) };
            }

            return new ResponseOp { Range = ReadRange(range, _pendingRevision, context.Entries.Count > 0 ? context.Revision : _pendingRevision, context) };
        }

        if (op.Put is { } put)
        {
            return new ResponseOp { Put = ExecutePut(put, context) };
        }

        if (op.DeleteRange is { } delete)
        {
            return new ResponseOp { DeleteRange = ExecuteDelete(delete, context) };
        }

        return new ResponseOp { Txn = ExecuteTxn(op.Txn!, context) };
    }

    private PutResponse ExecutePut(PutRequest put, TxnContext context)
    {
        if (!context.PutKeys.Add(put.Key) || context.DeleteRanges.Exists(r => KeyRanges.Contains(r.Key, r.End, put.Key)))
        {
            throw new ArgumentException("duplicate key given in txn request", nameof(put));
        }

        var prev = CurrentValue(put.Key, context);
        if ((put.IgnoreValue || put.IgnoreLease) && prev is null)
        {
            throw new KeyNotFoundForUpdateException(Encoding.UTF8.GetString(put.Key));
        }

        var lease = put.IgnoreLease ? prev!.Lease : put.Lease;
        if (lease != 0 && !_leases.ContainsKey(lease))
        {
            throw new LeaseNotFoundException(lease);
        }

        var value = put.IgnoreValue ? prev!.Value : put.Value;
        var key = put.Key.ToArray(); // the store owns its bytes; callers may reuse their arrays
        var kv = new KeyValue(key, value.ToArray(), prev?.CreateRevision ?? context.Revision, context.Revision, (prev?.Version ?? 0) + 1, lease);
        context.Overlay[key] = kv;
        context.Entries.Add(LogEntry.Put(key, kv.Value, kv.CreateRevision, kv.Version, lease));
        return new PutResponse(new ResponseHeader(context.Revision), put.PrevKv ? prev : null);
    }

    private DeleteRangeResponse ExecuteDelete(DeleteRangeRequest delete, TxnContext context)
    {
        var end = NormalizeEnd(delete.RangeEnd);
        foreach (var putKey in context.PutKeys)
        {
            if (KeyRanges.Contains(delete.Key, end, putKey))
            {
                throw new ArgumentException("duplicate key given in txn request", nameof(delete));
            }
        }

        context.DeleteRanges.Add((delete.Key, end));
        var live = LiveKeys(delete.Key, end, context);
        foreach (var kv in live)
        {
            context.Overlay[kv.Key] = null;
            context.Entries.Add(LogEntry.Delete(kv.Key));
        }

        var revision = live.Count > 0 ? context.Revision : (context.Entries.Count > 0 ? context.Revision : _pendingRevision);
        return new DeleteRangeResponse(new ResponseHeader(revision), live.Count, delete.PrevKv ? live : []);
    }

    private KeyValue? CurrentValue(byte[] key, TxnContext context) =>
        context.Overlay.TryGetValue(key, out var written) ? written : _index.Find(key)?.At(_pendingRevision);

    /// <summary>Live keys in the range as the transaction sees them (its own writes included), in key order.</summary>
    private List<KeyValue> LiveKeys(byte[] key, byte[]? end, TxnContext? context)
    {
        var result = new List<KeyValue>();
        foreach (var history in _index.Range(key, end))
        {
            if (context is not null && context.Overlay.ContainsKey(history.Key))
            {
                continue;
            }

            if (history.At(_pendingRevision) is { } kv)
            {
                result.Add(kv);
            }
        }

        if (context is not null && context.Overlay.Count > 0)
        {
            var added = false;
            foreach (var (k, kv) in context.Overlay)
            {
                if (kv is not null && KeyRanges.Contains(key, end, k))
                {
                    result.Add(kv);
                    added = true;
                }
            }

            if (added)
            {
                result.Sort(static (a, b) => a.Key.AsSpan().SequenceCompareTo(b.Key));
            }
        }

        return result;
    }

    private bool Evaluate(Compare compare)
    {
        var kvs = LiveKeys(compare.Key, NormalizeEnd(compare.RangeEnd), context: null);
        if (kvs.Count == 0)
        {
            return compare.Target != CompareTarget.Value && Matches(compare, null);
        }

        foreach (var kv in kvs)
        {
            if (!Matches(compare, kv))
            {
                return false;
            }
        }

        return true;
    }

    private static bool Matches(Compare compare, KeyValue? kv)
    {
        int order;
        if (compare.Target == CompareTarget.Value)
        {
            order = kv!.Value.AsSpan().SequenceCompareTo(compare.Value);
        }
        else
        {
            var actual = compare.Target switch
            {
                CompareTarget.Version => kv?.Version ?? 0,
                CompareTarget.Create => kv?.CreateRevision ?? 0,
                CompareTarget.Mod => kv?.ModRevision ?? 0,
                CompareTarget.Lease => kv?.Lease ?? 0,
                _ => throw new ArgumentOutOfRangeException(nameof(compare), compare.Target, "unknown compare target"),
            };
            order = actual.CompareTo(compare.Number);
        }

        return compare.Result switch
        {
            CompareResult.Equal => order == 0,
            CompareResult.NotEqual => order != 0,
            CompareResult.Greater => order > 0,
            CompareResult.Less => order < 0,
            _ => throw new ArgumentOutOfRangeException(nameof(compare), compare.Result, "unknown compare result"),
        };
    }

    /// <summary>Reads at <paramref name="revision"/>; with an overlay, the transaction's own writes win.</summary>
    private RangeResponse ReadRange(RangeRequest request, long revision, long headerRevision, TxnContext? context)
    {
        var end = NormalizeEnd(request.RangeEnd);
        List<KeyValue> matched;
        if (context is { Overlay.Count: > 0 })
        {
            matched = LiveKeys(request.Key, end, context);
        }
        else
        {
            matched = [];
            var limit = request.Limit;
            long count = 0;
            foreach (var history in _index.Range(request.Key, end))
            {
                if (history.At(revision) is not { } kv)
                {
                    continue;
                }

                count++;
                if (!request.CountOnly && (limit == 0 || matched.Count < limit))
                {
                    matched.Add(request.KeysOnly ? kv with { Value = [] } : kv);
                }
            }

            return new RangeResponse(new ResponseHeader(headerRevision), request.CountOnly ? [] : matched, limit > 0 && count > matched.Count && !request.CountOnly, count);
        }

        var total = matched.Count;
        if (request.CountOnly)
        {
            return new RangeResponse(new ResponseHeader(headerRevision), [], false, total);
        }

        var taken = request.Limit > 0 && request.Limit < total ? matched.GetRange(0, (int)request.Limit) : matched;
        if (request.KeysOnly)
        {
            taken = taken.ConvertAll(kv => kv with { Value = [] });
        }

        return new RangeResponse(new ResponseHeader(headerRevision), taken, taken.Count < total, total);
    }

    private long CheckReadRevision(long requested, long current)
    {
        if (requested <= 0)
        {
            return current;
        }

        if (requested > current)
        {
            throw new FutureRevisionException(requested, current);
        }

        var compacted = Volatile.Read(ref _compactRevision);
        if (requested < compacted)
        {
            throw new CompactedException(requested, compacted);
        }

        return requested;
    }

    private static byte[]? NormalizeEnd(byte[]? end) => end is { Length: > 0 } ? end : null;

    private static void ValidateKey(byte[]? key, string name)
    {
        ArgumentNullException.ThrowIfNull(key, name);
        if (key.Length == 0)
        {
            throw new ArgumentException("key is not provided", name);
        }
    }

    private static void ValidateRange(RangeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ValidateKey(request.Key, nameof(request.Key));
        ArgumentOutOfRangeException.ThrowIfNegative(request.Limit, nameof(request.Limit));
    }

    private void ValidateTxn(TxnRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Compares, nameof(request.Compares));
        ArgumentNullException.ThrowIfNull(request.Success, nameof(request.Success));
        ArgumentNullException.ThrowIfNull(request.Failure, nameof(request.Failure));
        if (request.Compares.Count > _options.MaxTxnOps || request.Success.Count > _options.MaxTxnOps || request.Failure.Count > _options.MaxTxnOps)
        {
            throw new ArgumentException($"too many operations in txn request (the limit is {_options.MaxTxnOps})", nameof(request));
        }

        foreach (var compare in request.Compares)
        {
            ArgumentNullException.ThrowIfNull(compare, nameof(request.Compares));
            ValidateKey(compare.Key, nameof(compare.Key));
            if (compare.Target == CompareTarget.Value)
            {
                ArgumentNullException.ThrowIfNull(compare.Value, nameof(compare.Value));
            }
        }

        foreach (var op in request.Success.Concat(request.Failure))
        {
            ArgumentNullException.ThrowIfNull(op, nameof(request.Success));
            if (op.Range is { } range)
            {
                ValidateRange(range);
            }
            else if (op.Put is { } put)
            {
                ValidateKey(put.Key, nameof(put.Key));
                ArgumentNullException.ThrowIfNull(put.Value, nameof(put.Value));
                ArgumentOutOfRangeException.ThrowIfNegative(put.Lease, nameof(put.Lease));
                if ((long)put.Key.Length + put.Value.Length > _options.MaxPutBytes)
                {
                    throw new ArgumentException($"key and value exceed the request limit of {_options.MaxPutBytes} bytes", nameof(request));
                }
            }
            else if (op.DeleteRange is { } delete)
            {
                ValidateKey(delete.Key, nameof(delete.Key));
            }
            else
            {
                ValidateTxn(op.Txn!);
            }
        }
    }
}
