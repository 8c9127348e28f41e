namespace Sluice.Nats;

/// <summary>Lifecycle of a <see cref="NatsConnection"/>.</summary>
public enum NatsConnectionState
{
    /// <summary>Created, not yet connected.</summary>
    New,

    /// <summary>First connection in progress.</summary>
    Connecting,

    /// <summary>Connected to a server.</summary>
    Connected,

    /// <summary>Lost the server; reconnecting, buffering publishes up to <see cref="NatsOptions.ReconnectBufferSize"/>.</summary>
    Reconnecting,

    /// <summary>Closed for good.</summary>
    Closed,
}

/// <summary>A change of connection state.</summary>
public sealed class NatsConnectionEventArgs(NatsConnectionState state, string? server, Exception? error) : EventArgs
{
    /// <summary>The state after the change.</summary>
    public NatsConnectionState State { get; } = state;

    /// <summary>The server concerned (<c>nats://host:port</c>), if any.</summary>
    public string? Server { get; } = server;

    /// <summary>Why the connection was lost or closed, if known.</summary>
    public Exception? Error { get; } = error;
}

/// <summary>A subscription started dropping messages because its consumer does not keep up.</summary>
public sealed class NatsSlowConsumerEventArgs(NatsSubscription subscription, long droppedMessages) : EventArgs
{
    /// <summary>The slow subscription.</summary>
    public NatsSubscription Subscription { get; } = subscription;

    /// <summary>Messages it has dropped so far (the live count is <see cref="NatsSubscription.DroppedMessages"/>).</summary>
    public long DroppedMessages { get; } = droppedMessages;
}

/// <summary>The server sent <c>-ERR</c>.</summary>
public sealed class NatsServerErrorEventArgs(string message) : EventArgs
{
    /// <summary>The server's error text, e.g. <c>Maximum Payload Violation</c>.</summary>
    public string Message { get; } = message;
}
