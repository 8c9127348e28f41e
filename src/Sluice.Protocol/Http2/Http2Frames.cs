using System.Buffers;
using System.Buffers.Binary;

namespace Sluice.Protocol.Http2;

/// <summary>HTTP/2 frame types (RFC 9113 section 6).</summary>
internal enum FrameType : byte
{
    Data = 0x0,
    Headers = 0x1,
    Priority = 0x2,
    RstStream = 0x3,
    Settings = 0x4,
    PushPromise = 0x5,
    Ping = 0x6,
    GoAway = 0x7,
    WindowUpdate = 0x8,
    Continuation = 0x9,
}

/// <summary>HTTP/2 error codes (RFC 9113 section 7).</summary>
internal enum Http2ErrorCode : uint
{
    NoError = 0x0,
    ProtocolError = 0x1,
    InternalError = 0x2,
    FlowControlError = 0x3,
    SettingsTimeout = 0x4,
    StreamClosed = 0x5,
    FrameSizeError = 0x6,
    RefusedStream = 0x7,
    Cancel = 0x8,
    CompressionError = 0x9,
    ConnectError = 0xa,
    EnhanceYourCalm = 0xb,
    InadequateSecurity = 0xc,
    Http11Required = 0xd,
}

/// <summary>Frame flags, header layout and writers for the frames Sluice's client and server send.</summary>
internal static class Http2Frame
{
    public const int HeaderSize = 9;
    public const int DefaultMaxFrameSize = 16_384;
    public const int DefaultWindowSize = 65_535;
    public const int MaxWindowSize = int.MaxValue;

    public const byte EndStream = 0x1;
    public const byte Ack = 0x1;
    public const byte EndHeaders = 0x4;
    public const byte Padded = 0x8;
    public const byte PriorityFlag = 0x20;

    public const ushort SettingsHeaderTableSize = 0x1;
    public const ushort SettingsEnablePush = 0x2;
    public const ushort SettingsMaxConcurrentStreams = 0x3;
    public const ushort SettingsInitialWindowSize = 0x4;
    public const ushort SettingsMaxFrameSize = 0x5;
    public const ushort SettingsMaxHeaderListSize = 0x6;

    /// <summary>The client connection preface (RFC 9113 section 3.4).</summary>
    public static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    /// <summary>Appends one frame: its 9-byte header and <paramref name="payload"/>.</summary>
    public static void Write(IBufferWriter<byte> output, FrameType type, byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        var span = output.GetSpan(HeaderSize + payload.Length);
        WriteHeader(span, payload.Length, type, flags, streamId);
        payload.CopyTo(span[HeaderSize..]);
        output.Advance(HeaderSize + payload.Length);
    }

    /// <summary>Writes a frame header (24-bit length, type, flags, 31-bit stream id).</summary>
    public static void WriteHeader(Span<byte> destination, int length, FrameType type, byte flags, int streamId)
    {
        destination[0] = (byte)(length >> 16);
        destination[1] = (byte)(length >> 8);
        destination[2] = (byte)length;
        destination[3] = (byte)type;
        destination[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(destination[5..], streamId & int.MaxValue);
    }

    /// <summary>Appends a SETTINGS frame with the given (identifier, value) pairs.</summary>
    public static void WriteSettings(IBufferWriter<byte> output, ReadOnlySpan<(ushort Id, uint Value)> settings)
    {
        Span<byte> payload = stackalloc byte[6 * settings.Length];
        for (var i = 0; i < settings.Length; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(payload[(6 * i)..], settings[i].Id);
            BinaryPrimitives.WriteUInt32BigEndian(payload[((6 * i) + 2)..], settings[i].Value);
        }

        Write(output, FrameType.Settings, 0, 0, payload);
    }

    /// <summary>Appends a WINDOW_UPDATE frame.</summary>
    public static void WriteWindowUpdate(IBufferWriter<byte> output, int streamId, int increment)
    {
        Span<byte> payload = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(payload, increment);
        Write(output, FrameType.WindowUpdate, 0, streamId, payload);
    }

    /// <summary>Appends an RST_STREAM frame.</summary>
    public static void WriteRstStream(IBufferWriter<byte> output, int streamId, Http2ErrorCode code)
    {
        Span<byte> payload = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(payload, (uint)code);
        Write(output, FrameType.RstStream, 0, streamId, payload);
    }

    /// <summary>Appends a GOAWAY frame; <paramref name="debugData"/> (RFC 9113 section 6.8) tells the peer why, in text.</summary>
    public static void WriteGoAway(IBufferWriter<byte> output, int lastStreamId, Http2ErrorCode code, string? debugData = null)
    {
        var text = debugData is null ? [] : System.Text.Encoding.UTF8.GetBytes(debugData);
        var payload = new byte[8 + Math.Min(text.Length, MaxGoAwayDebugData)];
        BinaryPrimitives.WriteInt32BigEndian(payload, lastStreamId);
        BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(4), (uint)code);
        text.AsSpan(0, payload.Length - 8).CopyTo(payload.AsSpan(8));
        Write(output, FrameType.GoAway, 0, 0, payload);
    }

    /// <summary>Debug data in a GOAWAY is cut to this many bytes (well within the default 16 KiB frame).</summary>
    public const int MaxGoAwayDebugData = 1024;

    /// <summary>Appends a PING frame (an answer when <paramref name="ack"/>).</summary>
    public static void WritePing(IBufferWriter<byte> output, long data, bool ack)
    {
        Span<byte> payload = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(payload, data);
        Write(output, FrameType.Ping, ack ? Ack : (byte)0, 0, payload);
    }

    /// <summary>Checks a PRIORITY frame (ignored otherwise): on a stream, 5 bytes.</summary>
    public static void ValidatePriority(int streamId, ReadOnlySpan<byte> payload)
    {
        if (streamId == 0 || payload.Length != 5)
        {
            throw new Http2ConnectionException(streamId == 0 ? Http2ErrorCode.ProtocolError : Http2ErrorCode.FrameSizeError, "malformed PRIORITY frame");
        }
    }

    /// <summary>The error code of an RST_STREAM frame, checked (on a stream, 4 bytes).</summary>
    public static Http2ErrorCode ReadRstStream(int streamId, ReadOnlySpan<byte> payload)
    {
        if (streamId == 0 || payload.Length != 4)
        {
            throw new Http2ConnectionException(streamId == 0 ? Http2ErrorCode.ProtocolError : Http2ErrorCode.FrameSizeError, "malformed RST_STREAM frame");
        }

        return (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(payload);
    }

    /// <summary>The opaque data of a PING frame, checked (on stream 0, 8 bytes).</summary>
    public static long ReadPing(int streamId, ReadOnlySpan<byte> payload)
    {
        if (streamId != 0 || payload.Length != 8)
        {
            throw new Http2ConnectionException(streamId != 0 ? Http2ErrorCode.ProtocolError : Http2ErrorCode.FrameSizeError, "malformed PING frame");
        }

        return BinaryPrimitives.ReadInt64BigEndian(payload);
    }

    /// <summary>The last stream id and error code of a GOAWAY frame, checked (on stream 0, at least 8 bytes).</summary>
    public static (int LastStreamId, Http2ErrorCode Code) ReadGoAway(int streamId, ReadOnlySpan<byte> payload)
    {
        if (streamId != 0 || payload.Length < 8)
        {
            throw new Http2ConnectionException(streamId != 0 ? Http2ErrorCode.ProtocolError : Http2ErrorCode.FrameSizeError, "malformed GOAWAY frame");
        }

        return (BinaryPrimitives.ReadInt32BigEndian(payload) & int.MaxValue, (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(payload[4..]));
    }

    /// <summary>The increment of a WINDOW_UPDATE frame (4 bytes; a zero increment is the caller's to judge).</summary>
    public static int ReadWindowIncrement(ReadOnlySpan<byte> payload)
    {
        if (payload.Length != 4)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "WINDOW_UPDATE payload is not 4 bytes");
        }

        return BinaryPrimitives.ReadInt32BigEndian(payload) & int.MaxValue;
    }

    /// <summary>Checks a SETTINGS frame's framing; true when it is an acknowledgement (nothing to apply).</summary>
    public static bool ReadSettingsIsAck(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (streamId != 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "SETTINGS on a stream");
        }

        if ((flags & Ack) != 0)
        {
            return payload.IsEmpty
                ? true
                : throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "SETTINGS acknowledgement with a payload");
        }

        return payload.Length % 6 == 0
            ? false
            : throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "SETTINGS payload is not a multiple of 6 bytes");
    }

    /// <summary>Checks one setting's value against RFC 9113 section 6.5.2 (push flag, window and frame size ranges).</summary>
    public static void ValidateSetting(ushort id, uint value)
    {
        switch (id)
        {
            case SettingsEnablePush when value > 1:
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"SETTINGS_ENABLE_PUSH {value} is not 0 or 1");
            case SettingsInitialWindowSize when value > MaxWindowSize:
                throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, $"SETTINGS_INITIAL_WINDOW_SIZE {value} is above 2^31-1");
            case SettingsMaxFrameSize when value is < DefaultMaxFrameSize or > 16_777_215:
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"SETTINGS_MAX_FRAME_SIZE {value} is out of range");
        }
    }

    /// <summary>The payload of a DATA or HEADERS frame without its padding (when the PADDED flag is set).</summary>
    /// <exception cref="Http2ConnectionException">The padding is longer than the frame (PROTOCOL_ERROR).</exception>
    public static ReadOnlySpan<byte> RemovePadding(byte flags, ReadOnlySpan<byte> payload)
    {
        if ((flags & Padded) == 0)
        {
            return payload;
        }

        if (payload.IsEmpty || payload[0] >= payload.Length)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "padding longer than the frame");
        }

        return payload[1..^payload[0]];
    }

    /// <summary>
    /// Appends a header block as one HEADERS frame and as many CONTINUATION frames as
    /// <paramref name="maxFrameSize"/> needs.
    /// </summary>
    public static void WriteHeaders(IBufferWriter<byte> output, int streamId, ReadOnlySpan<byte> block, bool endStream, int maxFrameSize)
    {
        var first = true;
        do
        {
            var length = Math.Min(block.Length, maxFrameSize);
            var last = length == block.Length;
            var flags = (byte)((last ? EndHeaders : 0) | (first && endStream ? EndStream : 0));
            Write(output, first ? FrameType.Headers : FrameType.Continuation, flags, streamId, block[..length]);
            block = block[length..];
            first = false;
        }
        while (!block.IsEmpty);
    }
}

/// <summary>A connection error: the connection ends with GOAWAY carrying <see cref="Code"/>.</summary>
internal sealed class Http2ConnectionException(Http2ErrorCode code, string message) : Exception(message)
{
    public Http2ErrorCode Code { get; } = code;
}
