// Envelopes (go-liftbridge NewMessage / UnmarshalAck / UnmarshalMessage): the bytes a plain NATS
// client publishes for Liftbridge to store a message with a key, ack inbox and correlation id.
// This example needs no server: it builds an envelope and decodes it again.
using System.Text;
using Sluice.Client;

var envelope = SluiceEnvelope.CreatePublishEnvelope(Encoding.UTF8.GetBytes("Hello, world!"), new MessageOptions
{
    Key = Encoding.UTF8.GetBytes("foo"),   // key set on the message
    AckInbox = "foo.acks",                 // the server sends the ack to this NATS subject
    AckPolicy = AckPolicy.All,             // ack once fully replicated
    CorrelationId = "some-random-id",      // echoed in the ack
});

// Publish these bytes with any NATS client, e.g. nats.Publish("foo.bar", envelope).
Console.WriteLine($"envelope: {Convert.ToHexString(envelope)}");

var decoded = SluiceEnvelope.ParseMessage(envelope);
Console.WriteLine($"value={decoded.GetValueAsString()} key={Encoding.UTF8.GetString(decoded.Key.Span)} inbox={decoded.AckInbox} correlation={decoded.CorrelationId}");

// An ack received on the ack inbox would be decoded with SluiceEnvelope.ParseAck(natsMessage.Data):
// if (ack.CorrelationId == "some-random-id") Console.WriteLine("message acked!");
try
{
    SluiceEnvelope.ParseAck(envelope);
}
catch (InvalidEnvelopeException ex)
{
    Console.WriteLine($"a publish envelope is not an ack: {ex.Message}");
}
