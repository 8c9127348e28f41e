using System.Text;
using Sluice.Protocol.Grpc;
using static Sluice.Protocol.Wire.ProtoWire;
using Api = Sluice.Protocol.Api;

namespace Sluice.Client.Connections;

/// <summary>
/// A <c>proto.PublishRequest</c> encoded when it is made, into one array: the caller's key, value
/// and header buffers can be reused at once, and the stream writer later only copies bytes. Costs
/// one allocation where the protobuf object costs the request, its header map and copies of key
/// and value. Keeps what routing, ack matching and a resend need.
/// </summary>
internal sealed class PublishFrame : IGrpcEncodable
{
    private readonly byte[] _bytes;

    /// <summary>Encodes the request; a non-null <paramref name="messageId"/> is added as header <see cref="MessageIdHeader"/> (ASCII).</summary>
    public PublishFrame(string stream, int partition, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, IReadOnlyDictionary<string, ReadOnlyMemory<byte>>? headers, string ackInbox, string correlationId, Api.AckPolicy ackPolicy, long expectedOffset, string? messageId = null)
    {
        Stream = stream;
        Partition = partition;
        CorrelationId = correlationId;
        AckPolicy = ackPolicy;
        HasMessageId = messageId is not null || (headers?.ContainsKey(MessageIdHeader) ?? false);
        Span<byte> id = stackalloc byte[messageId is null ? 0 : Encoding.ASCII.GetByteCount(messageId)];
        if (messageId is not null)
        {
            Encoding.ASCII.GetBytes(messageId, id);
        }
        var streamLength = Encoding.UTF8.GetByteCount(stream);
        var ackInboxLength = Encoding.UTF8.GetByteCount(ackInbox);
        var correlationIdLength = Encoding.UTF8.GetByteCount(correlationId);
        var size = BytesFieldSize(key.Length) + BytesFieldSize(value.Length) + BytesFieldSize(streamLength)
            + VarintFieldSize(partition) + BytesFieldSize(ackInboxLength) + BytesFieldSize(correlationIdLength)
            + VarintFieldSize((int)ackPolicy) + VarintFieldSize(expectedOffset);
        if (headers is not null)
        {
            foreach (var (name, headerValue) in headers)
            {
                size += LengthDelimitedSize(MapEntrySize(Encoding.UTF8.GetByteCount(name), headerValue.Length));
            }
        }

        if (messageId is not null)
        {
            size += LengthDelimitedSize(MapEntrySize(MessageIdHeader.Length, id.Length));
        }

        _bytes = new byte[size];
        var destination = _bytes.AsSpan();
        var p = 0;
        WriteBytesField(destination, ref p, 1, key);
        WriteBytesField(destination, ref p, 2, value);
        WriteStringField(destination, ref p, 3, stream, streamLength);
        WriteVarintField(destination, ref p, 4, partition);
        if (headers is not null)
        {
            foreach (var (name, headerValue) in headers)
            {
                WriteMapEntry(destination, ref p, 5, name, Encoding.UTF8.GetByteCount(name), headerValue.Span);
            }
        }

        if (messageId is not null)
        {
            WriteMapEntry(destination, ref p, 5, MessageIdHeader, MessageIdHeader.Length, id);
        }

        WriteStringField(destination, ref p, 6, ackInbox, ackInboxLength);
        WriteStringField(destination, ref p, 7, correlationId, correlationIdLength);
        WriteVarintField(destination, ref p, 8, (int)ackPolicy);
        WriteVarintField(destination, ref p, 9, expectedOffset);
        if (p != size)
        {
            throw new InvalidOperationException($"PublishFrame wrote {p} bytes, expected {size}");
        }
    }

    /// <summary>The header a broker deduplicates on (Sluice's idempotent publishing).</summary>
    public const string MessageIdHeader = "Sluice-Msg-Id";

    public string Stream { get; }

    public int Partition { get; }

    public string CorrelationId { get; }

    public Api.AckPolicy AckPolicy { get; }

    /// <summary>The message carries a <see cref="MessageIdHeader"/> (generated or the caller's): a resend cannot store it twice.</summary>
    public bool HasMessageId { get; }

    public int CalculateSize() => _bytes.Length;

    public void WriteTo(Span<byte> destination) => _bytes.CopyTo(destination);

    /// <summary>The request as a protobuf object (parses the bytes).</summary>
    public Api.PublishRequest ToRequest() => Api.PublishRequest.Parser.ParseFrom(_bytes);
}
