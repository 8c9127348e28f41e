using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Server.Streams;
using static Sluice.Protocol.Wire.ProtoWire;

namespace Sluice.Server.Api;

/// <summary>
/// The <c>proto.PublishResponse</c> for a committed message, encoded straight from the commit: the
/// stream name and partition subject are encoded once by the stream and the partition, and the
/// correlation id is echoed as the bytes it came in, so a PublishAsync ack builds no Ack,
/// PublishResponse or string.
/// Carries the same fields as the Ack the other paths build (<see cref="Partition.NewAck"/>), in
/// field-number order with defaults left out, as protobuf encoders do.
/// </summary>
internal sealed class PublishAckFrame : IGrpcEncodable
{
    private readonly PublishItem _item;
    private readonly CommitInfo _commit;
    private readonly ReadOnlyMemory<byte> _correlationId;
    private readonly int _ackInboxLength;
    private readonly int _msgSubjectLength;
    private readonly int _ackSize;

    public PublishAckFrame(PublishItem item, in CommitInfo commit)
    {
        _item = item;
        _commit = commit;
        _correlationId = item.CorrelationIdUtf8;
        _ackInboxLength = System.Text.Encoding.UTF8.GetByteCount(item.AckInbox);
        _msgSubjectLength = SharesPartitionSubject ? commit.Partition.SubjectUtf8.Length : System.Text.Encoding.UTF8.GetByteCount(item.Subject);
        var partition = commit.Partition;
        _ackSize = BytesFieldSize(partition.Stream.NameUtf8.Length) + BytesFieldSize(partition.SubjectUtf8.Length)
            + BytesFieldSize(_msgSubjectLength) + VarintFieldSize(commit.Offset) + BytesFieldSize(_ackInboxLength)
            + BytesFieldSize(_correlationId.Length) + VarintFieldSize((int)item.AckPolicy)
            + VarintFieldSize(commit.ReceptionTimestamp) + VarintFieldSize(commit.CommitTimestamp);
    }

    private bool SharesPartitionSubject => ReferenceEquals(_item.Subject, _commit.Partition.Subject);

    // PublishResponse: ack = 1 (always present, even if empty), correlationId = 3.
    public int CalculateSize() => LengthDelimitedSize(_ackSize) + BytesFieldSize(_correlationId.Length);

    public void WriteTo(Span<byte> destination)
    {
        var partition = _commit.Partition;
        var p = 0;
        destination[p++] = (1 << 3) | 2;
        WriteVarint(destination, ref p, (uint)_ackSize);
        WriteBytesField(destination, ref p, 1, partition.Stream.NameUtf8);
        WriteBytesField(destination, ref p, 2, partition.SubjectUtf8);
        if (SharesPartitionSubject)
        {
            WriteBytesField(destination, ref p, 3, partition.SubjectUtf8);
        }
        else
        {
            WriteStringField(destination, ref p, 3, _item.Subject, _msgSubjectLength);
        }

        WriteVarintField(destination, ref p, 4, _commit.Offset);
        WriteStringField(destination, ref p, 5, _item.AckInbox, _ackInboxLength);
        WriteBytesField(destination, ref p, 6, _correlationId.Span);
        WriteVarintField(destination, ref p, 7, (int)_item.AckPolicy);
        WriteVarintField(destination, ref p, 8, _commit.ReceptionTimestamp);
        WriteVarintField(destination, ref p, 9, _commit.CommitTimestamp);
        WriteBytesField(destination, ref p, 3, _correlationId.Span);
        if (p != CalculateSize())
        {
            throw new InvalidOperationException($"PublishAckFrame wrote {p} bytes, expected {CalculateSize()}");
        }
    }

    /// <summary>The same response as a protobuf object (for tests and logs).</summary>
    public PublishResponse ToResponse() => PublishResponse.Parser.ParseFrom(GrpcFrame.Serialize(this));
}
