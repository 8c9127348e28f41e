namespace Sluice.Server.Streams;

/// <summary>
/// Base of the broker's own errors. Each subtype names one outcome a client can see; the API layer
/// (<c>Api/ApiErrors</c>) is the one place that maps them to gRPC status codes.
/// </summary>
public abstract class BrokerException : Exception
{
    private protected BrokerException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}

/// <summary>Bad input: the request can never succeed as sent (InvalidArgument).</summary>
public sealed class InvalidRequestException(string message) : BrokerException(message);

/// <summary>A stream with that name exists already (AlreadyExists).</summary>
public sealed class StreamExistsException() : BrokerException("stream already exists");

/// <summary>No stream, or no partition, by that name or id (NotFound).</summary>
public sealed class NotFoundException(string message) : BrokerException(message);

/// <summary>The request is valid but the partition's state refuses it now (FailedPrecondition).</summary>
public sealed class PreconditionFailedException(string message) : BrokerException(message);

/// <summary>A subscription reached its end: stop offset, end of a readonly partition, empty stream (ResourceExhausted).</summary>
public sealed class SubscriptionExhaustedException(string message) : BrokerException(message);

/// <summary>The partition's log was deleted under a reader (NotFound).</summary>
public sealed class PartitionDeletedException(string message) : BrokerException(message);

/// <summary>The partition was paused under a reader (FailedPrecondition).</summary>
public sealed class PartitionPausedException(string message) : BrokerException(message);

/// <summary>The partition is offline: its data on this server is damaged or missing (Unavailable).</summary>
public sealed class PartitionUnavailableException(string message) : BrokerException(message);

/// <summary>The broker failed or is stopping (Internal).</summary>
public sealed class BrokerInternalException(string message, Exception? inner = null) : BrokerException(message, inner);
