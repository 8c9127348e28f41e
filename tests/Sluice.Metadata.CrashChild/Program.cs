// Crash-test child: commits transactions to a metadata store as fast as it can and prints one line per
// acknowledged write, until the parent test kills it. Protocol on stdout:
//   open <revision>            the store opened (after recovery) at this revision
//   ack <worker> <n> <revision> write n of worker is durable at this revision
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;

const int Workers = 4;
var directory = args[0];
var options = MetadataStoreOptions.Default with
{
    SnapshotAfterLogBytes = 16 * 1024, // tiny, so kills also land in snapshot and log rotation
    AutoCompactionRetainRevisions = 300,
    MaintenanceInterval = TimeSpan.FromMilliseconds(10),
};
await using var store = await EmbeddedMetadataStore.OpenAsync(directory, options);
Console.Out.WriteLine($"open {store.Revision}");

var workers = Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
{
    var prefix = $"w{w}/";
    var n = (await store.RangeAsync(RangeRequest.Prefix(prefix) with { CountOnly = true })).Count;
    while (true)
    {
        var key = KeyRanges.Utf8($"{prefix}{n:D8}");
        var value = KeyRanges.Utf8(n.ToString(System.Globalization.CultureInfo.InvariantCulture));
        long revision;
        if (n % 5 == 4)
        {
            // A multi-op transaction: the worker's key plus churn on a shared key and a delete.
            var txn = await store.TxnAsync(new TxnRequest
            {
                Compares = [Compare.Version(KeyRanges.Utf8($"absent/{w}"), CompareResult.Equal, 0)],
                Success =
                [
                    RequestOp.ForPut(new PutRequest(key, value)),
                    RequestOp.ForPut(new PutRequest(KeyRanges.Utf8($"churn/{w}"), value)),
                    RequestOp.ForDeleteRange(new DeleteRangeRequest(KeyRanges.Utf8($"tmp/{w}"))),
                ],
            });
            revision = txn.Header.Revision;
        }
        else
        {
            revision = (await store.PutAsync(new PutRequest(key, value))).Header.Revision;
            if (n % 7 == 0)
            {
                await store.PutAsync(new PutRequest(KeyRanges.Utf8($"tmp/{w}"), value));
            }
        }

        Console.Out.WriteLine($"ack {w} {n} {revision}");
        n++;
    }
})).ToArray();

await Task.WhenAll(workers);
