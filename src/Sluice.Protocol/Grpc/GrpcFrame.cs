using System.Buffers;
using System.Buffers.Binary;

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
