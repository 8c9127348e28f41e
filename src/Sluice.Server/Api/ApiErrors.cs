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
        CommitLogException e => new GrpcException(GrpcStatusCode.Internal, e.Message),
        TimeoutException e => new GrpcException(GrpcStatusCode.Internal, e.Message),
        // Its message holds a server path; the store has logged it, the client learns only what happened.
        Storage.Metadata.MetadataStoreFaultedException => new GrpcException(GrpcStatusCode.Internal, "metadata write failed: the server could not write to its disk (details in its log)"),
        _ => new GrpcException(GrpcStatusCode.Internal, $"{exception.GetType().Name}: {exception.Message}"),
    };

    /// <summary>True for the errors <see cref="ToGrpc"/> knows; anything else is a bug and propagates (and is logged) as is.</summary>
    public static bool IsMapped(Exception exception) =>
        exception is BrokerException or CommitLogException or TimeoutException or Storage.Metadata.MetadataStoreFaultedException;
}
