// Basic usage (go-liftbridge README "Basic Usage"): create a stream, publish, subscribe from the start.
// Run against a Sluice or Liftbridge server: dotnet run --project examples/Basic -- localhost:9292
using System.Text;
using Sluice.Client;

var addresses = args.Length > 0 ? args : ["localhost:9292"];
await using var client = await SluiceClient.ConnectAsync(addresses);

// A stream attached to the NATS subject "foo".
const string Subject = "foo";
const string Name = "foo-stream";
try
{
    await client.CreateStreamAsync(Subject, Name);
}
catch (StreamExistsException)
{
    // Already there from an earlier run.
}

// Publish with a key and a header, and wait for the leader's ack.
var ack = await client.PublishAsync(Name, Encoding.UTF8.GetBytes("hello"), MessageOptions.Default.WithHeader("foo", Encoding.UTF8.GetBytes("bar")) with
{
    Key = Encoding.UTF8.GetBytes("key"),
});
Console.WriteLine($"published at offset {ack!.Offset}");

// Fire and forget, and a publish acked by every replica.
await client.PublishAsync(Name, Encoding.UTF8.GetBytes("no ack"), new MessageOptions { AckPolicy = AckPolicy.None });
await client.PublishAsync(Name, Encoding.UTF8.GetBytes("all replicas"), new MessageOptions { AckPolicy = AckPolicy.All });

// Read from the beginning up to the newest message, then stop.
await foreach (var message in client.SubscribeAsync(Name, SubscribeOptions.Default.StartAtEarliest().StopAtLatest()))
{
    Console.WriteLine($"{message.Offset}: {message.GetValueAsString()}");
}
