// Optimistic concurrency control (go-liftbridge README): a publish states the offset it must get;
// a concurrent writer that got there first makes it fail. dotnet run --project examples/OptimisticConcurrency -- localhost:9292
using System.Text;
using Sluice.Client;

var addresses = args.Length > 0 ? args : ["localhost:9292"];
await using var client = await SluiceClient.ConnectAsync(addresses);

const string Stream = "occ-stream";
try
{
    await client.CreateStreamAsync("occ", Stream, StreamOptions.Default with { OptimisticConcurrencyControl = true });
}
catch (StreamExistsException)
{
}

// The next offset is the partition's newest offset + 1 (newest is -1 when empty).
var next = (await client.FetchPartitionMetadataAsync(Stream, 0)).NewestOffset + 1;
var ack = await client.PublishAsync(Stream, Encoding.UTF8.GetBytes("first"), new MessageOptions { ExpectedOffset = next });
Console.WriteLine($"stored at {ack!.Offset}");

try
{
    // Same expected offset again: someone (we) already wrote there.
    await client.PublishAsync(Stream, Encoding.UTF8.GetBytes("stale"), new MessageOptions { ExpectedOffset = next });
}
catch (IncorrectOffsetException ex)
{
    Console.WriteLine($"refused as expected: {ex.Message}");
}

// The callback form (go-liftbridge PublishAsync): returns once queued, the handler gets the outcome.
var done = new TaskCompletionSource();
await client.PublishAsync(Stream, Encoding.UTF8.GetBytes("second"), (ack, error) =>
{
    Console.WriteLine(error is null ? $"acked at {ack!.Offset}" : $"failed: {error.Message}");
    done.SetResult();
}, new MessageOptions { ExpectedOffset = next + 1 });
await done.Task;
