namespace Sluice.Nats;

/// <summary>A message received on a subscription.</summary>
public sealed class NatsMsg
{
    private readonly NatsConnection? _connection;

    internal NatsMsg(string subject, string? replyTo, NatsHeaders? headers, ReadOnlyMemory<byte> data, NatsConnection? connection)
    {
        Subject = subject;
        ReplyTo = replyTo;
        Headers = headers;
        Data = data;
        _connection = connection;
    }

    /// <summary>Subject the message was published to.</summary>
    public string Subject { get; }

    /// <summary>Subject to reply to, or <c>null</c>.</summary>
    public string? ReplyTo { get; }

    /// <summary>Headers (HMSG), or <c>null</c> for a plain MSG.</summary>
    public NatsHeaders? Headers { get; }

    /// <summary>The payload.</summary>
    public ReadOnlyMemory<byte> Data { get; }

    /// <summary>Publishes a reply to <see cref="ReplyTo"/>.</summary>
    /// <exception cref="InvalidOperationException">The message has no reply subject.</exception>
    public ValueTask ReplyAsync(ReadOnlyMemory<byte> data, NatsHeaders? headers = null, CancellationToken cancellationToken = default)
    {
        if (ReplyTo is null || _connection is null)
        {
            throw new InvalidOperationException($"The message on '{Subject}' has no reply subject.");
        }

        return _connection.PublishAsync(ReplyTo, data, headers, replyTo: null, cancellationToken);
    }
}
