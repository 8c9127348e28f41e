using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Nats;
using Sluice.Protocol.Api;
using Sluice.Protocol.Envelopes;
using Sluice.Protocol.Wire;
using Sluice.Server.Configuration;
using Sluice.Server.Streams;
using Broker = Sluice.Server.Streams.Broker;

namespace Sluice.Server.Nats;

/// <summary>
/// The broker's link to NATS (only when <c>nats.servers</c> or <c>nats.embedded</c> is configured): one
/// connection, one subscription per open partition (<see cref="PartitionFeed"/>), enveloped acks published
/// to ack inboxes, and the NATS copy of messages published through the gRPC API. The connection is made
/// with echo off, so the broker never receives its own publishes: messages published through the API are
/// written to this server's partitions directly and reach everyone else through NATS.
/// </summary>
internal sealed partial class NatsAttachment : IAckReceiver, IAsyncDisposable
{
    private static readonly Meter Meter = new("Sluice.Server.Nats");
    private static readonly Counter<long> ReceivedCounter = Meter.CreateCounter<long>("sluice.nats.messages.received", description: "NATS messages taken by partitions");
    private static readonly Counter<long> InvalidCounter = Meter.CreateCounter<long>("sluice.nats.envelopes.invalid", description: "NATS payloads that start with the envelope magic but do not decode (stored as plain values)");
    private static readonly Counter<long> DroppedCounter = Meter.CreateCounter<long>("sluice.nats.messages.dropped", description: "NATS messages not stored: partition readonly or closing");
    private static readonly Counter<long> PublishFailedCounter = Meter.CreateCounter<long>("sluice.nats.publish.failed", description: "Acks or API copies that could not be published to NATS");

    private readonly NatsConnection _connection;
    private readonly EmbeddedNatsServer? _embedded;
    private readonly ILogger _logger;
    private readonly long _maxPayload;
    private readonly RateLimitedLog _invalidLog = new(TimeSpan.FromSeconds(10));
    private readonly RateLimitedLog _publishLog = new(TimeSpan.FromSeconds(10));
    private long _received;
    private long _invalid;
    private long _dropped;
    private long _publishFailed;
    private volatile bool _closing;

    private NatsAttachment(NatsConnection connection, EmbeddedNatsServer? embedded, long maxPayload, ILogger logger)
    {
        _connection = connection;
        _embedded = embedded;
        _maxPayload = maxPayload;
        _logger = logger;
        _connection.Disconnected += (_, e) => LogDisconnected(_logger, e.Server ?? "?", e.Error?.Message ?? "connection lost");
        _connection.Reconnected += (_, e) => LogReconnected(_logger, e.Server ?? "?");
        _connection.Closed += (_, e) =>
        {
            // Closed by our own shutdown: the normal end, not a failure an operator should look into.
            if (_closing)
            {
                LogClosedOnShutdown(_logger);
            }
            else
            {
                LogClosed(_logger, e.Error?.Message ?? "closed");
            }
        };
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

    /// <summary>Acks and API copies that NATS refused (disconnected with a full reconnect buffer, bad inbox subject).</summary>
    public long PublishFailures => Interlocked.Read(ref _publishFailed);

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

            var natsOptions = ToNatsOptions(settings, servers, serverId, options.Logging.Nats ? loggers : NullLoggerFactory.Instance);
            NatsConnection connection;
            try
            {
                connection = await NatsConnection.ConnectAsync(natsOptions, cancellationToken).ConfigureAwait(false);
            }
            catch (NatsException ex)
            {
                throw new NatsAttachmentException($"Cannot connect to NATS ({string.Join(", ", servers)}): {ex.Message}", ex);
            }

            LogConnected(logger, string.Join(", ", servers));
            return new NatsAttachment(connection, embedded, options.Clustering.ReplicationMaxBytes, logger);
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

    internal static NatsOptions ToNatsOptions(NatsConnectionSettings settings, IReadOnlyList<string> servers, string serverId, ILoggerFactory loggers)
    {
        if (settings.TlsCert.Length > 0 != settings.TlsKey.Length > 0)
        {
            throw new NatsAttachmentException("nats.tls.cert and nats.tls.key must be given together");
        }

        var tls = settings.TlsCert.Length > 0 || settings.TlsCa.Length > 0;
        return NatsOptions.Default with
        {
            Servers = servers,
            Name = "sluice-" + serverId,
            User = settings.User.Length > 0 ? settings.User : null,
            Password = settings.Password.Length > 0 ? settings.Password : null,
            Tls = tls
                ? NatsTlsOptions.Default with
                {
                    Mode = NatsTlsMode.Require,
                    CertFile = settings.TlsCert.Length > 0 ? settings.TlsCert : null,
                    KeyFile = settings.TlsKey.Length > 0 ? settings.TlsKey : null,
                    CaFile = settings.TlsCa.Length > 0 ? settings.TlsCa : null,
                }
                : NatsTlsOptions.Default,
            Echo = false, // API publishes are stored directly; echo would store them twice
            // A server starting beside others (or on a busy host) may take more than a client's 2 s for
            // the INFO/CONNECT/PONG handshake; a refused connection still fails at once.
            ConnectTimeout = TimeSpan.FromSeconds(5),
            MaxReconnectAttempts = -1, // a broker keeps trying for as long as it runs
            ReconnectWait = TimeSpan.FromMilliseconds(250),
            ReconnectWaitMax = TimeSpan.FromSeconds(2),
            LoggerFactory = loggers,
        };
    }

    /// <summary>Subscribes an open partition to its subject (in its stream's group, if any). Null when NATS refuses.</summary>
    public PartitionFeed? Attach(Partition partition)
    {
        var group = partition.Stream.Group.Length > 0 ? partition.Stream.Group : null;
        try
        {
            var pending = _connection.SubscribeAsync(partition.Subject, group);
            var subscription = pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();
            return new PartitionFeed(this, partition, subscription, _logger);
        }
        catch (Exception ex) when (ex is NatsException or ArgumentException or InvalidOperationException)
        {
            LogAttachFailed(_logger, ex, partition.Stream.Name, partition.Id, partition.Subject);
            return null;
        }
    }

    /// <summary>Called by a feed for each NATS message: decode, count, queue (readonly and closing partitions drop it).</summary>
    internal async ValueTask IngestAsync(Partition partition, NatsMsg msg, CancellationToken cancellationToken)
    {
        var item = NatsIngest.ToItem(msg, this, out var kind);
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

        if (await partition.EnqueueAsync(item, _maxPayload, cancellationToken).ConfigureAwait(false))
        {
            Interlocked.Increment(ref _received);
            ReceivedCounter.Add(1);
        }
        else
        {
            Drop(); // paused or deleted under us: nobody subscribes, as Liftbridge
        }
    }

    private void Drop()
    {
        Interlocked.Increment(ref _dropped);
        DroppedCounter.Add(1);
    }

    /// <summary>Acks of NATS-fed messages: an enveloped Ack to the message's inbox (error acks whatever the policy, decision 14).</summary>
    public void OnAck(PublishItem item, Ack ack)
    {
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

    private void Publish(string subject, byte[] data)
    {
        try
        {
            var pending = _connection.PublishAsync(subject, data);
            if (!pending.IsCompletedSuccessfully)
            {
                _ = ObserveAsync(pending, subject);
            }
        }
        catch (Exception ex) when (ex is NatsException or ArgumentException)
        {
            PublishFailed(ex, subject);
        }
    }

    private async Task ObserveAsync(ValueTask pending, string subject)
    {
        try
        {
            await pending.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is NatsException or OperationCanceledException)
        {
            PublishFailed(ex, subject);
        }
    }

    private void PublishFailed(Exception ex, string subject)
    {
        Interlocked.Increment(ref _publishFailed);
        PublishFailedCounter.Add(1);
        if (_publishLog.ShouldLog(out var suppressed))
        {
            LogPublishFailed(_logger, ex, subject, suppressed);
        }
    }

    /// <summary>Closes the connection (flushing what is buffered), then stops the embedded server.</summary>
    public async ValueTask DisposeAsync()
    {
        _closing = true;
        try
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            if (_embedded is not null)
            {
                await _embedded.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Attached to NATS at {Servers}")]
    private static partial void LogConnected(ILogger logger, string servers);

    [LoggerMessage(Level = LogLevel.Warning, Message = "NATS connection to {Server} lost ({Reason}); reconnecting, messages published meanwhile are not captured")]
    private static partial void LogDisconnected(ILogger logger, string server, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "NATS connection restored to {Server}; partitions are subscribed again")]
    private static partial void LogReconnected(ILogger logger, string server);

    [LoggerMessage(Level = LogLevel.Error, Message = "NATS connection closed for good ({Reason}); partitions no longer take NATS messages")]
    private static partial void LogClosed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "NATS connection closed (shutting down)")]
    private static partial void LogClosedOnShutdown(ILogger logger);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not subscribe {Stream}/{Partition} to NATS subject {Subject}")]
    private static partial void LogAttachFailed(ILogger logger, Exception exception, string stream, int partition, string subject);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Invalid envelope on {Subject} for {Stream}/{Partition}; stored as a plain value ({Suppressed} more not logged)")]
    private static partial void LogInvalidEnvelope(ILogger logger, string subject, string stream, int partition, long suppressed);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not publish to NATS subject {Subject} ({Suppressed} more not logged)")]
    private static partial void LogPublishFailed(ILogger logger, Exception exception, string subject, long suppressed);
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
