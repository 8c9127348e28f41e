using Google.Protobuf;
using Sluice.Client.Internal;
using Api = Sluice.Protocol.Api;

namespace Sluice.Client;

/// <summary>
/// A message read from a stream partition (or decoded from an envelope). Key, value and header
/// values are views of the received bytes, not copies.
/// </summary>
public sealed class SluiceMessage
{
    private readonly Api.Message _message;
    private IReadOnlyDictionary<string, ReadOnlyMemory<byte>>? _headers;

    internal SluiceMessage(Api.Message message) => _message = message;

    /// <summary>The message's offset in its partition.</summary>
    public long Offset => _message.Offset;

    /// <summary>The message key (empty when none).</summary>
    public ReadOnlyMemory<byte> Key => _message.Key.Memory;

    /// <summary>The message value.</summary>
    public ReadOnlyMemory<byte> Value => _message.Value.Memory;

    /// <summary>When the server received the message.</summary>
    public DateTimeOffset Timestamp => Timestamps.FromUnixNanoseconds(_message.Timestamp);

    /// <summary>When the server received the message, in nanoseconds since the Unix epoch (full precision).</summary>
    public long TimestampUnixNanoseconds => _message.Timestamp;

    /// <summary>The stream the message belongs to.</summary>
    public string Stream => _message.Stream;

    /// <summary>The partition the message belongs to.</summary>
    public int Partition => _message.Partition;

    /// <summary>The NATS subject the message was received on.</summary>
    public string Subject => _message.Subject;

    /// <summary>The NATS reply subject of the message, if any.</summary>
    public string ReplySubject => _message.ReplySubject;

    /// <summary>The ack inbox (set on messages decoded from an envelope; the server does not store it).</summary>
    public string AckInbox => _message.AckInbox;

    /// <summary>The correlation id (set on messages decoded from an envelope; the server does not store it).</summary>
    public string CorrelationId => _message.CorrelationId;

    /// <summary>The ack policy (set on messages decoded from an envelope).</summary>
    public AckPolicy AckPolicy => (AckPolicy)(int)_message.AckPolicy;

    /// <summary>The message headers; servers add "subject" and "reply" to what the publisher set.</summary>
    public IReadOnlyDictionary<string, ReadOnlyMemory<byte>> Headers => _headers ??= CopyHeaders(_message.Headers);

    /// <summary>The value decoded as UTF-8.</summary>
    public string GetValueAsString() => _message.Value.ToStringUtf8();

    /// <inheritdoc/>
    public override string ToString() => $"{Stream}[{Partition}]@{Offset} ({Value.Length} bytes)";

    internal Api.Message Proto => _message;

    private static Dictionary<string, ReadOnlyMemory<byte>> CopyHeaders(Google.Protobuf.Collections.MapField<string, ByteString> headers)
    {
        var result = new Dictionary<string, ReadOnlyMemory<byte>>(headers.Count, StringComparer.Ordinal);
        foreach (var (name, value) in headers)
        {
            result[name] = value.Memory;
        }

        return result;
    }
}

/// <summary>An acknowledgement that a message was stored in a stream partition.</summary>
public sealed class SluiceAck
{
    private readonly Api.Ack _ack;

    internal SluiceAck(Api.Ack ack) => _ack = ack;

    /// <summary>The stream the message was stored in.</summary>
    public string Stream => _ack.Stream;

    /// <summary>The NATS subject of the stream (the base subject, not the partition's).</summary>
    public string PartitionSubject => _ack.PartitionSubject;

    /// <summary>The NATS subject the message was published to.</summary>
    public string MessageSubject => _ack.MsgSubject;

    /// <summary>The offset the message got.</summary>
    public long Offset => _ack.Offset;

    /// <summary>The ack inbox the ack was (also) sent to.</summary>
    public string AckInbox => _ack.AckInbox;

    /// <summary>The message's correlation id.</summary>
    public string CorrelationId => _ack.CorrelationId;

    /// <summary>The message's ack policy.</summary>
    public AckPolicy AckPolicy => (AckPolicy)(int)_ack.AckPolicy;

    /// <summary>When the server received the message.</summary>
    public DateTimeOffset ReceptionTimestamp => Timestamps.FromUnixNanoseconds(_ack.ReceptionTimestamp);

    /// <summary>When the message was committed (the ack was sent).</summary>
    public DateTimeOffset CommitTimestamp => Timestamps.FromUnixNanoseconds(_ack.CommitTimestamp);

    /// <inheritdoc/>
    public override string ToString() => $"ack {Stream}@{Offset} ({CorrelationId})";
}
