using Google.Protobuf;
using Sluice.Protocol.Envelopes;
using Sluice.Protocol.Wire;
using Api = Sluice.Protocol.Api;

namespace Sluice.Client;

/// <summary>
/// Liftbridge's envelope format, for publishing with a plain NATS client and reading acks from a
/// NATS ack inbox (go-liftbridge <c>NewMessage</c>, <c>UnmarshalAck</c>, <c>UnmarshalMessage</c>).
/// The bytes are identical to go-liftbridge's: a publish envelope starts with
/// <c>B9 0E 43 B4 00 08 00 00</c>.
/// </summary>
public static class SluiceEnvelope
{
    /// <summary>
    /// The bytes to publish on a NATS subject for a Liftbridge stream to store <paramref name="value"/>
    /// with the key, headers, ack inbox, correlation id, ack policy and expected offset of
    /// <paramref name="options"/> (partitioning options do not apply).
    /// </summary>
    /// <param name="value">The message value.</param>
    /// <param name="options">Message options; null means <see cref="MessageOptions.Default"/>.</param>
    public static byte[] CreatePublishEnvelope(ReadOnlySpan<byte> value, MessageOptions? options = null)
    {
        options ??= MessageOptions.Default;
        options.Validate();
        var message = new Api.Message
        {
            Key = ByteString.CopyFrom(options.Key.Span),
            Value = ByteString.CopyFrom(value),
            AckInbox = options.AckInbox ?? string.Empty,
            CorrelationId = options.CorrelationId ?? string.Empty,
            AckPolicy = (Api.AckPolicy)(int)options.AckPolicy,
            Offset = options.ExpectedOffset, // the server reads the envelope's offset as the expected offset
        };
        if (options.Headers is { } headers)
        {
            foreach (var (name, headerValue) in headers)
            {
                message.Headers[name] = ByteString.CopyFrom(headerValue.Span);
            }
        }

        return Envelope.EncodePublish(message);
    }

    /// <summary>Decodes an ack envelope received on an ack inbox.</summary>
    /// <param name="data">The NATS payload.</param>
    /// <exception cref="InvalidEnvelopeException">The data is not an ack envelope.</exception>
    public static SluiceAck ParseAck(ReadOnlySpan<byte> data)
    {
        try
        {
            return new SluiceAck(Envelope.DecodeAck(data));
        }
        catch (EnvelopeException ex)
        {
            throw new InvalidEnvelopeException(ex.Message, ex);
        }
    }

    /// <summary>Decodes a publish envelope (what <see cref="CreatePublishEnvelope"/> produces).</summary>
    /// <param name="data">The NATS payload.</param>
    /// <exception cref="InvalidEnvelopeException">The data is not a publish envelope.</exception>
    public static SluiceMessage ParseMessage(ReadOnlySpan<byte> data)
    {
        try
        {
            return new SluiceMessage(WireMessage.Parse(Envelope.DecodePayload(data, EnvelopeType.Publish).ToArray()));
        }
        catch (EnvelopeException ex)
        {
            throw new InvalidEnvelopeException(ex.Message, ex);
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidEnvelopeException($"invalid envelope payload: {ex.Message}", ex);
        }
    }
}
