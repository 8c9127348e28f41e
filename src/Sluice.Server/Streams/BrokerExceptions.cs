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

/// <summary>The file system holding the data is full (ResourceExhausted, the gRPC code for a full file system).</summary>
public sealed class StorageFullException(Exception? inner = null) : BrokerException(StorageErrors.DiskFullMessage, inner);

/// <summary>Recognises the storage failures a client is told about by name.</summary>
public static class StorageErrors
{
    /// <summary>What a client sees for a full disk: strerror(ENOSPC).</summary>
    public const string DiskFullMessage = "no space left on device";

    private const int Enospc = 28; // Linux and macOS errno, which .NET puts in IOException.HResult on Unix
    private const int ErrorDiskFull = unchecked((int)0x80070070); // Windows ERROR_DISK_FULL as an HRESULT
    private const int ErrorHandleDiskFull = unchecked((int)0x80070027); // Windows ERROR_HANDLE_DISK_FULL

    /// <summary>True when <paramref name="exception"/> or one of its causes is a full disk.</summary>
    public static bool IsDiskFull(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is StorageFullException || (e is IOException io && io.HResult is Enospc or ErrorDiskFull or ErrorHandleDiskFull))
            {
                return true;
            }
        }

        return false;
    }
}
