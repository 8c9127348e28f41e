using System.Threading.Channels;

namespace Sluice.Nats;

/// <summary>
/// A subscription. Enumerate it (<c>await foreach</c>) or read <see cref="Msgs"/>; or pass a handler to
/// <see cref="NatsConnection.SubscribeAsync(string, Func{NatsMsg, CancellationToken, ValueTask}, string?, CancellationToken)"/>.
/// Messages wait in a bounded buffer; when it is full the reader loop drops new messages for this
/// subscription rather than block the connection, counts them in <see cref="DroppedMessages"/> and raises
/// <see cref="NatsConnection.SlowConsumerDetected"/> once per slow episode.
/// Enumeration ends when the subscription is unsubscribed, reaches its message limit, is drained or the connection closes.
/// </summary>
public sealed class NatsSubscription : IAsyncEnumerable<NatsMsg>, IAsyncDisposable
{
    private readonly NatsConnection _connection;
    private readonly Channel<NatsMsg>? _channel;
    private readonly Action<NatsMsg>? _inline;
    private long _delivered;
    private long _dropped;
    private int _slow;
    private int _ended;

    internal NatsSubscription(NatsConnection connection, long sid, string subject, string? queueGroup, int capacity, Action<NatsMsg>? inline = null)
    {
        _connection = connection;
        Sid = sid;
        Subject = subject;
        QueueGroup = queueGroup;
        _inline = inline;
        if (inline is null)
        {
            _channel = Channel.CreateBounded<NatsMsg>(new BoundedChannelOptions(capacity)
            {
                // Wait mode makes TryWrite return false when full, so the reader loop can count the drop itself.
                FullMode = BoundedChannelFullMode.Wait,
                SingleWriter = true,
                SingleReader = false,
            });
        }
    }

    /// <summary>Subscription id on the wire (kept across reconnects).</summary>
    public long Sid { get; }

    /// <summary>Subject (may contain wildcards).</summary>
    public string Subject { get; }

    /// <summary>Queue group, or <c>null</c>.</summary>
    public string? QueueGroup { get; }

    /// <summary>Messages received from the server for this subscription, including dropped ones.</summary>
    public long ReceivedMessages => Interlocked.Read(ref _delivered);

    /// <summary>Messages dropped because the consumer did not keep up.</summary>
    public long DroppedMessages => Interlocked.Read(ref _dropped);

    /// <summary>The buffered messages.</summary>
    public ChannelReader<NatsMsg> Msgs => _channel?.Reader ?? throw new InvalidOperationException("Internal subscriptions have no channel.");

    internal long? MaxMsgs { get; set; }

    internal Task? HandlerTask { get; set; }

    internal bool IsEnded => Volatile.Read(ref _ended) != 0;

    /// <summary>Unsubscribes now; buffered messages can still be read.</summary>
    public ValueTask UnsubscribeAsync(CancellationToken cancellationToken = default) => _connection.UnsubscribeAsync(this, null, cancellationToken);

    /// <summary>Unsubscribes automatically once <paramref name="maxMsgs"/> messages in total have been received (UNSUB with max).</summary>
    public ValueTask UnsubscribeAfterAsync(int maxMsgs, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMsgs, 1);
        return _connection.UnsubscribeAsync(this, maxMsgs, cancellationToken);
    }

    /// <inheritdoc />
    public IAsyncEnumerator<NatsMsg> GetAsyncEnumerator(CancellationToken cancellationToken = default) =>
        Msgs.ReadAllAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);

    /// <summary>Unsubscribes (if still subscribed).</summary>
    public async ValueTask DisposeAsync()
    {
        if (!IsEnded && _connection.IsOpen)
        {
            await UnsubscribeAsync().ConfigureAwait(false);
        }

        End();
    }

    /// <summary>Called by the reader loop only. Returns true when the message limit has been reached.</summary>
    internal bool Deliver(NatsMsg msg, out bool becameSlow)
    {
        becameSlow = false;
        var received = Interlocked.Increment(ref _delivered);
        if (_inline is not null)
        {
            _inline(msg);
        }
        else if (_channel!.Writer.TryWrite(msg))
        {
            Volatile.Write(ref _slow, 0);
        }
        else if (!IsEnded)
        {
            Interlocked.Increment(ref _dropped);
            becameSlow = Interlocked.Exchange(ref _slow, 1) == 0;
        }

        return MaxMsgs is { } max && received >= max;
    }

    /// <summary>Completes the buffer: readers finish after the messages already in it.</summary>
    internal void End()
    {
        if (Interlocked.Exchange(ref _ended, 1) == 0)
        {
            _channel?.Writer.TryComplete();
        }
    }

    /// <summary>Completes when every buffered message has been read (and the handler, if any, has finished).</summary>
    internal async Task WaitConsumedAsync(CancellationToken cancellationToken)
    {
        if (_channel is not null)
        {
            await _channel.Reader.Completion.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        if (HandlerTask is not null)
        {
            await HandlerTask.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}
