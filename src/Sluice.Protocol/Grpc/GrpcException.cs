namespace Sluice.Protocol.Grpc;

/// <summary>
/// A gRPC call that ended with a non-OK status. Server handlers throw it to fail a call with a
/// chosen status; the client throws it when a call ends with a non-OK status.
/// </summary>
public sealed class GrpcException : Exception
{
    public GrpcException(GrpcStatusCode statusCode, string detail)
        : base(Describe(statusCode, detail))
    {
        StatusCode = statusCode;
        Detail = detail;
    }

    public GrpcException(GrpcStatusCode statusCode, string detail, Exception? innerException)
        : base(Describe(statusCode, detail), innerException)
    {
        StatusCode = statusCode;
        Detail = detail;
    }

    public GrpcException()
        : this(GrpcStatusCode.Unknown, "unknown error")
    {
    }

    public GrpcException(string message)
        : this(GrpcStatusCode.Unknown, message)
    {
    }

    public GrpcException(string message, Exception? innerException)
        : this(GrpcStatusCode.Unknown, message, innerException)
    {
    }

    /// <summary>The gRPC status code.</summary>
    public GrpcStatusCode StatusCode { get; }

    /// <summary>The status message exactly as sent in <c>grpc-message</c> (decoded).</summary>
    public string Detail { get; }

    private static string Describe(GrpcStatusCode code, string detail) =>
        $"gRPC status {code} ({(int)code}): {detail}";
}
