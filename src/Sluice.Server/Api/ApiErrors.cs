using Sluice.Protocol.Grpc;
using Sluice.Server.Streams;
using Sluice.Storage.Log;

namespace Sluice.Server.Api;

/// <summary>The one place where broker errors become gRPC statuses.</summary>
internal static class ApiErrors
{
    public static GrpcException ToGrpc(Exception exception) => exception switch
    {
        GrpcException grpc => grpc,
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
        CommitLogException e => new GrpcException(GrpcStatusCode.Internal, e.Message),
        TimeoutException e => new GrpcException(GrpcStatusCode.Internal, e.Message),
        _ => new GrpcException(GrpcStatusCode.Internal, $"{exception.GetType().Name}: {exception.Message}"),
    };

    /// <summary>True for the errors <see cref="ToGrpc"/> knows; anything else is a bug and propagates (and is logged) as is.</summary>
    public static bool IsMapped(Exception exception) =>
        exception is BrokerException or CommitLogException or TimeoutException;
}
