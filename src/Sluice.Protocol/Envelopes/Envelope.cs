using System.Buffers.Binary;
using Google.Protobuf;
using Sluice.Protocol.Api;

namespace Sluice.Protocol.Envelopes;

/// <summary>
/// Liftbridge's envelope: the header in front of every Liftbridge payload on NATS.
/// <code>
/// 0..3 magic B9 0E 43 B4 | 4 version 0 | 5 headerLen (8, or 12 with CRC) | 6 flags (bit0 = CRC) | 7 msgType
/// 8..11 CRC-32C of the payload, only when flags bit0 is set | payload (protobuf)
/// </code>
/// All integers are big-endian. Like Liftbridge we always encode without a CRC (headerLen 8,
/// flags 0) and verify a CRC when a sender includes one.
/// </summary>
public static class Envelope
{
    public const int HeaderSize = 8;
    public const int HeaderSizeWithCrc = 12;
    private const byte ProtocolV0 = 0x00;
    private const byte CrcFlag = 0x01;

    /// <summary>B9 0E 43 B4: chosen by Liftbridge to be invalid UTF-8, so text payloads never match.</summary>
    public static ReadOnlySpan<byte> Magic => [0xB9, 0x0E, 0x43, 0xB4];

    public static byte[] Encode(EnvelopeType type, IMessage payload)
    {
        ArgumentNullException.ThrowIfNull(payload);
        var size = payload.CalculateSize();
        var data = new byte[HeaderSize + size];
        Magic.CopyTo(data);
        data[4] = ProtocolV0;
        data[5] = HeaderSize;
        data[6] = 0;
        data[7] = (byte)type;
        payload.WriteTo(data.AsSpan(HeaderSize));
        return data;
    }

    public static byte[] EncodePublish(Message message) => Encode(EnvelopeType.Publish, message);

    public static byte[] EncodeAck(Ack ack) => Encode(EnvelopeType.Ack, ack);

    /// <summary>
    /// Checks the header and returns the payload. Throws <see cref="EnvelopeException"/> with
    /// Liftbridge's error texts.
    /// </summary>
    public static ReadOnlySpan<byte> DecodePayload(ReadOnlySpan<byte> data, EnvelopeType expected)
    {
        var error = TryDecodePayload(data, expected, out var payload, out var message);
        return error is null ? payload : throw new EnvelopeException(error.Value, message!);
    }

    public static Message DecodePublish(ReadOnlySpan<byte> data) =>
        Parse(DecodePayload(data, EnvelopeType.Publish), Message.Parser);

    public static Ack DecodeAck(ReadOnlySpan<byte> data) =>
        Parse(DecodePayload(data, EnvelopeType.Ack), Ack.Parser);

    /// <summary>
    /// The broker's view of a NATS payload: an enveloped Publish gives its Message; anything else
    /// (plain NATS data, a damaged envelope) returns false and is stored as a plain value.
    /// </summary>
    public static bool TryDecodePublish(ReadOnlySpan<byte> data, out Message? message) =>
        TryDecode(data, EnvelopeType.Publish, Message.Parser, out message);

    public static bool TryDecodeAck(ReadOnlySpan<byte> data, out Ack? ack) =>
        TryDecode(data, EnvelopeType.Ack, Ack.Parser, out ack);

    private static bool TryDecode<T>(ReadOnlySpan<byte> data, EnvelopeType expected, MessageParser<T> parser, out T? result)
        where T : class, IMessage<T>
    {
        result = null;
        if (TryDecodePayload(data, expected, out var payload, out _) is not null)
        {
            return false;
        }

        try
        {
            result = parser.ParseFrom(payload);
            return true;
        }
        catch (InvalidProtocolBufferException)
        {
            return false;
        }
    }

    private static EnvelopeError? TryDecodePayload(ReadOnlySpan<byte> data, EnvelopeType expected, out ReadOnlySpan<byte> payload, out string? message)
    {
        payload = default;
        message = null;
        if (data.Length < HeaderSize)
        {
            message = "data missing envelope header";
            return EnvelopeError.MissingHeader;
        }

        if (!data[..4].SequenceEqual(Magic))
        {
            message = "unexpected envelope magic number";
            return EnvelopeError.UnexpectedMagic;
        }

        if (data[4] != ProtocolV0)
        {
            message = $"unknown envelope protocol: {data[4]}";
            return EnvelopeError.UnknownProtocol;
        }

        var headerLen = data[5];
        var flags = data[6];
        var type = data[7];
        if (type != (byte)expected)
        {
            message = $"MsgType mismatch: expected {(byte)expected}, got {type}";
            return EnvelopeError.TypeMismatch;
        }

        if ((flags & CrcFlag) != 0)
        {
            if (headerLen != HeaderSizeWithCrc || data.Length < HeaderSizeWithCrc)
            {
                message = "incorrect envelope header size";
                return EnvelopeError.IncorrectHeaderSize;
            }

            var expectedCrc = BinaryPrimitives.ReadUInt32BigEndian(data[8..12]);
            if (Crc32C.Compute(data[headerLen..]) != expectedCrc)
            {
                message = "crc mismatch";
                return EnvelopeError.CrcMismatch;
            }
        }
        else if (headerLen < HeaderSize || headerLen > data.Length)
        {
            message = "incorrect envelope header size";
            return EnvelopeError.IncorrectHeaderSize;
        }

        payload = data[headerLen..];
        return null;
    }

    private static T Parse<T>(ReadOnlySpan<byte> payload, MessageParser<T> parser)
        where T : IMessage<T>
    {
        try
        {
            return parser.ParseFrom(payload);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new EnvelopeException(EnvelopeError.InvalidPayload, $"invalid envelope payload: {ex.Message}", ex);
        }
    }
}
