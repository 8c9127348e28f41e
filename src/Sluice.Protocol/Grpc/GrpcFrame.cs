using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf;

namespace Sluice.Protocol.Grpc;

/// <summary>
/// The gRPC length-prefixed message: [compressed flag: 1 byte][length: 4 bytes big-endian][payload].
/// Works on bytes only, so tests and fuzzers can feed it directly.
/// </summary>
public static class GrpcFrame
{
    public const int HeaderSize = 5;

    /// <summary>gRPC's customary default receive limit (4 MiB), used when nothing else is configured.</summary>
    public const int DefaultMaxMessageSize = 4 * 1024 * 1024;

    public static void WriteHeader(Span<byte> destination, bool compressed, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        destination[0] = compressed ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(destination[1..], (uint)length);
    }

    /// <summary>
    /// Takes one complete message off the front of <paramref name="buffer"/>. Returns false, leaving
    /// the buffer untouched, when the message is not complete yet. Throws <see cref="GrpcException"/>
    /// (RESOURCE_EXHAUSTED) as soon as the header announces a message larger than the limit, so a
    /// peer cannot make us buffer an oversized message; INTERNAL for an invalid flag byte.
    /// </summary>
    public static bool TryRead(ref ReadOnlySequence<byte> buffer, int maxMessageSize, out bool compressed, out ReadOnlySequence<byte> payload)
    {
        compressed = false;
        payload = default;
        if (buffer.Length < HeaderSize)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[HeaderSize];
        buffer.Slice(0, HeaderSize).CopyTo(header);
        compressed = header[0] switch
        {
            0 => false,
            1 => true,
            _ => throw new GrpcException(GrpcStatusCode.Internal, $"Invalid gRPC message flag byte {header[0]}"),
        };
        var length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
        if (length > (uint)maxMessageSize)
        {
            throw new GrpcException(
                GrpcStatusCode.ResourceExhausted,
                $"Received message larger than max ({length} vs. {maxMessageSize})");
        }

        if (buffer.Length - HeaderSize < length)
        {
            return false;
        }

        payload = buffer.Slice(HeaderSize, length);
        buffer = buffer.Slice(payload.End);
        return true;
    }

    /// <summary>
    /// Frames one uncompressed message straight into <paramref name="output"/> and returns the bytes
    /// written. <paramref name="message"/> is a protobuf message or an <see cref="IGrpcEncodable"/>.
    /// </summary>
    public static int WriteMessage(IBufferWriter<byte> output, object message, int maxMessageSize)
    {
        ArgumentNullException.ThrowIfNull(output);
        var size = PayloadSize(message);
        CheckSendSize(size, maxMessageSize);
        if (message is IGrpcEncodable encodable)
        {
            var span = output.GetSpan(HeaderSize + size);
            WriteHeader(span, compressed: false, size);
            encodable.WriteTo(span.Slice(HeaderSize, size));
            output.Advance(HeaderSize + size);
        }
        else
        {
            WriteHeader(output.GetSpan(HeaderSize), compressed: false, size);
            output.Advance(HeaderSize);
            ((IMessage)message).WriteTo(output);
        }

        return HeaderSize + size;
    }

    /// <summary>One uncompressed frame of a protobuf message or an <see cref="IGrpcEncodable"/>, in an array of its exact size.</summary>
    public static byte[] ToFrame(object message, int maxMessageSize)
    {
        var size = PayloadSize(message);
        CheckSendSize(size, maxMessageSize);
        var frame = new byte[HeaderSize + size];
        WriteHeader(frame, compressed: false, size);
        WritePayload(message, frame.AsSpan(HeaderSize));
        return frame;
    }

    /// <summary>The payload bytes of a protobuf message or an <see cref="IGrpcEncodable"/>, unframed (to be compressed).</summary>
    public static byte[] Serialize(object message)
    {
        var bytes = new byte[PayloadSize(message)];
        WritePayload(message, bytes);
        return bytes;
    }

    private static void WritePayload(object message, Span<byte> destination)
    {
        if (message is IGrpcEncodable encodable)
        {
            encodable.WriteTo(destination);
        }
        else
        {
            ((IMessage)message).WriteTo(destination);
        }
    }

    private static int PayloadSize(object message) => message switch
    {
        IGrpcEncodable encodable => encodable.CalculateSize(),
        IMessage protobuf => protobuf.CalculateSize(),
        null => throw new ArgumentNullException(nameof(message)),
        _ => throw new ArgumentException($"{message.GetType().Name} is neither a protobuf message nor an IGrpcEncodable", nameof(message)),
    };

    /// <summary>Checks a message about to be sent against the peer's limit.</summary>
    public static void CheckSendSize(int size, int maxMessageSize)
    {
        if (size > maxMessageSize)
        {
            throw new GrpcException(
                GrpcStatusCode.ResourceExhausted,
                $"Sent message larger than max ({size} vs. {maxMessageSize})");
        }
    }
}
