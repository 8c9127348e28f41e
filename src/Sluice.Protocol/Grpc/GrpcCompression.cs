using System.Buffers;
using System.IO.Compression;

namespace Sluice.Protocol.Grpc;

/// <summary>gzip for the compressed-flag of a gRPC message (<c>grpc-encoding: gzip</c>).</summary>
public static class GrpcCompression
{
    public const string Gzip = "gzip";
    public const string Identity = "identity";

    /// <summary>What we accept, sent as <c>grpc-accept-encoding</c>.</summary>
    public const string AcceptEncoding = "identity,gzip";

    public static byte[] Compress(ReadOnlySpan<byte> payload)
    {
        using var output = new MemoryStream(payload.Length / 2 + 32);
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(payload);
        }

        return output.ToArray();
    }

    /// <summary>
    /// Decompresses a gzip payload, refusing to inflate past <paramref name="maxMessageSize"/>
    /// (RESOURCE_EXHAUSTED) so a small compressed bomb cannot exhaust memory; INTERNAL if corrupt.
    /// </summary>
    public static byte[] Decompress(ReadOnlySequence<byte> payload, int maxMessageSize)
    {
        using var input = new MemoryStream(payload.ToArray(), writable: false);
        using var gzip = new GZipStream(input, CompressionMode.Decompress);
        using var output = new MemoryStream();
        var chunk = ArrayPool<byte>.Shared.Rent(16 * 1024); // one pooled chunk; messages are usually small
        try
        {
            int read;
            while ((read = gzip.Read(chunk, 0, chunk.Length)) > 0)
            {
                if (output.Length + read > maxMessageSize)
                {
                    throw new GrpcException(
                        GrpcStatusCode.ResourceExhausted,
                        $"Decompressed message larger than max (more than {maxMessageSize} bytes)");
                }

                output.Write(chunk, 0, read);
            }
        }
        catch (InvalidDataException ex)
        {
            throw new GrpcException(GrpcStatusCode.Internal, "Invalid gzip data in a compressed gRPC message", ex);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        return output.ToArray();
    }
}
