using System.Buffers.Binary;
using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Envelopes;

namespace Sluice.Protocol.Tests.Envelopes;

public class EnvelopeTests
{
    private static readonly Message Sample = new()
    {
        Key = ByteString.CopyFromUtf8("k"),
        Value = ByteString.CopyFromUtf8("hello"),
        AckInbox = "inbox",
        CorrelationId = "c1",
        AckPolicy = AckPolicy.All,
        Offset = -1,
        Headers = { ["h"] = ByteString.CopyFromUtf8("v") },
    };

    /// <summary>Inserts a CRC-32C after the 8-byte header, as a sender that sets flag bit0 does.</summary>
    private static byte[] WithCrc(byte[] envelope, uint? crc = null)
    {
        var payload = envelope.AsSpan(8);
        var data = new byte[envelope.Length + 4];
        envelope.AsSpan(0, 8).CopyTo(data);
        data[5] = 12;
        data[6] |= 1;
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(8), crc ?? Crc32C.Compute(payload));
        payload.CopyTo(data.AsSpan(12));
        return data;
    }

    [Fact]
    public void A_publish_envelope_starts_with_magic_version_header_length_flags_and_type()
    {
        var data = Envelope.EncodePublish(Sample);
        Assert.Equal(new byte[] { 0xB9, 0x0E, 0x43, 0xB4, 0x00, 0x08, 0x00, 0x00 }, data[..8]);
        Assert.Equal(Sample.ToByteArray(), data[8..]);
    }

    [Fact]
    public void Publish_and_ack_round_trip()
    {
        Assert.Equal(Sample, Envelope.DecodePublish(Envelope.EncodePublish(Sample)));
        var ack = new Ack { Stream = "s", Offset = 42, CorrelationId = "c1", AckError = Ack.Types.Error.IncorrectOffset };
        var data = Envelope.EncodeAck(ack);
        Assert.Equal(1, data[7]);
        Assert.Equal(ack, Envelope.DecodeAck(data));
    }

    [Fact]
    public void A_correct_crc_is_accepted()
    {
        var data = WithCrc(Envelope.EncodePublish(Sample));
        Assert.Equal(Sample, Envelope.DecodePublish(data));
    }

    [Fact]
    public void Crc32c_matches_the_standard_check_value() =>
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));

    public static TheoryData<byte[], EnvelopeError, string> BadEnvelopes()
    {
        var good = Envelope.EncodePublish(Sample);
        var badMagic = (byte[])good.Clone();
        badMagic[0] = 0xB8;
        var version1 = (byte[])good.Clone();
        version1[4] = 1;
        var crcFlagShortHeader = (byte[])good.Clone();
        crcFlagShortHeader[6] = 1;
        return new()
        {
            { new byte[] { 0xB9, 0x0E, 0x43, 0xB4, 0, 8, 0 }, EnvelopeError.MissingHeader, "data missing envelope header" },
            { badMagic, EnvelopeError.UnexpectedMagic, "unexpected envelope magic number" },
            { version1, EnvelopeError.UnknownProtocol, "unknown envelope protocol" },
            { Envelope.EncodeAck(new Ack()), EnvelopeError.TypeMismatch, "MsgType mismatch: expected 0, got 1" },
            { crcFlagShortHeader, EnvelopeError.IncorrectHeaderSize, "incorrect envelope header size" },
            { WithCrc(good, 0xDEADBEEF), EnvelopeError.CrcMismatch, "crc mismatch" },
        };
    }

    [Theory]
    [MemberData(nameof(BadEnvelopes))]
    public void Each_decode_error_has_liftbridges_text(byte[] data, EnvelopeError error, string text)
    {
        var ex = Assert.Throws<EnvelopeException>(() => Envelope.DecodePublish(data));
        Assert.Equal(error, ex.Error);
        Assert.StartsWith(text, ex.Message, StringComparison.Ordinal);
        Assert.False(Envelope.TryDecodePublish(data, out var message));
        Assert.Null(message);
    }

    [Fact]
    public void Plain_nats_payloads_are_not_envelopes()
    {
        Assert.False(Envelope.TryDecodePublish("hello world, a plain NATS message"u8, out _));
        Assert.True(Envelope.TryDecodePublish(Envelope.EncodePublish(Sample), out var message));
        Assert.Equal(Sample, message);
    }
}

public class ProtoWireTests
{
    [Fact]
    public void PublishRequest_uses_liftbridges_field_numbers()
    {
        // field 3 (stream), wire type 2: tag 0x1A, len 1, "s"; field 9 (expectedOffset), varint: tag 0x48, 9.
        var bytes = new byte[] { 0x1A, 0x01, (byte)'s', 0x48, 0x09 };
        var request = PublishRequest.Parser.ParseFrom(bytes);
        Assert.Equal("s", request.Stream);
        Assert.Equal(9, request.ExpectedOffset);
        Assert.Equal(bytes, request.ToByteArray());
    }

    [Fact]
    public void SubscribeRequest_and_Message_use_liftbridges_field_numbers()
    {
        // SubscribeRequest: startPosition (3) = EARLIEST (2): 0x18 0x02; consumer (11): tag 0x5A, len 3, groupId (1) "g".
        var subscribe = SubscribeRequest.Parser.ParseFrom(new byte[] { 0x18, 0x02, 0x5A, 0x03, 0x0A, 0x01, (byte)'g' });
        Assert.Equal(StartPosition.Earliest, subscribe.StartPosition);
        Assert.Equal("g", subscribe.Consumer.GroupId);

        // Message: offset (1) = 5: 0x08 0x05; ackPolicy (12) = NONE (2): 0x60 0x02.
        var message = Message.Parser.ParseFrom(new byte[] { 0x08, 0x05, 0x60, 0x02 });
        Assert.Equal(5, message.Offset);
        Assert.Equal(AckPolicy.None, message.AckPolicy);
    }

    [Fact]
    public void Ack_and_CreateStream_use_liftbridges_field_numbers()
    {
        // Ack.ackError (10) = TOO_LARGE (3): 0x50 0x03. CreateStreamRequest.encryption (18) {value=true}: tag 0x92 0x01, len 2, 0x08 0x01.
        Assert.Equal(Ack.Types.Error.TooLarge, Ack.Parser.ParseFrom(new byte[] { 0x50, 0x03 }).AckError);
        Assert.True(CreateStreamRequest.Parser.ParseFrom(new byte[] { 0x92, 0x01, 0x02, 0x08, 0x01 }).Encryption.Value);
    }
}
