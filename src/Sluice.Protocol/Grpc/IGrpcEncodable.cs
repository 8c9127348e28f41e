namespace Sluice.Protocol.Grpc;

/// <summary>
/// A gRPC message that writes its own protobuf bytes, for hot paths where building the
/// generated protobuf object would cost more than the message (subscriptions, publishes). The bytes must be
/// a valid encoding of the method's message type.
/// </summary>
public interface IGrpcEncodable
{
    /// <summary>The encoded size in bytes.</summary>
    int CalculateSize();

    /// <summary>Writes exactly <see cref="CalculateSize"/> bytes.</summary>
    void WriteTo(Span<byte> destination);
}
