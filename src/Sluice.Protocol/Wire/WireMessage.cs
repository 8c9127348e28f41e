using Sluice.Protocol.Api;

namespace Sluice.Protocol.Wire;

/// <summary>
/// A <c>proto.Message</c> read straight from its wire bytes, for the subscription hot path: one pass
/// checks the encoding and records where each field is; bytes fields are views of the buffer and
/// strings and headers are decoded only when asked for. Parsing a subscription message this way
/// allocates nothing besides the buffer, where the protobuf object costs a map, its two header
/// entries and five strings per message.
/// Semantics follow protobuf (and Google.Protobuf): fields in any order, the last occurrence of a
/// scalar wins, map entries accumulate with the last value of a key winning, unknown fields and
/// known fields with an unexpected wire type are skipped, and truncated or malformed input is an
/// error (<see cref="InvalidDataException"/>).
/// </summary>
public readonly struct WireMessage
{
    // Tags (field number << 3 | wire type) of proto.Message's fields.
    private const uint OffsetTag = 1 << 3;
    private const uint KeyTag = (2 << 3) | 2;
    private const uint ValueTag = (3 << 3) | 2;
    private const uint TimestampTag = 4 << 3;
    private const uint StreamTag = (5 << 3) | 2;
    private const uint PartitionTag = 6 << 3;
    private const uint SubjectTag = (7 << 3) | 2;
    private const uint ReplySubjectTag = (8 << 3) | 2;
    private const uint HeadersTag = (9 << 3) | 2;
    private const uint AckInboxTag = (10 << 3) | 2;
    private const uint CorrelationIdTag = (11 << 3) | 2;
    private const uint AckPolicyTag = 12 << 3;

    private readonly byte[] _buffer;
    private readonly int _start;
    private readonly int _length;
    private readonly (int Start, int Length) _key;
    private readonly (int Start, int Length) _value;
    private readonly (int Start, int Length) _stream;
    private readonly (int Start, int Length) _subject;
    private readonly (int Start, int Length) _replySubject;
    private readonly (int Start, int Length) _ackInbox;
    private readonly (int Start, int Length) _correlationId;

    private WireMessage(byte[] buffer, int start, int length)
    {
        _buffer = buffer;
        _start = start;
        _length = length;
        var data = new ReadOnlySpan<byte>(buffer, start, length);
        var position = 0;
        while (position < data.Length)
        {
            var tag = ProtoWire.ReadTag(data, ref position);
            switch (tag)
            {
                case OffsetTag:
                    Offset = (long)ProtoWire.ReadVarint(data, ref position);
                    break;
                case TimestampTag:
                    Timestamp = (long)ProtoWire.ReadVarint(data, ref position);
                    break;
                case PartitionTag:
                    Partition = (int)ProtoWire.ReadVarint(data, ref position);
                    break;
                case AckPolicyTag:
                    AckPolicy = (int)ProtoWire.ReadVarint(data, ref position);
                    break;
                case KeyTag:
                    _key = ProtoWire.ReadLengthDelimited(data, ref position);
                    break;
                case ValueTag:
                    _value = ProtoWire.ReadLengthDelimited(data, ref position);
                    break;
                case StreamTag:
                    _stream = ProtoWire.ReadString(data, ref position);
                    break;
                case SubjectTag:
                    _subject = ProtoWire.ReadString(data, ref position);
                    break;
                case ReplySubjectTag:
                    _replySubject = ProtoWire.ReadString(data, ref position);
                    break;
                case AckInboxTag:
                    _ackInbox = ProtoWire.ReadString(data, ref position);
                    break;
                case CorrelationIdTag:
                    _correlationId = ProtoWire.ReadString(data, ref position);
                    break;
                case HeadersTag:
                    var entry = ProtoWire.ReadLengthDelimited(data, ref position);
                    ProtoWire.CheckStringKeyEntry(data.Slice(entry.Start, entry.Length));
                    HeaderEntries++;
                    break;
                default:
                    ProtoWire.Skip(data, ref position, tag);
                    break;
            }
        }
    }

    /// <summary>The message's offset in its partition.</summary>
    public long Offset { get; }

    /// <summary>When the server received the message (Unix nanoseconds).</summary>
    public long Timestamp { get; }

    /// <summary>The partition the message belongs to.</summary>
    public int Partition { get; }

    /// <summary>The ack policy (an <see cref="Api.AckPolicy"/> value; unknown values are kept as they are).</summary>
    public int AckPolicy { get; }

    /// <summary>How many header map entries the message carries (a key sent twice counts twice).</summary>
    public int HeaderEntries { get; }

    /// <summary>The key: a view of the buffer.</summary>
    public ReadOnlyMemory<byte> Key => Memory(_key);

    /// <summary>The value: a view of the buffer.</summary>
    public ReadOnlyMemory<byte> Value => Memory(_value);

    /// <summary>Whether the message has no value bytes.</summary>
    public bool ValueIsEmpty => _value.Length == 0;

    /// <summary>
    /// Reads a message from <paramref name="buffer"/>, which the result keeps and views: do not change it afterwards.
    /// </summary>
    /// <exception cref="InvalidDataException">The bytes are not a well-formed message.</exception>
    public static WireMessage Parse(byte[] buffer) => Parse(buffer, 0, buffer?.Length ?? 0);

    /// <inheritdoc cref="Parse(byte[])"/>
    public static WireMessage Parse(byte[] buffer, int start, int length)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, buffer.Length - start);
        return new WireMessage(buffer, start, length);
    }

    /// <summary>The stream name (decoded on every call: cache it).</summary>
    public string GetStream() => Text(_stream);

    /// <summary>The NATS subject.</summary>
    public string GetSubject() => Text(_subject);

    /// <summary>The NATS reply subject.</summary>
    public string GetReplySubject() => Text(_replySubject);

    /// <summary>The ack inbox.</summary>
    public string GetAckInbox() => Text(_ackInbox);

    /// <summary>The correlation id.</summary>
    public string GetCorrelationId() => Text(_correlationId);

    /// <summary>The headers, names decoded and values viewing the buffer; the last value of a repeated name wins.</summary>
    public Dictionary<string, ReadOnlyMemory<byte>> GetHeaders() =>
        ProtoWire.ReadStringBytesMap(_buffer, _start, _length, HeadersTag, HeaderEntries);

    /// <summary>The same message as a protobuf object (parses the bytes again).</summary>
    public Message ToMessage() => Message.Parser.ParseFrom(_buffer, _start, _length);

    private ReadOnlyMemory<byte> Memory((int Start, int Length) segment) => ProtoWire.View(_buffer, _start, segment);

    private string Text((int Start, int Length) segment) => ProtoWire.Text(_buffer, _start, segment);
}
