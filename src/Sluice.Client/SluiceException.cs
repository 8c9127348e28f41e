using Sluice.Protocol.Grpc;

namespace Sluice.Client;

/// <summary>
/// The base of every error the Sluice client reports: catch it to handle any failure of a call to
/// a Sluice or Liftbridge server. Local validation errors are <see cref="ArgumentException"/>s
/// instead, and cancellation is an <see cref="OperationCanceledException"/>.
/// </summary>
public class SluiceException : Exception
{
    /// <summary>Creates an exception with a message.</summary>
    public SluiceException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a message and the error that caused it.</summary>
    public SluiceException(string message, Exception? innerException)
        : base(message, innerException)
    {
        StatusCode = (innerException as GrpcException)?.StatusCode;
    }

    /// <summary>Creates an exception for a failed call that ended with <paramref name="statusCode"/>.</summary>
    public SluiceException(string message, GrpcStatusCode? statusCode, Exception? innerException)
        : base(message, innerException)
    {
        StatusCode = statusCode;
    }

    /// <summary>The gRPC status the server answered with, when the error came from a server.</summary>
    public GrpcStatusCode? StatusCode { get; }
}

/// <summary>CreateStream: a stream with this name already exists (go-liftbridge <c>ErrStreamExists</c>).</summary>
public sealed class StreamExistsException(string message, Exception? innerException = null)
    : SluiceException(message, innerException);

/// <summary>
/// The stream does not exist (go-liftbridge <c>ErrNoSuchStream</c>): DeleteStream of a missing
/// stream, or a stream the cluster metadata does not know.
/// </summary>
public sealed class NoSuchStreamException(string message, Exception? innerException = null)
    : SluiceException(message, innerException);

/// <summary>
/// The stream partition does not exist (go-liftbridge <c>ErrNoSuchPartition</c>): Subscribe,
/// PauseStream or SetStreamReadonly on a missing stream or partition, or a publish the server
/// answered with NOT_FOUND.
/// </summary>
public sealed class NoSuchPartitionException(string message, Exception? innerException = null)
    : SluiceException(message, innerException);

/// <summary>An active subscription ended because its stream was deleted (go-liftbridge <c>ErrStreamDeleted</c>).</summary>
public sealed class StreamDeletedException(string message, Exception? innerException = null)
    : SluiceException(message, innerException);

/// <summary>An active subscription ended because its partition was paused (go-liftbridge <c>ErrPartitionPaused</c>).</summary>
public sealed class PartitionPausedException(string message, Exception? innerException = null)
    : SluiceException(message, innerException);

/// <summary>
/// No ack arrived within <see cref="SluiceClientOptions.AckWaitTime"/> (go-liftbridge <c>ErrAckTimeout</c>).
/// The message may or may not have been stored.
/// </summary>
public sealed class AckTimeoutException(string message, Exception? innerException = null)
    : SluiceException(message, innerException);

/// <summary>
/// The partition is readonly (go-liftbridge <c>ErrReadonlyPartition</c>): a publish to it was refused,
/// or a subscription without a stop position read to its end.
/// </summary>
public sealed class ReadonlyPartitionException(string message, Exception? innerException = null)
    : SluiceException(message, innerException);

/// <summary>
/// A publish was refused by the server with an asynchronous error (PublishAsyncError) other than
/// NOT_FOUND and READONLY, which have their own exceptions. <see cref="Exception.Message"/> is the
/// server's text, as go-liftbridge reports it.
/// </summary>
public class PublishFailedException : SluiceException
{
    /// <summary>Creates the exception for a server error code and text.</summary>
    public PublishFailedException(PublishErrorCode code, string message)
        : base(message) => Code = code;

    /// <summary>The server's error code.</summary>
    public PublishErrorCode Code { get; }
}

/// <summary>
/// Optimistic concurrency control refused a publish: the partition's next offset was not the
/// message's expected offset (server text "incorrect expected offset").
/// </summary>
public sealed class IncorrectOffsetException(string message)
    : PublishFailedException(PublishErrorCode.IncorrectOffset, message);

/// <summary>No broker could be reached (every attempt ended UNAVAILABLE), or the connection carrying a call broke.</summary>
public sealed class BrokerUnavailableException(string message, Exception? innerException = null)
    : SluiceException(message, innerException);

/// <summary>
/// The group's coordinator does not let this consumer-group member read the partition now: its group epoch is stale,
/// the partition is not assigned to it, or the group is gone. <see cref="SluiceConsumer"/> fetches its assignments
/// again; retrying the same subscription cannot succeed.
/// </summary>
public sealed class ConsumerFencedException(string message, Exception? innerException = null)
    : SluiceException(message, innerException);

/// <summary>
/// A consumer-group member with <see cref="AutoOffsetReset.None"/> was assigned a partition for which the group has no
/// committed position (go-liftbridge's "no previous consumer group offset found").
/// </summary>
public sealed class NoCommittedOffsetException(string message)
    : SluiceException(message);

/// <summary>A payload is not a valid Liftbridge envelope of the expected type (see <see cref="SluiceEnvelope"/>).</summary>
public sealed class InvalidEnvelopeException(string message, Exception? innerException = null)
    : SluiceException(message, innerException);

/// <summary>The error codes of a publish refused asynchronously (proto <c>PublishAsyncError.Code</c>).</summary>
public enum PublishErrorCode
{
    /// <summary>An unclassified server error.</summary>
    Unknown = 0,

    /// <summary>The request was invalid (e.g. AckPolicy NONE on a stream with concurrency control, or a message too large).</summary>
    BadRequest = 1,

    /// <summary>The stream or partition does not exist.</summary>
    NotFound = 2,

    /// <summary>The server failed internally.</summary>
    Internal = 3,

    /// <summary>The partition is readonly.</summary>
    Readonly = 4,

    /// <summary>The expected offset did not match (optimistic concurrency control).</summary>
    IncorrectOffset = 5,

    /// <summary>Encrypting the message failed.</summary>
    EncryptionFailed = 6,

    /// <summary>The client is not authorized to publish to the stream.</summary>
    PermissionDenied = 7,
}
