using System.Text;
using Sluice.Protocol.Grpc;
using Sluice.Storage.Log;
using static Sluice.Protocol.Wire.ProtoWire;

namespace Sluice.Server.Streams;

/// <summary>
/// A log record sent to a subscriber as a <c>proto.Message</c>, encoded straight from the record:
/// no protobuf object, header map or strings per message. Fields go out in field-number order and
/// default values are left out, as protobuf encoders do. Headers are sent as stored (quirk 6:
/// "subject" and "reply" included), and those two also fill Message.subject and replySubject
/// (made valid UTF-8 by <see cref="Protocol.Wire.ProtoWire.AsValidUtf8"/>).
/// The record's bytes are lent, not copied: write the frame before its read batch is returned.
/// </summary>
internal sealed class RecordMessage : IGrpcEncodable
{
    private readonly long _offset;
    private readonly long _timestamp;
    private readonly int _partition;
    private readonly byte[] _stream;
    private readonly ReadOnlyMemory<byte> _key;
    private readonly ReadOnlyMemory<byte> _value;
    private readonly IReadOnlyList<RecordHeader> _headers;
    private readonly ReadOnlyMemory<byte> _subject;
    private readonly ReadOnlyMemory<byte> _replySubject;
    private int _size = -1;

    /// <param name="stream">The stream name, UTF-8 (the subscription encodes it once).</param>
    /// <param name="partition">The partition id.</param>
    /// <param name="record">The record; its bytes are lent.</param>
    /// <param name="value">The value to send (the record's, or its decryption).</param>
    public RecordMessage(byte[] stream, int partition, in LogRecord record, ReadOnlyMemory<byte>? value)
    {
        _offset = record.Offset;
        _timestamp = record.Timestamp;
        _partition = partition;
        _stream = stream;
        _key = record.Key ?? default;
        _value = value ?? default;
        _headers = record.Headers ?? [];
        foreach (var header in _headers)
        {
            if (header.Name == PublishItem.SubjectHeader)
            {
                _subject = AsValidUtf8(header.Value);
            }
            else if (header.Name == PublishItem.ReplyHeader)
            {
                _replySubject = AsValidUtf8(header.Value);
            }
        }
    }

    /// <summary>The empty Message Liftbridge starts every subscription with (quirk 15).</summary>
    public static RecordMessage Handshake { get; } = new([], 0, default, null);

    public int CalculateSize()
    {
        if (_size >= 0)
        {
            return _size;
        }

        var size = VarintFieldSize(_offset) + BytesFieldSize(_key.Length) + BytesFieldSize(_value.Length)
            + VarintFieldSize(_timestamp) + BytesFieldSize(_stream.Length) + VarintFieldSize(_partition)
            + BytesFieldSize(_subject.Length) + BytesFieldSize(_replySubject.Length);
        foreach (var header in _headers)
        {
            size += LengthDelimitedSize(MapEntrySize(Encoding.UTF8.GetByteCount(header.Name), header.Value.Length));
        }

        _size = size;
        return size;
    }

    public void WriteTo(Span<byte> destination)
    {
        var p = 0;
        WriteVarintField(destination, ref p, 1, _offset);
        WriteBytesField(destination, ref p, 2, _key.Span);
        WriteBytesField(destination, ref p, 3, _value.Span);
        WriteVarintField(destination, ref p, 4, _timestamp);
        WriteBytesField(destination, ref p, 5, _stream);
        WriteVarintField(destination, ref p, 6, _partition);
        WriteBytesField(destination, ref p, 7, _subject.Span);
        WriteBytesField(destination, ref p, 8, _replySubject.Span);
        foreach (var header in _headers)
        {
            WriteMapEntry(destination, ref p, 9, header.Name, Encoding.UTF8.GetByteCount(header.Name), header.Value.Span);
        }

        if (p != CalculateSize())
        {
            throw new InvalidOperationException($"RecordMessage wrote {p} bytes, expected {CalculateSize()}");
        }
    }
}
