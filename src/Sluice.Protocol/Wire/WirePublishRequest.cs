using System.Buffers;
using Sluice.Protocol.Api;

namespace Sluice.Protocol.Wire;

/// <summary>
/// A <c>proto.PublishRequest</c> read straight from its wire bytes, for the broker's publish path:
/// one pass checks the encoding and records where each field is. Key and value are views of the
/// request's own buffer (as a protobuf object's byte strings would be), the stream name is decoded
/// once, and the ack inbox, correlation id and headers only when asked for; the correlation id can
/// also be echoed into the ack as the bytes it came in. Costs the buffer and this object, where the
/// protobuf object costs two byte-string copies, a header map and three strings.
/// Semantics follow protobuf (and Google.Protobuf), as <see cref="WireMessage"/> does.
/// </summary>
public sealed class WirePublishRequest
{
    // Tags (field number << 3 | wire type) of proto.PublishRequest's fields.
    private const uint KeyTag = (1 << 3) | 2;
    private const uint ValueTag = (2 << 3) | 2;
    private const uint StreamTag = (3 << 3) | 2;
    private const uint PartitionTag = 4 << 3;
    private const uint HeadersTag = (5 << 3) | 2;
    private const uint AckInboxTag = (6 << 3) | 2;
    private const uint CorrelationIdTag = (7 << 3) | 2;
    private const uint AckPolicyTag = 8 << 3;
    private const uint ExpectedOffsetTag = 9 << 3;

    private readonly byte[] _buffer;
    private readonly (int Start, int Length) _key;
    private readonly (int Start, int Length) _value;
    private readonly (int Start, int Length) _ackInbox;
    private readonly (int Start, int Length) _correlationId;
    private string? _ackInboxText;
    private string? _correlationIdText;

    private WirePublishRequest(byte[] buffer)
    {
        _buffer = buffer;
        var data = buffer.AsSpan();
        (int Start, int Length) stream = default;
        var position = 0;
        while (position < data.Length)
        {
            var tag = ProtoWire.ReadTag(data, ref position);
            switch (tag)
            {
                case KeyTag:
                    _key = ProtoWire.ReadLengthDelimited(data, ref position);
                    break;
                case ValueTag:
                    _value = ProtoWire.ReadLengthDelimited(data, ref position);
                    break;
                case StreamTag:
                    stream = ProtoWire.ReadString(data, ref position);
                    break;
                case PartitionTag:
                    Partition = (int)ProtoWire.ReadVarint(data, ref position);
                    break;
                case HeadersTag:
                    var entry = ProtoWire.ReadLengthDelimited(data, ref position);
                    ProtoWire.CheckStringKeyEntry(data.Slice(entry.Start, entry.Length));
                    HeaderEntries++;
                    break;
                case AckInboxTag:
                    _ackInbox = ProtoWire.ReadString(data, ref position);
                    break;
                case CorrelationIdTag:
                    _correlationId = ProtoWire.ReadString(data, ref position);
                    break;
                case AckPolicyTag:
                    AckPolicy = (AckPolicy)(int)ProtoWire.ReadVarint(data, ref position);
                    break;
                case ExpectedOffsetTag:
                    ExpectedOffset = (long)ProtoWire.ReadVarint(data, ref position);
                    break;
                default:
                    ProtoWire.Skip(data, ref position, tag);
                    break;
            }
        }

        Stream = Text(stream);
    }

    /// <summary>The stream published to.</summary>
    public string Stream { get; }

    /// <summary>The partition published to.</summary>
    public int Partition { get; }

    /// <summary>The ack policy (unknown values are kept as they are, as protobuf enums are).</summary>
    public AckPolicy AckPolicy { get; }

    /// <summary>The offset the message must get (optimistic concurrency control); 0 when not sent.</summary>
    public long ExpectedOffset { get; }

    /// <summary>How many header map entries the request carries (a name sent twice counts twice).</summary>
    public int HeaderEntries { get; }

    /// <summary>The key: a view of the buffer (empty when not sent).</summary>
    public ReadOnlyMemory<byte> Key => Memory(_key);

    /// <summary>The value: a view of the buffer (empty when not sent).</summary>
    public ReadOnlyMemory<byte> Value => Memory(_value);

    /// <summary>The ack inbox (decoded on first use).</summary>
    public string AckInbox => _ackInboxText ??= Text(_ackInbox);

    /// <summary>The correlation id (decoded on first use).</summary>
    public string CorrelationId => _correlationIdText ??= Text(_correlationId);

    /// <summary>The correlation id's UTF-8 bytes as sent (the reader refuses invalid UTF-8), to echo in the ack.</summary>
    public ReadOnlyMemory<byte> CorrelationIdUtf8 => Memory(_correlationId);

    /// <summary>Reads a request from a gRPC message payload (copied into the request's own buffer).</summary>
    /// <exception cref="InvalidDataException">The bytes are not a well-formed message.</exception>
    public static WirePublishRequest Decode(ReadOnlySequence<byte> payload) => new(payload.ToArray());

    /// <summary>Reads a request from <paramref name="buffer"/>, which the result keeps and views: do not change it afterwards.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a well-formed message.</exception>
    public static WirePublishRequest Parse(byte[] buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        return new WirePublishRequest(buffer);
    }

    /// <summary>The headers, names decoded and values viewing the buffer; the last value of a repeated name wins.</summary>
    public Dictionary<string, ReadOnlyMemory<byte>> GetHeaders() =>
        ProtoWire.ReadStringBytesMap(_buffer, 0, _buffer.Length, HeadersTag, HeaderEntries);

    /// <summary>The same request as a protobuf object (parses the bytes again).</summary>
    public PublishRequest ToRequest() => PublishRequest.Parser.ParseFrom(_buffer);

    private ReadOnlyMemory<byte> Memory((int Start, int Length) segment) => ProtoWire.View(_buffer, 0, segment);

    private string Text((int Start, int Length) segment) => ProtoWire.Text(_buffer, 0, segment);
}
