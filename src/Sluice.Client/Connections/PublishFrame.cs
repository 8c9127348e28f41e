using System.Text;
using Sluice.Protocol.Grpc;
using static Sluice.Protocol.Wire.ProtoWire;
using Api = Sluice.Protocol.Api;

namespace Sluice.Client.Connections;

/// <summary>
/// A <c>proto.PublishRequest</c> encoded when it is made, into one array: the caller's key, value
/// and header buffers can be reused at once, and the stream writer later only copies bytes. Costs
/// one allocation where the protobuf object costs the request, its header map and copies of key
/// and value. Keeps what routing and ack matching need.
/// </summary>
internal sealed class PublishFrame : IGrpcEncodable
{
    private readonly byte[] _bytes;

    public PublishFrame(string stream, int partition, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, IReadOnlyDictionary<string, ReadOnlyMemory<byte>>? headers, string ackInbox, string correlationId, Api.AckPolicy ackPolicy, long expectedOffset)
    {
        Stream = stream;
        Partition = partition;
        CorrelationId = correlationId;
        AckPolicy = ackPolicy;
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

        WriteStringField(destination, ref p, 6, ackInbox, ackInboxLength);
        WriteStringField(destination, ref p, 7, correlationId, correlationIdLength);
        WriteVarintField(destination, ref p, 8, (int)ackPolicy);
        WriteVarintField(destination, ref p, 9, expectedOffset);
        if (p != size)
        {
            throw new InvalidOperationException($"PublishFrame wrote {p} bytes, expected {size}");
        }
    }

    public string Stream { get; }

    public int Partition { get; }

    public string CorrelationId { get; }

    public Api.AckPolicy AckPolicy { get; }

    public int CalculateSize() => _bytes.Length;

    public void WriteTo(Span<byte> destination) => _bytes.CopyTo(destination);

    /// <summary>The request as a protobuf object (parses the bytes).</summary>
    public Api.PublishRequest ToRequest() => Api.PublishRequest.Parser.ParseFrom(_bytes);
}
