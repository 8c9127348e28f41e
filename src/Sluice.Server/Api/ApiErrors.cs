using Microsoft.Extensions.Logging;
using Sluice.Protocol.Grpc;
using Sluice.Server.Streams;
using Sluice.Storage.Log;

namespace Sluice.Server.Api;

/// <summary>
/// The one place where broker errors become gRPC statuses. A client sees messages the broker wrote for it;
/// anything else (I/O errors with their paths, exception types, store failures) is logged here and answered
/// with a fixed text, except a full disk, which the client is told about by name.
/// </summary>
internal static partial class ApiErrors
{
    public const string InternalMessage = "internal error";

    public static GrpcException ToGrpc(Exception exception, ILogger logger)
    {
        var status = exception switch
        {
            GrpcException grpc => grpc,
            _ when StorageErrors.IsDiskFull(exception) => new GrpcException(GrpcStatusCode.ResourceExhausted, StorageErrors.DiskFullMessage),
            InvalidRequestException e => new GrpcException(GrpcStatusCode.InvalidArgument, e.Message),
            StreamExistsException e => new GrpcException(GrpcStatusCode.AlreadyExists, e.Message),
            NotFoundException e => new GrpcException(GrpcStatusCode.NotFound, e.Message),
            PartitionDeletedException e => new GrpcException(GrpcStatusCode.NotFound, e.Message),
            PreconditionFailedException e => new GrpcException(GrpcStatusCode.FailedPrecondition, e.Message),
            PartitionPausedException e => new GrpcException(GrpcStatusCode.FailedPrecondition, e.Message),
            SubscriptionExhaustedException e => new GrpcException(GrpcStatusCode.ResourceExhausted, e.Message),
            BrokerInternalException e => new GrpcException(GrpcStatusCode.Internal, e.Message),
            PartitionUnavailableException e => new GrpcException(GrpcStatusCode.Unavailable, e.Message),
            CorruptLogException e => new GrpcException(GrpcStatusCode.Unavailable, $"the partition's data is damaged: {e.Description}"), // found on read: served up to the damage
            TimeoutException e => new GrpcException(GrpcStatusCode.Internal, e.Message),
            CommitLogClosedException => new GrpcException(GrpcStatusCode.Internal, "the partition's log is closed"), // its own message names the directory
            // etcd down or unreachable: the client may retry later (its message names etcd's endpoints, so a fixed text).
            Storage.Metadata.MetadataUnavailableException => new GrpcException(GrpcStatusCode.Unavailable, "cluster metadata store (etcd) unavailable; try again later"),
            // Its message holds a server path; the store has logged it, the client learns only what happened.
            Storage.Metadata.MetadataStoreFaultedException => new GrpcException(GrpcStatusCode.Internal, "metadata write failed: the server could not write to its disk (details in its log)"),
            _ => new GrpcException(GrpcStatusCode.Internal, InternalMessage),
        };

        if (status.StatusCode is GrpcStatusCode.Internal or GrpcStatusCode.ResourceExhausted && exception is not SubscriptionExhaustedException)
        {
            LogFailed(logger, exception, status.StatusCode, status.Detail);
        }

        return status;
    }

    /// <summary>Everything but cancellation (which the gRPC layer answers as CANCELLED or DEADLINE_EXCEEDED).</summary>
    public static bool IsMapped(Exception exception) => exception is not OperationCanceledException;

    [LoggerMessage(Level = LogLevel.Error, Message = "Request failed; the client was answered {Code} \"{Detail}\"")]
    private static partial void LogFailed(ILogger logger, Exception exception, GrpcStatusCode code, string detail);
}
