namespace Sluice.Nats;

/// <summary>Base type of every error Sluice.Nats raises.</summary>
public class NatsException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NatsException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}

/// <summary>The bytes received from the server do not follow the NATS client protocol.</summary>
public sealed class NatsProtocolException(string message) : NatsException(message);

/// <summary>No server could be reached, or the connection was lost before an operation finished.</summary>
public sealed class NatsConnectionException(string message, Exception? innerException = null)
    : NatsException(message, innerException);

/// <summary>The connection is closed (or draining) and cannot accept the operation.</summary>
public sealed class NatsConnectionClosedException(string message) : NatsException(message);

/// <summary>The server rejected the credentials (<c>-ERR 'Authorization Violation'</c>).</summary>
public sealed class NatsAuthorizationException(string serverMessage)
    : NatsException($"The NATS server rejected the credentials: {serverMessage}")
{
    /// <summary>The server's error text.</summary>
    public string ServerMessage { get; } = serverMessage;
}

/// <summary>The server answered with <c>-ERR</c>.</summary>
public sealed class NatsServerErrorException(string serverMessage)
    : NatsException($"The NATS server reported an error: {serverMessage}")
{
    /// <summary>The server's error text.</summary>
    public string ServerMessage { get; } = serverMessage;
}

/// <summary>A message is larger than the <c>max_payload</c> the server announced in INFO.</summary>
public sealed class NatsMaxPayloadExceededException(long size, long maxPayload)
    : NatsException($"The message is {size} bytes but the server accepts at most {maxPayload} bytes (max_payload).")
{
    /// <summary>Size of the rejected message (headers and payload).</summary>
    public long Size { get; } = size;

    /// <summary>The server's limit.</summary>
    public long MaxPayload { get; } = maxPayload;
}

/// <summary>The connection is down and the reconnect buffer cannot hold the message.</summary>
public sealed class NatsReconnectBufferFullException(long pending, long capacity)
    : NatsException($"Disconnected from NATS and the reconnect buffer is full ({pending} of {capacity} bytes in use); the message was not published.");

/// <summary>No reply arrived within the request timeout.</summary>
public sealed class NatsRequestTimeoutException(string subject, TimeSpan timeout)
    : NatsException($"No reply to the request on '{subject}' within {timeout.TotalMilliseconds:0} ms.")
{
    /// <summary>The request subject.</summary>
    public string Subject { get; } = subject;
}

/// <summary>Nobody subscribes to the request subject (the server answered with status 503).</summary>
public sealed class NatsNoRespondersException(string subject)
    : NatsException($"No responders are subscribed to '{subject}'.")
{
    /// <summary>The request subject.</summary>
    public string Subject { get; } = subject;
}
