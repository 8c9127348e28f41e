using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;

namespace Sluice.Client.Internal;

/// <summary>Which call failed: the same status means different things to different calls (go-liftbridge's mapping).</summary>
internal enum RpcKind
{
    Other,
    CreateStream,
    DeleteStream,
    PauseOrReadonly,
    SubscribeOpen,
    SubscribeStream,
    PublishSend,
    PublishToSubject,
}

/// <summary>
/// The one place that turns server statuses and asynchronous publish errors into the client's
/// exceptions. It follows go-liftbridge v2 (reference §7.1, acceptance check 43).
/// </summary>
internal static class SluiceErrors
{
    public const string StreamExists = "stream already exists";
    public const string NoSuchStream = "stream does not exist";
    public const string NoSuchPartition = "stream partition does not exist";
    public const string StreamDeleted = "stream has been deleted";
    public const string PartitionPaused = "stream partition has been paused";
    public const string AckTimeout = "publish ack timeout";
    public const string ReadonlyPartition = "readonly partition";

    public static SluiceException FromStatus(GrpcException ex, RpcKind kind)
    {
        var detail = ex.Detail;
        return (ex.StatusCode, kind) switch
        {
            (GrpcStatusCode.AlreadyExists, _) => new StreamExistsException(With(StreamExists, detail), ex),
            (GrpcStatusCode.NotFound, RpcKind.DeleteStream) => new NoSuchStreamException(With(NoSuchStream, detail), ex),
            (GrpcStatusCode.NotFound, RpcKind.SubscribeStream) => new StreamDeletedException(With(StreamDeleted, detail), ex),
            (GrpcStatusCode.NotFound, RpcKind.PauseOrReadonly or RpcKind.SubscribeOpen or RpcKind.PublishSend) =>
                new NoSuchPartitionException(With(NoSuchPartition, detail), ex),
            (GrpcStatusCode.FailedPrecondition, RpcKind.SubscribeStream) => new PartitionPausedException(With(PartitionPaused, detail), ex),
            (GrpcStatusCode.FailedPrecondition, RpcKind.PublishSend) => new ReadonlyPartitionException(With(ReadonlyPartition, detail), ex),
            (GrpcStatusCode.ResourceExhausted, RpcKind.SubscribeOpen or RpcKind.SubscribeStream) =>
                new ReadonlyPartitionException(With(ReadonlyPartition, detail), ex),
            (GrpcStatusCode.DeadlineExceeded, RpcKind.PublishToSubject or RpcKind.PublishSend) => new AckTimeoutException(AckTimeout, ex),
            (GrpcStatusCode.Unavailable, _) => new BrokerUnavailableException($"broker unavailable: {detail}", ex),
            _ => new SluiceException(detail, ex.StatusCode, ex),
        };
    }

    /// <summary>A publish the server refused: NOT_FOUND and READONLY get go-liftbridge's errors, the rest keep the server's text.</summary>
    public static SluiceException FromAsyncError(PublishAsyncError error) => error.Code switch
    {
        PublishAsyncError.Types.Code.NotFound => new NoSuchPartitionException(With(NoSuchPartition, error.Message)),
        PublishAsyncError.Types.Code.Readonly => new ReadonlyPartitionException(With(ReadonlyPartition, error.Message)),
        PublishAsyncError.Types.Code.IncorrectOffset => new IncorrectOffsetException(error.Message),
        _ => new PublishFailedException((PublishErrorCode)(int)error.Code, error.Message),
    };

    /// <summary>
    /// Whether a consumer-group subscription was refused by the group rather than by the partition: Sluice and Liftbridge
    /// say so with FAILED_PRECONDITION and a text naming the group, the epoch or the assignment ("not leader" and a
    /// paused partition use the same status, so the text is all there is).
    /// </summary>
    public static bool IsGroupRefusal(GrpcException ex) =>
        ex.StatusCode == GrpcStatusCode.FailedPrecondition && ex.Detail is { } detail &&
        (detail.Contains("group", StringComparison.OrdinalIgnoreCase) || detail.Contains("assigned", StringComparison.OrdinalIgnoreCase));

    private static string With(string error, string? detail) =>
        string.IsNullOrEmpty(detail) ? error : $"{error}: {detail}";
}
