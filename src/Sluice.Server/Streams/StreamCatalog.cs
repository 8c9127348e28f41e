using Google.Protobuf;
using Sluice.Protocol.Internal;
using Sluice.Storage.Metadata;

namespace Sluice.Server.Streams;

/// <summary>
/// The broker's durable metadata in the metadata store: one key per stream
/// (<c>/sluice/streams/&lt;name&gt;</c> → <see cref="StreamRecord"/>) and one per partition
/// (<c>/sluice/partitions/&lt;name&gt;/&lt;id&gt;</c> → <see cref="PartitionStateRecord"/>).
/// Every write returns the store revision it produced (activity event ids, leader epochs).
/// </summary>
/// <remarks>
/// Layout and atomicity. etcd (and the embedded store, which keeps etcd's defaults) refuses a transaction
/// of more than 128 operations or a request over 1.5 MiB, and a stream may have up to
/// <see cref="StreamLimits.MaxPartitions"/> partitions, so no write may need one operation per partition
/// to be atomic:
/// <list type="bullet">
/// <item>The stream key is the commit point. A stream exists exactly when its key does; a missing partition
/// key means a partition in its initial state (not paused, not readonly, no timestamps).</item>
/// <item>Create is therefore one transaction of two operations whatever the partition count: "if the stream
/// key is absent, delete any partition keys under the name and put the stream key". It cannot be half done.</item>
/// <item>Delete is one transaction too: the stream key and the partition prefix (a range delete is one operation).</item>
/// <item>Partition states (pause, readonly, shutdown) are written in chunks of at most <see cref="MaxOpsPerTxn"/>
/// puts and <see cref="MaxBytesPerTxn"/> bytes, the stream key (resumeAll) in the last chunk. Each chunk is
/// atomic; a crash between chunks leaves some partitions with their new state and the rest with the old,
/// each a state a client could have asked for, and the next start loads what is there.</item>
/// <item>Partition keys under a name with no stream key (written by an older version, or by an update that
/// raced a delete on another broker) are ignored and deleted at load.</item>
/// </list>
/// </remarks>
internal sealed class StreamCatalog(IMetadataStore store)
{
    public const string StreamsPrefix = "/sluice/streams/";
    public const string PartitionsPrefix = "/sluice/partitions/";

    /// <summary>Puts per transaction: under etcd's default --max-txn-ops of 128, with room for a compare or two.</summary>
    public const int MaxOpsPerTxn = 100;

    /// <summary>Bytes of keys and values per transaction: under etcd's default 1.5 MiB request limit, with room for framing.</summary>
    public const int MaxBytesPerTxn = 1024 * 1024;

    public IMetadataStore Store { get; } = store;

    public sealed record LoadedStream(StreamRecord Record, long CreateRevision, Dictionary<int, PartitionStateRecord> Partitions);

    public async Task<List<LoadedStream>> LoadAsync(CancellationToken cancellationToken)
    {
        var streams = await Store.GetPrefixAsync(StreamsPrefix, cancellationToken).ConfigureAwait(false);
        var partitions = await Store.GetPrefixAsync(PartitionsPrefix, cancellationToken).ConfigureAwait(false);
        var states = new Dictionary<string, Dictionary<int, PartitionStateRecord>>(StringComparer.Ordinal);
        foreach (var kv in partitions.Kvs)
        {
            if (!TryParsePartitionKey(kv.KeyString, out var name, out var id))
            {
                continue;
            }

            if (!states.TryGetValue(name, out var map))
            {
                states[name] = map = [];
            }

            map[id] = PartitionStateRecord.Parser.ParseFrom(kv.Value);
        }

        var result = new List<LoadedStream>();
        foreach (var kv in streams.Kvs)
        {
            var record = StreamRecord.Parser.ParseFrom(kv.Value);
            result.Add(new LoadedStream(record, kv.CreateRevision, states.GetValueOrDefault(record.Request.Name) ?? []));
            states.Remove(record.Request.Name);
        }

        // What is left has no stream key: never committed, or outlived its stream. Not a stream; cleaned so a
        // later stream of the same name starts fresh (create clears them too).
        await DeleteOrphansAsync(states.Keys, cancellationToken).ConfigureAwait(false);
        return result;
    }

    /// <summary>Splits "/sluice/partitions/&lt;stream&gt;/&lt;id&gt;"; false for anything else.</summary>
    public static bool TryParsePartitionKey(string key, out string stream, out int partition) => TryParsePerPartitionKey(PartitionsPrefix, key, out stream, out partition);

    /// <summary>Splits "&lt;prefix&gt;&lt;stream&gt;/&lt;id&gt;" (a key kept per partition); false for anything else.</summary>
    public static bool TryParsePerPartitionKey(string prefix, string key, out string stream, out int partition)
    {
        stream = string.Empty;
        partition = -1;
        if (!key.StartsWith(prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = key[prefix.Length..];
        var slash = rest.LastIndexOf('/');
        if (slash <= 0 || !int.TryParse(rest[(slash + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out partition))
        {
            return false;
        }

        stream = rest[..slash];
        return true;
    }

    private async Task DeleteOrphansAsync(IEnumerable<string> names, CancellationToken cancellationToken)
    {
        foreach (var chunk in names.Chunk(MaxOpsPerTxn))
        {
            var ops = chunk.Select(name => RequestOp.ForDeleteRange(DeleteRangeRequest.Prefix(KeyRanges.Utf8(PartitionsPrefix + name + "/")))).ToList();
            await Store.TxnAsync(new TxnRequest { Success = ops }, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Creates the stream in one transaction of two operations (see the remarks): fails with
    /// <see cref="StreamExistsException"/> if the name is taken. Returns the revision.
    /// </summary>
    public async Task<long> CreateAsync(StreamRecord record, CancellationToken cancellationToken)
    {
        var key = StreamKey(record.Request.Name);
        var response = await Store.TxnAsync(new TxnRequest
        {
            Compares = [Compare.Version(key, CompareResult.Equal, 0)],
            Success =
            [
                RequestOp.ForDeleteRange(DeleteRangeRequest.Prefix(PartitionPrefix(record.Request.Name))),
                RequestOp.ForPut(new PutRequest(key, record.ToByteArray())),
            ],
        }, cancellationToken).ConfigureAwait(false);
        return response.Succeeded ? response.Header.Revision : throw new StreamExistsException();
    }

    /// <summary>Removes the stream key and its partition keys in one transaction. Returns the revision.</summary>
    public async Task<long> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        var response = await Store.TxnAsync(new TxnRequest
        {
            Success =
            [
                RequestOp.ForDeleteRange(new DeleteRangeRequest(StreamKey(name))),
                RequestOp.ForDeleteRange(DeleteRangeRequest.Prefix(PartitionPrefix(name))),
            ],
        }, cancellationToken).ConfigureAwait(false);
        return response.Header.Revision;
    }

    /// <summary>
    /// Writes partition states (and optionally the stream record, last) in transactions of at most
    /// <see cref="MaxOpsPerTxn"/> puts and <see cref="MaxBytesPerTxn"/> bytes. Returns the last revision.
    /// </summary>
    public async Task<long> UpdateAsync(MessageStream stream, IEnumerable<Partition> partitions, bool includeStream, CancellationToken cancellationToken)
    {
        var puts = partitions.Select(p => new PutRequest(PartitionKey(stream.Name, p.Id), p.ToRecord().ToByteArray()));
        if (includeStream)
        {
            puts = puts.Append(new PutRequest(StreamKey(stream.Name), stream.Record.ToByteArray()));
        }

        long revision = 0;
        var ops = new List<RequestOp>();
        var bytes = 0L;
        foreach (var put in puts)
        {
            var size = (long)put.Key.Length + put.Value.Length;
            if (ops.Count > 0 && (ops.Count == MaxOpsPerTxn || bytes + size > MaxBytesPerTxn))
            {
                revision = await CommitAsync(ops, cancellationToken).ConfigureAwait(false);
                ops = [];
                bytes = 0;
            }

            ops.Add(RequestOp.ForPut(put));
            bytes += size;
        }

        return ops.Count > 0 || revision == 0 ? await CommitAsync(ops, cancellationToken).ConfigureAwait(false) : revision;
    }

    private async Task<long> CommitAsync(List<RequestOp> ops, CancellationToken cancellationToken) =>
        (await Store.TxnAsync(new TxnRequest { Success = ops }, cancellationToken).ConfigureAwait(false)).Header.Revision;

    private static byte[] StreamKey(string name) => KeyRanges.Utf8(StreamsPrefix + name);

    private static byte[] PartitionPrefix(string name) => KeyRanges.Utf8(PartitionsPrefix + name + "/");

    private static byte[] PartitionKey(string name, int id) =>
        KeyRanges.Utf8(string.Concat(PartitionsPrefix, name, "/", id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
}
