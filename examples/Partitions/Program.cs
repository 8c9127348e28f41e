// Partitioning (go-liftbridge README "Partitioning"): a 3-partition stream, the partitioners, and
// subscribing to one partition. dotnet run --project examples/Partitions -- localhost:9292
using System.Text;
using Sluice.Client;

var addresses = args.Length > 0 ? args : ["localhost:9292"];
await using var client = await SluiceClient.ConnectAsync(addresses);

// Partitions map to the subjects "bar", "bar.1" and "bar.2".
try
{
    await client.CreateStreamAsync("bar", "bar-stream", StreamOptions.Default with { Partitions = 3 });
}
catch (StreamExistsException)
{
}

var value = Encoding.UTF8.GetBytes("hello");
var key = Encoding.UTF8.GetBytes("key");

// By key hash (the same partition go-liftbridge picks for this key), round-robin, or explicitly.
var byKey = await client.PublishAsync("bar-stream", value, new MessageOptions { Key = key, Partitioner = Partitioners.ByKey });
var roundRobin = await client.PublishAsync("bar-stream", value, new MessageOptions { Key = key, Partitioner = Partitioners.RoundRobin });
var explicitPartition = await client.PublishAsync("bar-stream", value, new MessageOptions { Key = key, Partition = 1 });
Console.WriteLine($"by key -> {byKey!.MessageSubject}, round robin -> {roundRobin!.MessageSubject}, explicit -> {explicitPartition!.MessageSubject}");

// Straight to a partition's NATS subject.
await client.PublishToSubjectAsync("bar.1", value, new MessageOptions { Key = key });

// Pipelined publishing: start many, then await the acks together.
var acks = await Task.WhenAll(Enumerable.Range(0, 100).Select(i =>
    client.PublishAsync("bar-stream", Encoding.UTF8.GetBytes($"message {i}"), new MessageOptions { Partitioner = Partitioners.RoundRobin })));
Console.WriteLine($"{acks.Length} messages acked");

// Read partition 1 from the start until the newest message.
await foreach (var message in client.SubscribeAsync("bar-stream", SubscribeOptions.Default.StartAtEarliest().StopAtLatest() with { Partition = 1 }))
{
    Console.WriteLine($"partition {message.Partition} offset {message.Offset}: {message.GetValueAsString()}");
}
