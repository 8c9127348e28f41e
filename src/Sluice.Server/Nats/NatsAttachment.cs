using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NATS.Client.Core;
using Sluice.Protocol.Api;
using Sluice.Protocol.Envelopes;
using Sluice.Protocol.Wire;
using Sluice.Server.Configuration;
using Sluice.Server.Monitoring;
using Sluice.Server.Streams;
using Broker = Sluice.Server.Streams.Broker;

namespace Sluice.Server.Nats;

/// <summary>
/// The broker's link to NATS (only when <c>nats.servers</c> or <c>nats.embedded</c> is configured): one
/// NATS.Net connection, one subscription per open partition (<see cref="PartitionFeed"/>), enveloped acks
/// published to ack inboxes, and the NATS copy of messages published through the gRPC API. The connection
/// is made with echo off, so the broker never receives its own publishes: messages published through the
/// API are written to this server's partitions directly and reach everyone else through NATS.
/// </summary>
internal sealed partial class NatsAttachment : IAckReceiver, IAsyncDisposable
{
    /// <summary>
    /// Messages NATS.Net buffers per partition subscription while the partition is busy; beyond it new ones are
    /// dropped and counted (a slow consumer). 64 Ki keeps a burst of several seconds at full rate without a drop.
    /// </summary>
    internal const int PendingMessagesPerPartition = 65_536;

    /// <summary>
    /// Bytes of acks and API copies that may wait for the connection (NATS down, or a socket that cannot keep up);
    /// beyond it a publish is refused and counted. 8 MiB, the reconnect buffer of the Go client Liftbridge uses.
    /// </summary>
    internal const long MaxWaitingPublishBytes = 8 * 1024 * 1024;

    /// <summary>How long shutdown waits for buffered acks to leave; NATS being away must not hold the stop up.</summary>
    private static readonly TimeSpan ShutdownFlushTimeout = TimeSpan.FromSeconds(5);

    private static readonly Meter Meter = new("Sluice.Server.Nats");
    private static readonly Counter<long> ReceivedCounter = Meter.CreateCounter<long>("sluice.nats.messages.received", description: "NATS messages taken by partitions");
    private static readonly Counter<long> InvalidCounter = Meter.CreateCounter<long>("sluice.nats.envelopes.invalid", description: "NATS payloads that start with the envelope magic but do not decode (stored as plain values)");
    private static readonly Counter<long> DroppedCounter = Meter.CreateCounter<long>("sluice.nats.messages.dropped", description: "NATS messages not stored: partition readonly or closing");
    private static readonly Counter<long> SlowConsumerCounter = Meter.CreateCounter<long>("sluice.nats.slow_consumer.dropped", description: "NATS messages dropped because their partition's subscription buffer was full");
    private static readonly Counter<long> PublishFailedCounter = Meter.CreateCounter<long>("sluice.nats.publish.failed", description: "Acks or API copies that could not be published to NATS");

    private readonly NatsConnection _connection;
    private readonly EmbeddedNatsServer? _embedded;
    private readonly ILogger _logger;
    private readonly long _maxPayload;
    private readonly RateLimitedLog _invalidLog = new(TimeSpan.FromSeconds(10));
    private readonly RateLimitedLog _publishLog = new(TimeSpan.FromSeconds(10));
    private readonly RateLimitedLog _slowConsumerLog = new(TimeSpan.FromSeconds(10));
    private readonly ConcurrentDictionary<PartitionFeed, byte> _feeds = new();
    private readonly Lock _outboxLock = new();
    private readonly Channel<Outgoing> _outbox = Channel.CreateUnbounded<Outgoing>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _shutdown = new();
    private readonly Task _outboxLoop;
    private int _outboxCount;
    private string _serverId = string.Empty;
    private double _traceSampleRatio;
    private long _outboxBytes;
    private int _opened;
    private long _received;
    private long _invalid;
    private long _dropped;
    private long _slowConsumerDropped;
    private long _publishFailed;
    private long _publishRetries;
    private volatile bool _closing;

    private NatsAttachment(NatsConnection connection, EmbeddedNatsServer? embedded, long maxPayload, ILogger logger)
    {
        _connection = connection;
        _embedded = embedded;
        _maxPayload = maxPayload;
        _logger = logger;
        _connection.ConnectionDisconnected += (_, e) =>
        {
            if (!_closing)
            {
                LogDisconnected(_logger, e.Message);
            }

            return ValueTask.CompletedTask;
        };
        _connection.ConnectionOpened += (_, e) =>
        {
            // The first one is the initial connect, logged by StartAsync.
            if (Interlocked.Increment(ref _opened) > 1)
            {
                LogReconnected(_logger, e.Message);
            }

            return ValueTask.CompletedTask;
        };
        _connection.MessageDropped += (_, e) =>
        {
            Interlocked.Increment(ref _slowConsumerDropped);
            SlowConsumerCounter.Add(1);
            if (_slowConsumerLog.ShouldLog(out var suppressed))
            {
                LogSlowConsumer(_logger, e.Subscription.Subject, e.Pending, suppressed);
            }

            return ValueTask.CompletedTask;
        };
        _outboxLoop = Task.Run(DrainOutboxAsync, CancellationToken.None);
    }

    /// <summary>The NATS connection (tests watch its state).</summary>
    public NatsConnection Connection => _connection;

    /// <summary>The child nats-server when <c>nats.embedded</c> is set.</summary>
    public EmbeddedNatsServer? Embedded => _embedded;

    /// <summary>NATS messages handed to partitions.</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>Payloads that started with the envelope magic but failed to decode; they were stored as plain values.</summary>
    public long InvalidEnvelopes => Interlocked.Read(ref _invalid);

    /// <summary>NATS messages not stored because their partition was readonly or closing.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>NATS messages dropped because their partition fell behind by more than <see cref="PendingMessagesPerPartition"/>.</summary>
    public long SlowConsumerDropped => Interlocked.Read(ref _slowConsumerDropped);

    /// <summary>Acks and API copies that could not be published (too much already waiting for the connection, bad inbox subject).</summary>
    public long PublishFailures => Interlocked.Read(ref _publishFailed);

    /// <summary>Waiting acks and copies written again after NATS.Net timed out their write (a stalled socket).</summary>
    public long PublishRetries => Interlocked.Read(ref _publishRetries);

    /// <summary>True when the options ask for NATS.</summary>
    public static bool IsConfigured(ServerOptions options) => options.Nats.Servers.Count > 0 || options.Nats.Embedded;

    /// <summary>
    /// Starts the embedded nats-server when configured, then connects. Throws <see cref="NatsAttachmentException"/>
    /// with a message fit for an operator when NATS cannot be reached or started.
    /// </summary>
    public static async Task<NatsAttachment> StartAsync(ServerOptions options, string serverId, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var logger = loggers.CreateLogger<NatsAttachment>();
        var settings = options.Nats;
        EmbeddedNatsServer? embedded = null;
        try
        {
            IReadOnlyList<string> servers = settings.Servers;
            if (settings.Embedded)
            {
                embedded = await EmbeddedNatsServer.StartAsync(settings, options.Logging.Nats, loggers.CreateLogger<EmbeddedNatsServer>(), cancellationToken).ConfigureAwait(false);
                servers = [embedded.Url];
            }

            var natsOptions = ToNatsOpts(settings, servers, serverId, options.Logging.Nats ? loggers : NullLoggerFactory.Instance);
            var connection = new NatsConnection(natsOptions);
            var attachment = new NatsAttachment(connection, embedded, options.Clustering.ReplicationMaxBytes, logger)
            {
                _serverId = serverId,
                _traceSampleRatio = options.Monitor.TraceSampleRatio,
            };
            try
            {
                await connection.ConnectAsync().AsTask().WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                await attachment.DisposeConnectionAsync().ConfigureAwait(false);
                if (ex is NatsException)
                {
                    throw new NatsAttachmentException($"Cannot connect to NATS ({string.Join(", ", servers)}): {Reason(ex)}", ex);
                }

                throw;
            }

            LogConnected(logger, string.Join(", ", servers));
            return attachment;
        }
        catch
        {
            if (embedded is not null)
            {
                await embedded.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    /// <summary>NATS.Net wraps the server's or the socket's answer ("can not connect uris"); the innermost message says what went wrong.</summary>
    private static string Reason(Exception ex)
    {
        var inner = ex.GetBaseException();
        return inner == ex ? ex.Message : $"{ex.Message}: {inner.Message}";
    }

    internal static NatsOpts ToNatsOpts(NatsConnectionSettings settings, IReadOnlyList<string> servers, string serverId, ILoggerFactory loggers)
    {
        if (settings.TlsCert.Length > 0 != settings.TlsKey.Length > 0)
        {
            throw new NatsAttachmentException("nats.tls.cert and nats.tls.key must be given together");
        }

        var tls = settings.TlsCert.Length > 0 || settings.TlsCa.Length > 0;
        return new NatsOpts
        {
            Url = string.Join(",", servers),
            NoRandomize = true, // nats.servers is tried in the order given, as before
            Name = "sluice-" + serverId,
            AuthOpts = new NatsAuthOpts
            {
                Username = settings.User.Length > 0 ? settings.User : null,
                Password = settings.Password.Length > 0 ? settings.Password : null,
            },
            TlsOpts = tls
                ? new NatsTlsOpts
                {
                    Mode = TlsMode.Require,
                    CertFile = settings.TlsCert.Length > 0 ? settings.TlsCert : null,
                    KeyFile = settings.TlsKey.Length > 0 ? settings.TlsKey : null,
                    CaFile = settings.TlsCa.Length > 0 ? settings.TlsCa : null,
                }
                : NatsTlsOpts.Default,
            Echo = false, // API publishes are stored directly; echo would store them twice
            // A server starting beside others (or on a busy host) may take more than a client's 2 s for
            // the INFO/CONNECT/PONG handshake; a refused connection still fails at once.
            ConnectTimeout = TimeSpan.FromSeconds(5),
            MaxReconnectRetry = -1, // a broker keeps trying for as long as it runs
            IgnoreAuthErrorAbort = true, // ... even while the server refuses its credentials (they may be fixed server-side)
            ReconnectWaitMin = TimeSpan.FromMilliseconds(250),
            ReconnectWaitMax = TimeSpan.FromSeconds(2),
            SubPendingChannelCapacity = PendingMessagesPerPartition,
            // A full buffer drops (counted, logged) rather than stalling the socket reader: one slow partition
            // must not stop the others' messages, the acks and the pings on the shared connection.
            SubPendingChannelFullMode = BoundedChannelFullMode.DropNewest,
            LoggerFactory = loggers,
        };
    }

    /// <summary>
    /// Subscribes an open partition to its subject (in its stream's group, if any). The SUB is written before this
    /// returns when connected; while NATS is down the feed subscribes once it is back. Null when NATS refuses.
    /// </summary>
    public PartitionFeed? Attach(Partition partition)
    {
        var group = partition.Stream.Group.Length > 0 ? partition.Stream.Group : null;
        try
        {
            var feed = new PartitionFeed(this, partition, group, _logger);
            _feeds.TryAdd(feed, 0);
            return feed;
        }
        catch (Exception ex) when (ex is NatsException or ArgumentException or InvalidOperationException)
        {
            LogAttachFailed(_logger, ex, partition.Stream.Name, partition.Id, partition.Subject);
            return null;
        }
    }

    internal void Detached(PartitionFeed feed) => _feeds.TryRemove(feed, out _);

    /// <summary>
    /// Waits until every open partition's SUB (and every UNSUB and ack before this call) has been processed by
    /// nats-server: a PING/PONG round trip after the pending subscriptions completed.
    /// </summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        foreach (var feed in _feeds.Keys)
        {
            await feed.Subscribed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        await _connection.PingAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Called by a feed for each NATS message: decode, count, queue (readonly and closing partitions drop it).</summary>
    internal async ValueTask IngestAsync(Partition partition, NatsMsg<byte[]> msg, bool moreComing, CancellationToken cancellationToken)
    {
        var item = NatsIngest.ToItem(msg.Subject, msg.ReplyTo ?? string.Empty, msg.Data, this, out var kind);
        if (kind == NatsPayloadKind.BadEnvelope)
        {
            Interlocked.Increment(ref _invalid);
            InvalidCounter.Add(1);
            if (_invalidLog.ShouldLog(out var suppressed))
            {
                LogInvalidEnvelope(_logger, msg.Subject, partition.Stream.Name, partition.Id, suppressed);
            }
        }

        if (partition.IsReadonly)
        {
            Drop(); // as Liftbridge: the append fails, no ack
            return;
        }

        if (ServerTracing.Enabled)
        {
            item.Trace = ServerTracing.StartPublish(_serverId, partition, item, TraceParentOf(item, msg), "receive", _traceSampleRatio, ActivityKind.Consumer);
        }

        bool queued;
        try
        {
            queued = await partition.EnqueueAsync(item, _maxPayload, cancellationToken, moreComing).ConfigureAwait(false);
        }
        catch (Exception ex) when (item.Trace is not null)
        {
            ServerTracing.EndPublish(item, ex.Message);
            throw;
        }

        if (queued)
        {
            Interlocked.Increment(ref _received);
            ReceivedCounter.Add(1);
            if (item.Receiver is null || item.AckPolicy == AckPolicy.None)
            {
                ServerTracing.EndPublish(item); // no ack will end it
            }
        }
        else
        {
            ServerTracing.EndPublish(item, "dropped: the partition is not open");
            Drop(); // paused or deleted under us: nobody subscribes, as Liftbridge
        }
    }

    /// <summary>
    /// The trace context of a captured message: a <c>traceparent</c> in the envelope's headers (a Liftbridge client's
    /// message), else in the NATS message's own headers (what NATS.Net's OpenTelemetry support adds).
    /// </summary>
    private static ActivityContext TraceParentOf(PublishItem item, NatsMsg<byte[]> msg)
    {
        var parent = ServerTracing.ParentOf(item.Headers, call: null);
        if (parent == default && msg.Headers is { } headers && headers.TryGetValue(ServerTracing.TraceParentHeader, out var traceParent)
            && ActivityContext.TryParse(traceParent.ToString(), headers.TryGetValue(ServerTracing.TraceStateHeader, out var state) ? state.ToString() : null, isRemote: true, out var fromNats))
        {
            parent = fromNats;
        }

        return parent;
    }

    private void Drop()
    {
        Interlocked.Increment(ref _dropped);
        DroppedCounter.Add(1);
    }

    /// <summary>Acks of NATS-fed messages: an enveloped Ack to the message's inbox (error acks whatever the policy, decision 14).</summary>
    public void OnAck(PublishItem item, Ack ack)
    {
        if (ack.AckError != Ack.Types.Error.Ok)
        {
            ServerTracing.EndPublish(item, item.RefusalReason ?? ack.AckError.ToString()); // a committed one's ended with its ack span
        }

        if (item.AckInbox.Length > 0)
        {
            Publish(item.AckInbox, Envelope.EncodeAck(ack));
        }
    }

    /// <summary>
    /// After a gRPC Publish/PublishAsync stored <paramref name="item"/> in <paramref name="target"/>: gives it to
    /// every other local partition subscribed to the same subject (one per queue group, the target standing for
    /// its own group), then puts it on NATS for everyone else. The outcome matches Liftbridge publishing the
    /// envelope on NATS; the target's ack still goes straight to the gRPC caller, once.
    /// </summary>
    public async ValueTask ForwardAsync(Broker broker, Partition target, PublishItem item, WirePublishRequest request, CancellationToken cancellationToken)
    {
        var subject = target.Subject;
        if (subject.AsSpan().IndexOfAny("*>") >= 0)
        {
            return; // a wildcard stream subject is not a subject anyone can publish to
        }

        foreach (var other in broker.MatchSubject(subject))
        {
            if (other == target || other.IsPaused || other.IsReadonly
                || (target.Stream.Group.Length > 0 && other.Stream.Group == target.Stream.Group && other.Subject == target.Subject))
            {
                continue; // paused partitions do not subscribe; the target already took the message for its group
            }

            var copy = new PublishItem
            {
                Key = item.Key,
                Value = item.Value,
                Headers = item.Headers,
                Subject = item.Subject,
                AckInbox = item.AckInbox,
                CorrelationId = item.CorrelationId,
                AckPolicy = item.AckPolicy,
                ExpectedOffset = item.ExpectedOffset,
                Receiver = item.AckInbox.Length > 0 ? this : null,
            };
            if (!await other.EnqueueAsync(copy, _maxPayload, cancellationToken).ConfigureAwait(false))
            {
                Drop();
            }
        }

        Publish(subject, NatsIngest.ToEnvelope(request.ToRequest(), subject));
    }

    /// <summary>PublishToSubject: the envelope goes on NATS for every subscriber this server does not serve itself.</summary>
    public void PublishCopy(PublishToSubjectRequest request) => Publish(request.Subject, NatsIngest.ToEnvelope(request));

    /// <summary>
    /// Never blocks the caller (a partition's writer or a gRPC call). Connected and with nothing waiting, the
    /// message goes straight into NATS.Net's write buffer. Otherwise it joins the outbox, which publishes in
    /// order once NATS takes messages again: NATS.Net itself would park every publish made while disconnected
    /// as its own task, unbounded and released in no set order.
    /// </summary>
    private void Publish(string subject, byte[] data)
    {
        lock (_outboxLock)
        {
            if (_outboxCount == 0 && _connection.ConnectionState == NatsConnectionState.Open)
            {
                ValueTask pending;
                try
                {
                    pending = _connection.PublishAsync(subject, data, serializer: NatsRawSerializer<byte[]>.Default);
                }
                catch (Exception ex) when (ex is NatsException or ArgumentException or ObjectDisposedException)
                {
                    PublishFailed(ex, subject);
                    return;
                }

                if (pending.IsCompletedSuccessfully)
                {
                    return;
                }

                // The write buffer is full: later publishes queue behind this one.
                EnqueueLocked(new Outgoing(subject, data, pending.AsTask()));
                return;
            }

            if (_outboxBytes + data.Length > MaxWaitingPublishBytes)
            {
                PublishFailed(null, subject);
                return;
            }

            EnqueueLocked(new Outgoing(subject, data, null));
        }
    }

    private void EnqueueLocked(Outgoing outgoing)
    {
        if (!_outbox.Writer.TryWrite(outgoing))
        {
            PublishFailed(new ObjectDisposedException(nameof(NatsAttachment)), outgoing.Subject); // an ack after shutdown
            return;
        }

        _outboxCount++;
        _outboxBytes += outgoing.Data.Length;
    }

    private async Task DrainOutboxAsync()
    {
        await foreach (var outgoing in _outbox.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            var pending = outgoing.Pending;
            while (true)
            {
                try
                {
                    // Waits for a reconnect as long as it takes, unless the server is stopping.
                    var publish = pending ?? _connection.PublishAsync(outgoing.Subject, outgoing.Data, serializer: NatsRawSerializer<byte[]>.Default, cancellationToken: _shutdown.Token).AsTask();
                    await publish.WaitAsync(_shutdown.Token).ConfigureAwait(false);
                    break;
                }
                catch (NatsTimeoutException) when (!_shutdown.IsCancellationRequested)
                {
                    // NATS.Net gives up on a write that waited its command timeout (5 s) for buffer space, as on a socket
                    // that stalls; nothing was written, so write it again rather than lose an ack.
                    Interlocked.Increment(ref _publishRetries);
                    pending = null;
                }
                catch (Exception ex) when (ex is NatsException or ArgumentException or ObjectDisposedException or OperationCanceledException or TimeoutException)
                {
                    PublishFailed(ex, outgoing.Subject);
                    break;
                }
            }

            lock (_outboxLock)
            {
                _outboxCount--;
                _outboxBytes -= outgoing.Data.Length;
            }
        }
    }

    private void PublishFailed(Exception? ex, string subject)
    {
        Interlocked.Increment(ref _publishFailed);
        PublishFailedCounter.Add(1);
        if (_publishLog.ShouldLog(out var suppressed))
        {
            if (ex is null)
            {
                LogPublishBufferFull(_logger, subject, MaxWaitingPublishBytes, suppressed);
            }
            else
            {
                LogPublishFailed(_logger, ex, subject, suppressed);
            }
        }
    }

    /// <summary>Sends what is buffered (when connected), closes the connection, then stops the embedded server.</summary>
    public async ValueTask DisposeAsync()
    {
        _closing = true;
        try
        {
            if (_connection.ConnectionState == NatsConnectionState.Open)
            {
                try
                {
                    // The outbox empties and a round trip proves the acks written before it left the socket.
                    lock (_outboxLock)
                    {
                        _outbox.Writer.TryComplete();
                    }

                    await _outboxLoop.WaitAsync(ShutdownFlushTimeout).ConfigureAwait(false);
                    using var timeout = new CancellationTokenSource(ShutdownFlushTimeout);
                    await _connection.PingAsync(timeout.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is NatsException or OperationCanceledException or TimeoutException)
                {
                    LogShutdownFlushFailed(_logger, ex.Message);
                }
            }

            await DisposeConnectionAsync().ConfigureAwait(false);
            LogClosedOnShutdown(_logger);
        }
        finally
        {
            if (_embedded is not null)
            {
                await _embedded.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private async ValueTask DisposeConnectionAsync()
    {
        _closing = true;
        lock (_outboxLock)
        {
            _outbox.Writer.TryComplete();
        }

        await _shutdown.CancelAsync().ConfigureAwait(false); // what still waits for the connection fails (counted)
        await _outboxLoop.ConfigureAwait(false);
        await _connection.DisposeAsync().ConfigureAwait(false);
        _shutdown.Dispose();
    }

    /// <summary>An ack or API copy waiting for the connection; <see cref="Pending"/> when NATS.Net already holds it.</summary>
    private sealed record Outgoing(string Subject, byte[] Data, Task? Pending);

    [LoggerMessage(Level = LogLevel.Information, Message = "Attached to NATS at {Servers}")]
    private static partial void LogConnected(ILogger logger, string servers);

    [LoggerMessage(Level = LogLevel.Warning, Message = "NATS connection to {Server} lost; reconnecting, messages published meanwhile are not captured")]
    private static partial void LogDisconnected(ILogger logger, string server);

    [LoggerMessage(Level = LogLevel.Information, Message = "NATS connection restored to {Server}; partitions are subscribed again")]
    private static partial void LogReconnected(ILogger logger, string server);

    [LoggerMessage(Level = LogLevel.Information, Message = "NATS connection closed (shutting down)")]
    private static partial void LogClosedOnShutdown(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Acks buffered for NATS may be lost at shutdown: {Reason}")]
    private static partial void LogShutdownFlushFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not subscribe {Stream}/{Partition} to NATS subject {Subject}")]
    private static partial void LogAttachFailed(ILogger logger, Exception exception, string stream, int partition, string subject);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Invalid envelope on {Subject} for {Stream}/{Partition}; stored as a plain value ({Suppressed} more not logged)")]
    private static partial void LogInvalidEnvelope(ILogger logger, string subject, string stream, int partition, long suppressed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Slow consumer: the partition subscribed to {Subject} is {Pending} messages behind; new NATS messages for it are dropped (counted in sluice.nats.slow_consumer.dropped; {Suppressed} more not logged)")]
    private static partial void LogSlowConsumer(ILogger logger, string subject, int pending, long suppressed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not publish to NATS subject {Subject} ({Suppressed} more not logged)")]
    private static partial void LogPublishFailed(ILogger logger, Exception exception, string subject, long suppressed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not publish to NATS subject {Subject}: {Limit} bytes already wait for the connection ({Suppressed} more not logged)")]
    private static partial void LogPublishBufferFull(ILogger logger, string subject, long limit, long suppressed);
}

/// <summary>NATS could not be reached or started; the message says what to do.</summary>
public sealed class NatsAttachmentException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Lets one log line through per period and counts the ones it holds back.</summary>
internal sealed class RateLimitedLog(TimeSpan period)
{
    private long _nextTicks;
    private long _suppressed;

    public bool ShouldLog(out long suppressedSinceLast)
    {
        var now = Environment.TickCount64;
        var next = Interlocked.Read(ref _nextTicks);
        if (now >= next && Interlocked.CompareExchange(ref _nextTicks, now + (long)period.TotalMilliseconds, next) == next)
        {
            suppressedSinceLast = Interlocked.Exchange(ref _suppressed, 0);
            return true;
        }

        Interlocked.Increment(ref _suppressed);
        suppressedSinceLast = 0;
        return false;
    }
}
