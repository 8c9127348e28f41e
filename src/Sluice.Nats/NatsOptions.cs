using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Sluice.Nats;

/// <summary>
/// Settings of a <see cref="NatsConnection"/>. Start from <see cref="Default"/> and change what you
/// need with <c>with { ... }</c>.
/// </summary>
public sealed record NatsOptions
{
    /// <summary>The defaults documented on each property.</summary>
    public static NatsOptions Default { get; } = new();

    /// <summary>
    /// Servers to connect to, tried in order: <c>nats://host:port</c> (or <c>tls://host:port</c> to
    /// require TLS; <c>nats://user:pass@host:port</c> carries credentials). Servers the cluster
    /// advertises in INFO <c>connect_urls</c> are added for reconnects. Default: <c>nats://127.0.0.1:4222</c>.
    /// </summary>
    public IReadOnlyList<string> Servers { get; init; } = ["nats://127.0.0.1:4222"];

    /// <summary>Connection name shown by the server's monitoring. Default: none.</summary>
    public string? Name { get; init; }

    /// <summary>User for user/password authentication. Default: none.</summary>
    public string? User { get; init; }

    /// <summary>Password for user/password authentication. Default: none.</summary>
    public string? Password { get; init; }

    /// <summary>Token for token authentication. Default: none.</summary>
    public string? Token { get; init; }

    /// <summary>Whether the server echoes our own publishes to our own subscriptions. Default: true.</summary>
    public bool Echo { get; init; } = true;

    /// <summary>TLS settings. Default: <see cref="NatsTlsOptions.Default"/> (TLS only when the server requires it).</summary>
    public NatsTlsOptions Tls { get; init; } = NatsTlsOptions.Default;

    /// <summary>Time allowed for TCP connect, TLS and the CONNECT/PING/PONG handshake with one server. Default: 2 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Wait after a full pass over the servers failed; doubles per pass up to <see cref="ReconnectWaitMax"/>. Default: 1 s.</summary>
    public TimeSpan ReconnectWait { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Upper bound of the reconnect backoff. Default: 5 s.</summary>
    public TimeSpan ReconnectWaitMax { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Random extra wait (0 to this) added to every backoff so clients do not reconnect in lockstep. Default: 100 ms.</summary>
    public TimeSpan ReconnectJitter { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Connection attempts after a disconnect before the connection closes; -1 retries forever. Default: 60.</summary>
    public int MaxReconnectAttempts { get; init; } = 60;

    /// <summary>Interval of client keepalive PINGs. Default: 2 min.</summary>
    public TimeSpan PingInterval { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Unanswered keepalive PINGs after which the connection is stale and is reconnected. Default: 2.</summary>
    public int MaxPingsOut { get; init; } = 2;

    /// <summary>Bytes of outgoing operations held while disconnected; publishing beyond it throws <see cref="NatsReconnectBufferFullException"/>. Default: 8 MiB.</summary>
    public long ReconnectBufferSize { get; init; } = 8 * 1024 * 1024;

    /// <summary>
    /// Messages buffered per subscription. When full, new messages for it are dropped, counted in
    /// <see cref="NatsSubscription.DroppedMessages"/> and reported by <see cref="NatsConnection.SlowConsumerDetected"/>.
    /// Default: 65,536.
    /// </summary>
    public int SubscriptionChannelCapacity { get; init; } = 65_536;

    /// <summary>Default timeout of <see cref="NatsConnection.RequestAsync"/>. Default: 5 s.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Logger factory. Default: <see cref="NullLoggerFactory.Instance"/>.</summary>
    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;

    internal void Validate()
    {
        if (Servers is null || Servers.Count == 0)
        {
            throw new ArgumentException("At least one server is required.", nameof(Servers));
        }

        Positive(ConnectTimeout, nameof(ConnectTimeout));
        Positive(PingInterval, nameof(PingInterval));
        Positive(RequestTimeout, nameof(RequestTimeout));
        if (ReconnectWait < TimeSpan.Zero || ReconnectWaitMax < ReconnectWait || ReconnectJitter < TimeSpan.Zero)
        {
            throw new ArgumentException("ReconnectWait, ReconnectWaitMax and ReconnectJitter must be non-negative and ReconnectWaitMax >= ReconnectWait.");
        }

        if (MaxPingsOut < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPingsOut), MaxPingsOut, "Must be at least 1.");
        }

        if (MaxReconnectAttempts < -1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxReconnectAttempts), MaxReconnectAttempts, "Must be -1 (forever) or more.");
        }

        if (ReconnectBufferSize < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ReconnectBufferSize), ReconnectBufferSize, "Must not be negative.");
        }

        if (SubscriptionChannelCapacity < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(SubscriptionChannelCapacity), SubscriptionChannelCapacity, "Must be at least 1.");
        }

        ArgumentNullException.ThrowIfNull(LoggerFactory);
        ArgumentNullException.ThrowIfNull(Tls);
    }

    private static void Positive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(name, value, "Must be positive.");
        }
    }
}
