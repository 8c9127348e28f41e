using System.Text;
using Sluice.Protocol.Grpc;
using Sluice.Storage.Log;
using static Sluice.Protocol.Wire.ProtoWire;

namespace Sluice.Server.Streams;

/// <summary>
/// A log record sent to a subscriber as a <c>proto.Message</c>, encoded straight from the record:
/// no protobuf object, header map or strings per message. Fields go out in field-number order and
/// default values are left out, as protobuf encoders do. Headers are sent as stored (quirk 6:
/// "subject" and "reply" included), and those two also fill Message.subject and replySubject.
/// The record's bytes are lent, not copied: write the frame before its read batch is returned.
/// </summary>
internal sealed class RecordMessage : IGrpcEncodable
{
    private static readonly byte[] SubjectName = Encoding.UTF8.GetBytes(PublishItem.SubjectHeader);
    private static readonly byte[] ReplyName = Encoding.UTF8.GetBytes(PublishItem.ReplyHeader);

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
                _subject = header.Value;
            }
            else if (header.Name == PublishItem.ReplyHeader)
            {
                _replySubject = header.Value;
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

        var size = 0;
        if (_offset != 0)
        {
            size += 1 + VarintSize((ulong)_offset);
        }

        size += BytesFieldSize(_key.Length);
        size += BytesFieldSize(_value.Length);
        if (_timestamp != 0)
        {
            size += 1 + VarintSize((ulong)_timestamp);
        }

        size += BytesFieldSize(_stream.Length);
        if (_partition != 0)
        {
            size += 1 + VarintSize((ulong)(long)_partition);
        }

        size += BytesFieldSize(_subject.Length);
        size += BytesFieldSize(_replySubject.Length);
        foreach (var header in _headers)
        {
            var entry = EntrySize(header);
            size += 1 + VarintSize((uint)entry) + entry;
        }

        _size = size;
        return size;
    }

    public void WriteTo(Span<byte> destination)
    {
        var p = 0;
        if (_offset != 0)
        {
            destination[p++] = 1 << 3;
            WriteVarint(destination, ref p, (ulong)_offset);
        }

        WriteBytesField(destination, ref p, 2, _key.Span);
        WriteBytesField(destination, ref p, 3, _value.Span);
        if (_timestamp != 0)
        {
            destination[p++] = 4 << 3;
            WriteVarint(destination, ref p, (ulong)_timestamp);
        }

        WriteBytesField(destination, ref p, 5, _stream);
        if (_partition != 0)
        {
            destination[p++] = 6 << 3;
            WriteVarint(destination, ref p, (ulong)(long)_partition);
        }

        WriteBytesField(destination, ref p, 7, _subject.Span);
        WriteBytesField(destination, ref p, 8, _replySubject.Span);
        foreach (var header in _headers)
        {
            destination[p++] = (9 << 3) | 2;
            WriteVarint(destination, ref p, (uint)EntrySize(header));
            destination[p++] = (1 << 3) | 2; // the entry's key: the header name
            var name = KnownName(header.Name);
            if (name is not null)
            {
                WriteVarint(destination, ref p, (uint)name.Length);
                name.CopyTo(destination[p..]);
                p += name.Length;
            }
            else
            {
                WriteVarint(destination, ref p, (uint)Encoding.UTF8.GetByteCount(header.Name));
                p += Encoding.UTF8.GetBytes(header.Name, destination[p..]);
            }

            destination[p++] = (2 << 3) | 2; // the entry's value, written even when empty
            WriteVarint(destination, ref p, (uint)header.Value.Length);
            header.Value.Span.CopyTo(destination[p..]);
            p += header.Value.Length;
        }

        if (p != CalculateSize())
        {
            throw new InvalidOperationException($"RecordMessage wrote {p} bytes, expected {CalculateSize()}");
        }
    }

    private static byte[]? KnownName(string name) => name switch
    {
        PublishItem.SubjectHeader => SubjectName,
        PublishItem.ReplyHeader => ReplyName,
        _ => null,
    };

    private static int EntrySize(in RecordHeader header)
    {
        var name = KnownName(header.Name)?.Length ?? Encoding.UTF8.GetByteCount(header.Name);
        var value = header.Value.Length;
        return 1 + VarintSize((uint)name) + name + 1 + VarintSize((uint)value) + value;
    }
}
