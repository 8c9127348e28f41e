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
internal sealed class StreamCatalog(IMetadataStore store)
{
    public const string StreamsPrefix = "/sluice/streams/";
    public const string PartitionsPrefix = "/sluice/partitions/";

    public IMetadataStore Store { get; } = store;

    public sealed record LoadedStream(StreamRecord Record, long CreateRevision, Dictionary<int, PartitionStateRecord> Partitions);

    public async Task<List<LoadedStream>> LoadAsync(CancellationToken cancellationToken)
    {
        var streams = await Store.GetPrefixAsync(StreamsPrefix, cancellationToken).ConfigureAwait(false);
        var partitions = await Store.GetPrefixAsync(PartitionsPrefix, cancellationToken).ConfigureAwait(false);
        var states = new Dictionary<string, Dictionary<int, PartitionStateRecord>>(StringComparer.Ordinal);
        foreach (var kv in partitions.Kvs)
        {
            var rest = kv.KeyString[PartitionsPrefix.Length..];
            var slash = rest.LastIndexOf('/');
            if (slash <= 0 || !int.TryParse(rest[(slash + 1)..], System.Globalization.CultureInfo.InvariantCulture, out var id))
            {
                continue;
            }

            var name = rest[..slash];
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
        }

        return result;
    }

    /// <summary>Creates the stream and its partitions in one transaction; fails if the name is taken. Returns the revision.</summary>
    public async Task<long> CreateAsync(StreamRecord record, IEnumerable<(int Id, PartitionStateRecord State)> partitions, CancellationToken cancellationToken)
    {
        var key = StreamKey(record.Request.Name);
        var ops = new List<RequestOp> { RequestOp.ForPut(new PutRequest(key, record.ToByteArray())) };
        ops.AddRange(partitions.Select(p => RequestOp.ForPut(new PutRequest(PartitionKey(record.Request.Name, p.Id), p.State.ToByteArray()))));
        var response = await Store.TxnAsync(new TxnRequest
        {
            Compares = [Compare.Version(key, CompareResult.Equal, 0)],
            Success = ops,
        }, cancellationToken).ConfigureAwait(false);
        return response.Succeeded ? response.Header.Revision : throw new StreamExistsException();
    }

    public async Task<long> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        var response = await Store.TxnAsync(new TxnRequest
        {
            Success =
            [
                RequestOp.ForDeleteRange(new DeleteRangeRequest(StreamKey(name))),
                RequestOp.ForDeleteRange(DeleteRangeRequest.Prefix(KeyRanges.Utf8(PartitionsPrefix + name + "/"))),
            ],
        }, cancellationToken).ConfigureAwait(false);
        return response.Header.Revision;
    }

    /// <summary>Writes partition states (and optionally the stream record) in one transaction. Returns the revision.</summary>
    public async Task<long> UpdateAsync(MessageStream stream, IEnumerable<Partition> partitions, bool includeStream, CancellationToken cancellationToken)
    {
        var ops = partitions.Select(p => RequestOp.ForPut(new PutRequest(PartitionKey(stream.Name, p.Id), p.ToRecord().ToByteArray()))).ToList();
        if (includeStream)
        {
            ops.Add(RequestOp.ForPut(new PutRequest(StreamKey(stream.Name), stream.Record.ToByteArray())));
        }

        var response = await Store.TxnAsync(new TxnRequest { Success = ops }, cancellationToken).ConfigureAwait(false);
        return response.Header.Revision;
    }

    private static byte[] StreamKey(string name) => KeyRanges.Utf8(StreamsPrefix + name);

    private static byte[] PartitionKey(string name, int id) =>
        KeyRanges.Utf8(string.Concat(PartitionsPrefix, name, "/", id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
}
