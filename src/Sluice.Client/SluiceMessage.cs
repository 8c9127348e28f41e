using System.Buffers;
using Sluice.Client.Internal;
using Sluice.Protocol.Wire;
using Api = Sluice.Protocol.Api;

namespace Sluice.Client;

/// <summary>
/// A message read from a stream partition (or decoded from an envelope). Key, value and header
/// values are views of the received bytes, not copies; strings and headers are decoded on first use.
/// </summary>
public sealed class SluiceMessage
{
    private readonly WireMessage _wire;
    private string? _stream;
    private string? _subject;
    private string? _replySubject;
    private string? _ackInbox;
    private string? _correlationId;
    private IReadOnlyDictionary<string, ReadOnlyMemory<byte>>? _headers;

    internal SluiceMessage(WireMessage wire) => _wire = wire;

    /// <summary>The message's offset in its partition.</summary>
    public long Offset => _wire.Offset;

    /// <summary>The message key (empty when none).</summary>
    public ReadOnlyMemory<byte> Key => _wire.Key;

    /// <summary>The message value.</summary>
    public ReadOnlyMemory<byte> Value => _wire.Value;

    /// <summary>When the server received the message.</summary>
    public DateTimeOffset Timestamp => Timestamps.FromUnixNanoseconds(_wire.Timestamp);

    /// <summary>When the server received the message, in nanoseconds since the Unix epoch (full precision).</summary>
    public long TimestampUnixNanoseconds => _wire.Timestamp;

    /// <summary>The stream the message belongs to.</summary>
    public string Stream => _stream ??= _wire.GetStream();

    /// <summary>The partition the message belongs to.</summary>
    public int Partition => _wire.Partition;

    /// <summary>The NATS subject the message was received on.</summary>
    public string Subject => _subject ??= _wire.GetSubject();

    /// <summary>The NATS reply subject of the message, if any.</summary>
    public string ReplySubject => _replySubject ??= _wire.GetReplySubject();

    /// <summary>The ack inbox (set on messages decoded from an envelope; the server does not store it).</summary>
    public string AckInbox => _ackInbox ??= _wire.GetAckInbox();

    /// <summary>The correlation id (set on messages decoded from an envelope; the server does not store it).</summary>
    public string CorrelationId => _correlationId ??= _wire.GetCorrelationId();

    /// <summary>The ack policy (set on messages decoded from an envelope).</summary>
    public AckPolicy AckPolicy => (AckPolicy)_wire.AckPolicy;

    /// <summary>The message headers; servers add "subject" and "reply" to what the publisher set.</summary>
    public IReadOnlyDictionary<string, ReadOnlyMemory<byte>> Headers => _headers ??= _wire.GetHeaders();

    /// <summary>The value decoded as UTF-8.</summary>
    public string GetValueAsString() => System.Text.Encoding.UTF8.GetString(_wire.Value.Span);

    /// <inheritdoc/>
    public override string ToString() => $"{Stream}[{Partition}]@{Offset} ({Value.Length} bytes)";

    /// <summary>Whether this is the empty message Liftbridge starts every subscription with (real messages always name their stream).</summary>
    internal bool IsHandshake => Offset == 0 && _wire.ValueIsEmpty && Stream.Length == 0;

    /// <summary>Reads a gRPC payload (one proto.Message) into a message that owns a copy of the bytes.</summary>
    internal static SluiceMessage Decode(ReadOnlySequence<byte> payload) => new(WireMessage.Parse(payload.ToArray()));
}

/// <summary>An acknowledgement that a message was stored in a stream partition.</summary>
public sealed class SluiceAck
{
    private readonly WirePublishResponse? _response;
    private Api.Ack? _parsed;

    internal SluiceAck(Api.Ack ack) => _parsed = ack;

    /// <summary>An ack still in its wire bytes: parsed when a property is first read.</summary>
    internal SluiceAck(WirePublishResponse response) => _response = response;

    /// <summary>The stream the message was stored in.</summary>
    public string Stream => Ack.Stream;

    /// <summary>The NATS subject of the stream (the base subject, not the partition's).</summary>
    public string PartitionSubject => Ack.PartitionSubject;

    /// <summary>The NATS subject the message was published to.</summary>
    public string MessageSubject => Ack.MsgSubject;

    /// <summary>The offset the message got.</summary>
    public long Offset => Ack.Offset;

    /// <summary>The ack inbox the ack was (also) sent to.</summary>
    public string AckInbox => Ack.AckInbox;

    /// <summary>The message's correlation id.</summary>
    public string CorrelationId => Ack.CorrelationId;

    /// <summary>The message's ack policy.</summary>
    public AckPolicy AckPolicy => (AckPolicy)(int)Ack.AckPolicy;

    /// <summary>When the server received the message.</summary>
    public DateTimeOffset ReceptionTimestamp => Timestamps.FromUnixNanoseconds(Ack.ReceptionTimestamp);

    /// <summary>When the message was committed (the ack was sent).</summary>
    public DateTimeOffset CommitTimestamp => Timestamps.FromUnixNanoseconds(Ack.CommitTimestamp);

    /// <inheritdoc/>
    public override string ToString() => $"ack {Stream}@{Offset} ({CorrelationId})";

    // Two threads reading at once may both parse; they get equal acks, and one is kept.
    private Api.Ack Ack => _parsed ??= _response!.ParseAck()!;
}
