using System.Buffers;
using Sluice.Protocol.Api;

namespace Sluice.Protocol.Wire;

/// <summary>
/// A <c>proto.PublishResponse</c> read from its wire bytes far enough to match it to its publish:
/// the correlation id (the ack's, else the response's) and where the ack is. The ack itself is
/// parsed only if someone reads it (<see cref="ParseAck"/>). A response with an async error, or
/// with more than one ack field (which protobuf would merge), is not handled here:
/// <see cref="IsSimple"/> is false and the caller parses it with Google.Protobuf.
/// </summary>
public sealed class WirePublishResponse
{
    private const uint AckTag = (1 << 3) | 2;
    private const uint AsyncErrorTag = (2 << 3) | 2;
    private const uint CorrelationIdTag = (3 << 3) | 2;
    private const uint AckCorrelationIdTag = (6 << 3) | 2;

    // String fields of proto.Ack (stream, partitionSubject, msgSubject, ackInbox; correlationId is
    // read apart) and of proto.PublishAsyncError (message).
    private static ReadOnlySpan<int> AckStrings => [1, 2, 3, 5];
    private static ReadOnlySpan<int> AsyncErrorStrings => [2];

    private readonly byte[] _buffer;
    private readonly (int Start, int Length) _ack;
    private readonly (int Start, int Length) _correlationId;
    private readonly (int Start, int Length) _ackCorrelationId;
    private readonly int _acks;
    private readonly bool _asyncError;

    private WirePublishResponse(byte[] buffer)
    {
        _buffer = buffer;
        var data = buffer.AsSpan();
        var position = 0;
        while (position < data.Length)
        {
            var tag = ProtoWire.ReadTag(data, ref position);
            switch (tag)
            {
                case AckTag:
                    _ack = ProtoWire.ReadLengthDelimited(data, ref position);
                    _acks++;
                    ScanAck(data.Slice(_ack.Start, _ack.Length), _ack.Start, ref _ackCorrelationId);
                    break;
                case AsyncErrorTag:
                    var (start, length) = ProtoWire.ReadLengthDelimited(data, ref position);
                    ProtoWire.CheckMessage(data.Slice(start, length), AsyncErrorStrings);
                    _asyncError = true;
                    break;
                case CorrelationIdTag:
                    _correlationId = ProtoWire.ReadString(data, ref position);
                    break;
                default:
                    ProtoWire.Skip(data, ref position, tag);
                    break;
            }
        }
    }

    /// <summary>False when the response has an async error or a repeated ack: parse it with <see cref="ToResponse"/>.</summary>
    public bool IsSimple => !_asyncError && _acks <= 1;

    /// <summary>Whether the response carries an ack.</summary>
    public bool HasAck => _acks > 0;

    /// <summary>
    /// The UTF-8 correlation id that matches the response to its publish: the ack's when it has
    /// one, else the response's (as <see cref="IsSimple"/> responses are matched).
    /// </summary>
    public ReadOnlySpan<byte> CorrelationId =>
        _ackCorrelationId.Length > 0
            ? _buffer.AsSpan(_ackCorrelationId.Start, _ackCorrelationId.Length)
            : _buffer.AsSpan(_correlationId.Start, _correlationId.Length);

    /// <summary>Reads a gRPC payload (one PublishResponse) into a response that owns a copy of the bytes.</summary>
    public static WirePublishResponse Decode(ReadOnlySequence<byte> payload) => new(payload.ToArray());

    /// <summary>Reads a response from <paramref name="buffer"/>, which the result keeps.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a well-formed message.</exception>
    public static WirePublishResponse Parse(byte[] buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        return new WirePublishResponse(buffer);
    }

    /// <summary>The ack (null when there is none), parsed now.</summary>
    public Ack? ParseAck() => _acks == 0 ? null : Ack.Parser.ParseFrom(_buffer, _ack.Start, _ack.Length);

    /// <summary>The whole response as a protobuf object.</summary>
    public PublishResponse ToResponse() => PublishResponse.Parser.ParseFrom(_buffer);

    /// <summary>Checks the ack's encoding and finds its correlation id (the last one wins).</summary>
    private static void ScanAck(ReadOnlySpan<byte> ack, int offset, ref (int Start, int Length) correlationId)
    {
        var position = 0;
        while (position < ack.Length)
        {
            var tag = ProtoWire.ReadTag(ack, ref position);
            if (tag == AckCorrelationIdTag)
            {
                var (start, length) = ProtoWire.ReadString(ack, ref position);
                correlationId = (offset + start, length);
            }
            else if ((tag & 7) == 2 && AckStrings.Contains((int)(tag >> 3)))
            {
                ProtoWire.ReadString(ack, ref position);
            }
            else
            {
                ProtoWire.Skip(ack, ref position, tag);
            }
        }
    }
}
