using Sluice.Protocol.Api;
using Sluice.Protocol.Envelopes;
using Sluice.Server.Streams;

namespace Sluice.Server.Nats;

/// <summary>How a NATS payload was read: plain data, a Liftbridge Publish envelope, or bytes that start like an envelope but do not decode.</summary>
internal enum NatsPayloadKind
{
    Plain,
    Envelope,
    BadEnvelope,
}

/// <summary>
/// Turns a NATS message into what a partition stores (Liftbridge's natsToProtoMessage, §2): an enveloped
/// Publish gives key, value, headers, ack inbox, correlation id, ack policy and expected offset; anything
/// else is stored whole as the value, with no key, no ack and no OCC expectation. Either way the server
/// sets the headers "subject" and "reply". Works on bytes only, so tests feed it directly.
/// </summary>
internal static class NatsIngest
{
    public static PublishItem ToItem(string subject, string reply, ReadOnlyMemory<byte> data, IAckReceiver? receiver, out NatsPayloadKind kind)
    {
        var span = data.Span;
        if (Envelope.TryDecodePublish(span, out var message))
        {
            kind = NatsPayloadKind.Envelope;
            return new PublishItem
            {
                Key = message!.Key.IsEmpty ? null : message.Key.Memory,
                Value = message.Value.IsEmpty ? null : message.Value.Memory,
                Headers = PublishItem.BuildHeaders(message.Headers, subject, reply),
                Subject = subject,
                AckInbox = message.AckInbox,
                CorrelationId = message.CorrelationId,
                AckPolicy = message.AckPolicy,
                ExpectedOffset = message.Offset, // the envelope's offset field carries the OCC expectation (-1 = any)
                Receiver = message.AckInbox.Length > 0 ? receiver : null,
            };
        }

        kind = span.StartsWith(Envelope.Magic) ? NatsPayloadKind.BadEnvelope : NatsPayloadKind.Plain;
        return new PublishItem
        {
            Value = data.IsEmpty ? null : data,
            Headers = PublishItem.BuildHeaders(null, subject, reply),
            Subject = subject,
            ExpectedOffset = -1, // compatibility decision 3: plain NATS payloads carry no expectation
        };
    }

    /// <summary>The envelope put on NATS for a gRPC Publish/PublishAsync (Liftbridge's way: offset carries the expected offset).</summary>
    public static byte[] ToEnvelope(PublishRequest request, string subject)
    {
        var message = new Message
        {
            Key = request.Key,
            Value = request.Value,
            Stream = request.Stream,
            Partition = request.Partition,
            Subject = subject,
            AckInbox = request.AckInbox,
            CorrelationId = request.CorrelationId,
            AckPolicy = request.AckPolicy,
            Offset = request.ExpectedOffset,
        };
        message.Headers.Add(request.Headers);
        return Envelope.EncodePublish(message);
    }

    /// <summary>The envelope put on NATS for PublishToSubject (behaviour 14). No OCC expectation: -1.</summary>
    public static byte[] ToEnvelope(PublishToSubjectRequest request)
    {
        var message = new Message
        {
            Key = request.Key,
            Value = request.Value,
            Subject = request.Subject,
            AckInbox = request.AckInbox,
            CorrelationId = request.CorrelationId,
            AckPolicy = request.AckPolicy,
            Offset = -1,
        };
        message.Headers.Add(request.Headers);
        return Envelope.EncodePublish(message);
    }
}
