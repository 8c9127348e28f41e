using System.Globalization;
using Sluice.Bench.Runs;
using Sluice.Nats;
using Sluice.Nats.JetStream;

namespace Sluice.Bench.Targets;

/// <summary>
/// Publishes to JetStream on a (possibly shared) connection and matches PubAcks to publishes through a private
/// inbox (<c>_INBOX.&lt;id&gt;.&lt;seq&gt;</c>), so any number can be in flight: the synchronous
/// mode is the same request/reply with one outstanding. Without acks it sends plain PUBs.
/// </summary>
internal sealed class JetStreamPublisher : IBenchPublisher
{
    private readonly NatsConnection _connection;
    private readonly string[] _subjects;
    private readonly bool _acks;
    private readonly string _inboxPrefix;
    private readonly Dictionary<long, Pending> _pending = new(capacity: 1024);
    private readonly Lock _lock = new();
    private NatsSubscription? _subscription;
    private Task? _reader;
    private long _seq;

    private JetStreamPublisher(NatsConnection connection, string[] subjects, bool acks)
    {
        _connection = connection;
        _subjects = subjects;
        _acks = acks;
        _inboxPrefix = "_INBOX." + Guid.NewGuid().ToString("N") + ".";
    }

    public static async Task<JetStreamPublisher> StartAsync(NatsConnection connection, string[] subjects, bool acks, CancellationToken cancellationToken)
    {
        var publisher = new JetStreamPublisher(connection, subjects, acks);
        if (acks)
        {
            publisher._subscription = await connection.SubscribeAsync(publisher._inboxPrefix + "*", cancellationToken: cancellationToken).ConfigureAwait(false);
            publisher._reader = Task.Run(publisher.ReadAcksAsync, CancellationToken.None);
        }

        return publisher;
    }

    public async Task PublishAndWaitAsync(BenchMessage message, CancellationToken cancellationToken)
    {
        if (!_acks)
        {
            await _connection.PublishAsync(_subjects[message.Partition], message.Value, cancellationToken: cancellationToken).ConfigureAwait(false);
            return;
        }

        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await SendAsync(message, new Pending(null, 0, done), cancellationToken).ConfigureAwait(false);
        await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public ValueTask PublishAsync(BenchMessage message, IAckSink sink, long state, CancellationToken cancellationToken)
    {
        if (!_acks)
        {
            return _connection.PublishAsync(_subjects[message.Partition], message.Value, cancellationToken: cancellationToken);
        }

        return SendAsync(message, new Pending(sink, state, null), cancellationToken);
    }

    public Task FlushAsync(CancellationToken cancellationToken) => _connection.FlushAsync(cancellationToken).AsTask();

    /// <summary>Ends this publisher's inbox subscription (the connection stays open for the others) and fails acks still pending.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_subscription is not null)
        {
            await _subscription.DisposeAsync().ConfigureAwait(false);
        }

        if (_reader is not null)
        {
            await _reader.ConfigureAwait(false);
        }

        List<Pending> orphans;
        lock (_lock)
        {
            orphans = [.. _pending.Values];
            _pending.Clear();
        }

        foreach (var pending in orphans)
        {
            pending.Complete(new NatsConnectionClosedException("the publisher closed before the PubAck arrived"));
        }
    }

    /// <summary>Checks a PubAck without allocating in the common case; errors go through the library parser for their message.</summary>
    internal static Exception? CheckPubAck(NatsMsg reply)
    {
        if (reply.Headers is { StatusCode: 503 })
        {
            return new NatsNoRespondersException(reply.Subject);
        }

        var data = reply.Data.Span;
        if (data.IndexOf("\"error\""u8) < 0 && data.IndexOf("\"seq\""u8) >= 0)
        {
            return null;
        }

        try
        {
            NatsJetStreamExtensions.ParsePubAck(data);
            return new NatsProtocolException("PubAck without a sequence number: " + System.Text.Encoding.UTF8.GetString(data));
        }
        catch (NatsException ex)
        {
            return ex;
        }
    }

    private async ValueTask SendAsync(BenchMessage message, Pending pending, CancellationToken cancellationToken)
    {
        long seq;
        lock (_lock)
        {
            seq = ++_seq;
            _pending.Add(seq, pending);
        }

        try
        {
            var reply = _inboxPrefix + seq.ToString(CultureInfo.InvariantCulture);
            await _connection.PublishAsync(_subjects[message.Partition], message.Value, replyTo: reply, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            lock (_lock)
            {
                _pending.Remove(seq);
            }

            throw;
        }
    }

    private async Task ReadAcksAsync()
    {
        await foreach (var reply in _subscription!.Msgs.ReadAllAsync().ConfigureAwait(false))
        {
            if (!long.TryParse(reply.Subject.AsSpan(_inboxPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var seq))
            {
                continue;
            }

            Pending pending;
            lock (_lock)
            {
                if (!_pending.Remove(seq, out pending))
                {
                    continue;
                }
            }

            pending.Complete(CheckPubAck(reply));
        }
    }

    private readonly record struct Pending(IAckSink? Sink, long State, TaskCompletionSource? Done)
    {
        public void Complete(Exception? error)
        {
            Sink?.OnAck(State, error);
            if (Done is not null)
            {
                if (error is null)
                {
                    Done.TrySetResult();
                }
                else
                {
                    Done.TrySetException(error);
                }
            }
        }
    }
}
