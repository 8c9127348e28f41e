using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Sluice.Client.Connections;
using Sluice.Client.Internal;
using Sluice.Protocol.Api;

namespace Sluice.Client;

public sealed partial class SluiceClient
{
    private const int SendAttempts = 5;         // go-liftbridge retries a send 5 times when the stream is gone
    private const int PartitionerLookups = 5;   // go-liftbridge: up to 5 metadata refreshes for a partitioner

    private Action<Exception>? _onAckHandlerError;
    private Action<List<PendingAck>, Exception>? _resend;
    private Action<PublishSession, List<(string Stream, int Partition)>>? _silent;

    /// <summary>
    /// Publishes a message to a stream partition and returns its ack (null with
    /// <see cref="AckPolicy.None"/>). Messages are pipelined over one long-lived PublishAsync stream
    /// per broker: start many calls and await them together for throughput.
    /// </summary>
    /// <param name="stream">The stream name.</param>
    /// <param name="value">The message value (copied; the buffer can be reused at once).</param>
    /// <param name="options">Key, headers, ack policy, partition...; null means <see cref="MessageOptions.Default"/>.</param>
    /// <param name="cancellationToken">Stops waiting (the message may still be stored).</param>
    /// <exception cref="AckTimeoutException">No ack within <see cref="SluiceClientOptions.AckWaitTime"/>.</exception>
    /// <exception cref="NoSuchPartitionException">The stream or partition does not exist.</exception>
    /// <exception cref="ReadonlyPartitionException">The partition is readonly.</exception>
    /// <exception cref="IncorrectOffsetException">The expected offset did not match.</exception>
    public Task<SluiceAck?> PublishAsync(string stream, ReadOnlyMemory<byte> value, MessageOptions? options = null, CancellationToken cancellationToken = default) =>
        ClientTracing.Source.HasListeners() // the traced form costs a state machine more, so only when someone listens
            ? PublishTracedAsync(stream, value, options, cancellationToken)
            : PublishAndWaitAsync(stream, value, options, activity: null, cancellationToken);

    /// <summary>The producer span runs until the ack (or the error); its context travels in the message's headers.</summary>
    private Task<SluiceAck?> PublishTracedAsync(string stream, ReadOnlyMemory<byte> value, MessageOptions? options, CancellationToken cancellationToken) =>
        TracedAsync(ClientTracing.StartPublish(stream, value.Length, "publish", "send"), activity => PublishAndWaitAsync(stream, value, options, activity, cancellationToken));

    /// <summary>Runs <paramref name="publish"/> under <paramref name="activity"/> and ends the span with its ack or error.</summary>
    private static async Task<SluiceAck?> TracedAsync(System.Diagnostics.Activity? activity, Func<System.Diagnostics.Activity?, Task<SluiceAck?>> publish)
    {
        try
        {
            var ack = await publish(activity).ConfigureAwait(false);
            ClientTracing.End(activity, ack);
            return ack;
        }
        catch (Exception ex)
        {
            ClientTracing.End(activity, error: ex);
            throw;
        }
    }

    private async Task<SluiceAck?> PublishAndWaitAsync(string stream, ReadOnlyMemory<byte> value, MessageOptions? options, System.Diagnostics.Activity? activity, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        options ??= MessageOptions.Default;
        options.Validate();
        ThrowIfDisposed();
        var request = await CreatePublishFrameAsync(stream, value, options, activity, cancellationToken).ConfigureAwait(false);
        activity?.SetTag("messaging.destination.partition.id", request.Partition.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (request.AckPolicy == Protocol.Api.AckPolicy.None)
        {
            await SendAsync(request, default(NoAcks), cancellationToken).ConfigureAwait(false);
            return null;
        }

        var (session, sent) = await SendAsync(request, default(TaskAcks), cancellationToken).ConfigureAwait(false);
        var pending = (TaskPendingAck)sent!;
        if (!cancellationToken.CanBeCanceled)
        {
            return await pending.Task.ConfigureAwait(false);
        }

        pending.Session = session;
        using var registration = cancellationToken.Register(StopWaiting, pending); // static: no closure per publish
        return await pending.Task.ConfigureAwait(false);
    }

    /// <summary>
    /// Publishes a message and returns once it is queued on the broker's PublishAsync stream;
    /// <paramref name="onAck"/> later receives the ack, or the error (<see cref="AckTimeoutException"/>
    /// after <see cref="SluiceClientOptions.AckWaitTime"/>, or the server's refusal). With
    /// <see cref="AckPolicy.None"/> the handler is never called. This is go-liftbridge's PublishAsync.
    /// </summary>
    /// <param name="stream">The stream name.</param>
    /// <param name="value">The message value (copied).</param>
    /// <param name="onAck">Called once per message, on an I/O thread: keep it short and do not block.</param>
    /// <param name="options">Key, headers, ack policy, partition...; null means <see cref="MessageOptions.Default"/>.</param>
    /// <param name="cancellationToken">Cancels queueing (not the wait for the ack).</param>
    public ValueTask PublishAsync(string stream, ReadOnlyMemory<byte> value, AckHandler onAck, MessageOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(onAck);
        return PublishAsync(stream, value, InvokeAckHandler, onAck, options, cancellationToken);
    }

    /// <summary>
    /// The callback form with a state argument, for publishers of many messages: a static
    /// <paramref name="onAck"/> gets each message's <paramref name="state"/> back, so no closure is
    /// allocated per publish. Otherwise as
    /// <see cref="PublishAsync(string, ReadOnlyMemory{byte}, AckHandler, MessageOptions?, CancellationToken)"/>.
    /// </summary>
    /// <typeparam name="TState">The type of the state.</typeparam>
    /// <param name="stream">The stream name.</param>
    /// <param name="value">The message value (copied).</param>
    /// <param name="onAck">Called once per message, on an I/O thread: keep it short and do not block.</param>
    /// <param name="state">Passed to <paramref name="onAck"/>.</param>
    /// <param name="options">Key, headers, ack policy, partition...; null means <see cref="MessageOptions.Default"/>.</param>
    /// <param name="cancellationToken">Cancels queueing (not the wait for the ack).</param>
    public ValueTask PublishAsync<TState>(string stream, ReadOnlyMemory<byte> value, AckHandler<TState> onAck, TState state, MessageOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(onAck);
        options ??= MessageOptions.Default;
        options.Validate();
        ThrowIfDisposed();
        if (options.Partition is null && options.Partitioner is not null)
        {
            return PublishPartitionedAsync(stream, value, onAck, state, options, cancellationToken);
        }

        // The common case runs without an async state machine of its own: the frame is built here,
        // and the send usually completes synchronously (queued on the broker's PublishAsync stream).
        return SendWithCallbackAsync(CreateTracedPublishFrame(stream, options.Partition ?? 0, value, options), onAck, state, cancellationToken);
    }

    /// <summary>
    /// The callback forms' frame: when traced, a short "create" span (OpenTelemetry's span for a message whose send
    /// is not awaited) gives the message its own context, which travels in its headers.
    /// </summary>
    private PublishFrame CreateTracedPublishFrame(string stream, int partition, ReadOnlyMemory<byte> value, MessageOptions options)
    {
        var activity = ClientTracing.StartPublish(stream, value.Length, "create", "create");
        if (activity is null)
        {
            return CreatePublishFrame(stream, partition, value, options, activity: null);
        }

        activity.SetTag("messaging.destination.partition.id", partition.ToString(System.Globalization.CultureInfo.InvariantCulture));
        try
        {
            return CreatePublishFrame(stream, partition, value, options, activity);
        }
        finally
        {
            activity.Stop(); // also gives the caller back its Activity.Current
        }
    }

    /// <summary>
    /// Publishes a message straight to a NATS subject: every stream attached to it stores the
    /// message (partitioning options are ignored). Returns the first ack, or null with
    /// <see cref="AckPolicy.None"/>.
    /// </summary>
    /// <param name="subject">The NATS subject.</param>
    /// <param name="value">The message value.</param>
    /// <param name="options">Key, headers, ack policy, ack inbox, correlation id; null means <see cref="MessageOptions.Default"/>.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="AckTimeoutException">No ack within <see cref="SluiceClientOptions.AckWaitTime"/> (e.g. no stream on the subject).</exception>
    public Task<SluiceAck?> PublishToSubjectAsync(string subject, ReadOnlyMemory<byte> value, MessageOptions? options = null, CancellationToken cancellationToken = default) =>
        ClientTracing.Source.HasListeners()
            ? PublishToSubjectTracedAsync(subject, value, options, cancellationToken)
            : PublishToSubjectCoreAsync(subject, value, options, activity: null, cancellationToken);

    private Task<SluiceAck?> PublishToSubjectTracedAsync(string subject, ReadOnlyMemory<byte> value, MessageOptions? options, CancellationToken cancellationToken) =>
        TracedAsync(ClientTracing.StartPublish(subject, value.Length, "publish_to_subject", "send"), activity => PublishToSubjectCoreAsync(subject, value, options, activity, cancellationToken));

    private async Task<SluiceAck?> PublishToSubjectCoreAsync(string subject, ReadOnlyMemory<byte> value, MessageOptions? options, System.Diagnostics.Activity? activity, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(subject);
        options ??= MessageOptions.Default;
        options.Validate();
        if (options.ExpectedOffset != -1)
        {
            // PublishToSubjectRequest has no expected offset: dropping it would lose the caller's concurrency check.
            throw new ArgumentException("ExpectedOffset needs a partition: publish to the stream with PublishAsync instead of to a subject", nameof(options));
        }

        ThrowIfDisposed();
        var request = new PublishToSubjectRequest
        {
            Subject = subject,
            Key = ByteString.CopyFrom(options.Key.Span),
            Value = ByteString.CopyFrom(value.Span),
            AckInbox = options.AckInbox ?? string.Empty,
            CorrelationId = options.CorrelationId ?? string.Empty,
            AckPolicy = (Protocol.Api.AckPolicy)(int)options.AckPolicy,
        };
        AddHeaders(request.Headers, ClientTracing.WithTraceContext(options.Headers, activity));
        if (NewMessageId(options) is { } id)
        {
            // The call is retried on another broker when one is unavailable: the id keeps that retry from storing it twice.
            request.Headers[PublishFrame.MessageIdHeader] = ByteString.CopyFromUtf8(id);
        }
        var response = await InvokeAnyAsync("PublishToSubject", request, PublishToSubjectResponse.Parser, RpcKind.PublishToSubject, Options.AckWaitTime, cancellationToken).ConfigureAwait(false);
        return response.Ack is null ? null : new SluiceAck(response.Ack);
    }

    private async ValueTask PublishPartitionedAsync<TState>(string stream, ReadOnlyMemory<byte> value, AckHandler<TState> onAck, TState state, MessageOptions options, CancellationToken cancellationToken)
    {
        var partition = await ResolvePartitionAsync(stream, options, value, cancellationToken).ConfigureAwait(false);
        var request = CreateTracedPublishFrame(stream, partition, value, options);
        await SendWithCallbackAsync(request, onAck, state, cancellationToken).ConfigureAwait(false);
    }

    private ValueTask SendWithCallbackAsync<TState>(PublishFrame request, AckHandler<TState> onAck, TState state, CancellationToken cancellationToken)
    {
        var send = request.AckPolicy == Protocol.Api.AckPolicy.None
            ? SendAsync(request, default(NoAcks), cancellationToken)
            : SendAsync(request, new CallbackAcks<TState>(onAck, state, _onAckHandlerError ??= LogAckHandlerError), cancellationToken);
        if (send.IsCompletedSuccessfully)
        {
            _ = send.Result;
            return default;
        }

        return AwaitSend(send);

        static async ValueTask AwaitSend(ValueTask<(PublishSession Session, PendingAck? Pending)> send) => await send.ConfigureAwait(false);
    }

    /// <summary>
    /// Sends on the session of the broker for the request's partition, reopening a broken session
    /// (go-liftbridge retries 5 times). <paramref name="acks"/> makes what waits for the ack (nothing
    /// for AckPolicy NONE), a new one per attempt.
    /// </summary>
    private async ValueTask<(PublishSession Session, PendingAck? Pending)> SendAsync<TAcks>(PublishFrame request, TAcks acks, CancellationToken cancellationToken)
        where TAcks : struct, IPendingAcks
    {
        Exception? last = null;
        for (var attempt = 0; attempt < SendAttempts; attempt++)
        {
            if (attempt > 0)
            {
                await Task.Delay(RetryDelay, cancellationToken).ConfigureAwait(false);
            }

            var address = attempt == 0 ? LeaderAddress(request.Stream, request.Partition) : null;
            if (address is null && attempt == 0 && UseStream(request.Stream))
            {
                // The first publish to a stream this client has not used learns its leaders first, as Kafka's producer
                // does for a topic: the client's metadata covers only the streams it uses.
                await TryRefreshMetadataAsync(cancellationToken).ConfigureAwait(false);
                address = LeaderAddress(request.Stream, request.Partition);
            }

            var session = GetConnection(address ?? PublishAddress(request.Stream, request.Partition, attempt)).GetPublishSession();
            // A new one per attempt: a failed attempt's may already be completed by its broken session.
            var pending = acks.Create(request.CorrelationId, Options.AckWaitTime);
            if (pending is not null && request.HasMessageId && Options.IdempotentPublishing)
            {
                pending.Resendable = request;
            }

            try
            {
                await session.SendAsync(request, pending, cancellationToken).ConfigureAwait(false);
                return (session, pending);
            }
            catch (SessionBrokenException ex)
            {
                last = ex.InnerException;
            }
        }

        throw last switch
        {
            SluiceException sluice => sluice,
            Protocol.Grpc.GrpcException grpc => SluiceErrors.FromStatus(grpc, RpcKind.PublishSend),
            _ => new BrokerUnavailableException("the publish stream could not be opened", last),
        };
    }

    /// <summary>
    /// The partition leader when the metadata knows it (no forwarding hop on either server),
    /// otherwise a broker chosen by rendezvous hashing of (stream, partition) over the known brokers,
    /// like go-liftbridge's hash ring (any Liftbridge server accepts any publish). A retry moves on.
    /// </summary>
    private string PublishAddress(string stream, int partition, int attempt)
    {
        if (attempt == 0 && LeaderAddress(stream, partition) is { } leader)
        {
            return leader;
        }

        var addresses = _addresses;
        var key = (uint)HashCode.Combine(stream, partition);
        var best = 0;
        var bestScore = 0UL;
        for (var i = 0; i < addresses.Length; i++)
        {
            var score = Mix(key, addresses[i]);
            if (score >= bestScore)
            {
                best = i;
                bestScore = score;
            }
        }

        return addresses[(best + attempt) % addresses.Length];
    }

    private static ulong Mix(uint key, string address)
    {
        var x = ((ulong)key << 32) ^ (uint)address.GetHashCode(StringComparison.Ordinal);
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdUL;
        x ^= x >> 33;
        return x;
    }

    private async ValueTask<PublishFrame> CreatePublishFrameAsync(string stream, ReadOnlyMemory<byte> value, MessageOptions options, System.Diagnostics.Activity? activity, CancellationToken cancellationToken)
    {
        var partition = await ResolvePartitionAsync(stream, options, value, cancellationToken).ConfigureAwait(false);
        return CreatePublishFrame(stream, partition, value, options, activity);
    }

    private ValueTask<int> ResolvePartitionAsync(string stream, MessageOptions options, ReadOnlyMemory<byte> value, CancellationToken cancellationToken) =>
        options.Partition is null && options.Partitioner is { } partitioner
            ? ResolvePartitionAsync(stream, partitioner, options.Key, value, cancellationToken)
            : ValueTask.FromResult(options.Partition ?? 0);

    private PublishFrame CreatePublishFrame(string stream, int partition, ReadOnlyMemory<byte> value, MessageOptions options, System.Diagnostics.Activity? activity) =>
        new(
            stream,
            partition,
            options.Key.Span,
            value.Span,
            ClientTracing.WithTraceContext(options.Headers, activity),
            options.AckInbox ?? string.Empty,
            string.IsNullOrEmpty(options.CorrelationId) ? Nuid.Next() : options.CorrelationId,
            (Protocol.Api.AckPolicy)(int)options.AckPolicy,
            options.ExpectedOffset,
            NewMessageId(options));

    /// <summary>A fresh message id (a NUID: unique across clients, cheap), or null when the caller set one or the option is off.</summary>
    private string? NewMessageId(MessageOptions options) =>
        Options.IdempotentPublishing && !(options.Headers?.ContainsKey(PublishFrame.MessageIdHeader) ?? false) ? Nuid.Next() : null;

    /// <summary>
    /// A publish stream whose broker has answered nothing for a while although messages wait on it: when the metadata
    /// now names another leader for one of their partitions (the broker is paused, or cut off from the cluster but not
    /// from this client), the stream is given up and its messages with ids go to the new leaders, without waiting for
    /// their ack deadlines. The ids make a copy the old leader stored anyway harmless.
    /// </summary>
    private void OnSilentPublishStream(PublishSession session, List<(string Stream, int Partition)> partitions) => _ = CheckSilentPublishStreamAsync(session, partitions);

    private async Task CheckSilentPublishStreamAsync(PublishSession session, List<(string Stream, int Partition)> partitions)
    {
        try
        {
            await TryRefreshMetadataAsync(_closing.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return; // closing
        }

        foreach (var (stream, partition) in partitions)
        {
            if (LeaderAddress(stream, partition) is { } leader && leader != session.Address)
            {
                _logger.LogInformation("The publish stream to {Address} is silent and {Leader} now leads {Stream}/{Partition}: resending its messages", session.Address, leader, stream, partition);
                session.Abandon(new BrokerUnavailableException($"{session.Address} stopped answering and no longer leads partition {partition} of stream '{stream}'"));
                return;
            }
        }
    }

    /// <summary>A broken publish stream left these messages unacknowledged (in publish order); they are sent again in the background.</summary>
    private void Resend(List<PendingAck> messages, Exception failure) => _ = ResendAsync(messages, failure);

    /// <summary>
    /// Sends messages whose broker went away to their partitions' leaders (metadata refreshed first), in
    /// publish order, until a stream takes them or their ack deadlines pass; a message past its deadline
    /// fails with the broker's error. A stream that breaks again hands what it holds back here. Their
    /// message ids make the broker ack a copy it already stored with that copy's offset.
    /// </summary>
    private async Task ResendAsync(List<PendingAck> messages, Exception failure)
    {
        var next = 0;
        try
        {
            while (next < messages.Count)
            {
                await Task.Delay(RetryDelay, _closing.Token).ConfigureAwait(false);
                await TryRefreshMetadataAsync(_closing.Token).ConfigureAwait(false);
                for (; next < messages.Count; next++)
                {
                    var pending = messages[next];
                    if (pending.IsCompleted || PendingAck.Now >= pending.Deadline)
                    {
                        pending.Complete(null, failure);
                        continue;
                    }

                    var frame = pending.Resendable!;
                    var session = GetConnection(PublishAddress(frame.Stream, frame.Partition, attempt: 0)).GetPublishSession();
                    if (pending is TaskPendingAck awaited)
                    {
                        awaited.Session = session;
                    }

                    try
                    {
                        await session.SendAsync(frame, pending, _closing.Token).ConfigureAwait(false);
                    }
                    catch (SessionBrokenException ex)
                    {
                        // The caller gets a SluiceException: a transport error (a refused connect) becomes the broker being unavailable.
                        failure = ex.InnerException switch
                        {
                            SluiceException known => known,
                            { } other => new BrokerUnavailableException(other.Message, other),
                            null => failure,
                        };
                        break; // this one and the rest go again after a pause
                    }
                    catch (ArgumentException ex)
                    {
                        pending.Complete(null, ex); // the caller reused a correlation id that is waiting on that stream
                    }
                }
            }

            if (messages.Count > 0)
            {
                _logger.LogDebug("Resent {Count} unacknowledged messages after a publish stream broke", messages.Count);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
        {
            // The client is closing: what was not resent fails with the broker's error.
            for (; next < messages.Count; next++)
            {
                messages[next].Complete(null, failure);
            }
        }
    }

    private async ValueTask<int> ResolvePartitionAsync(string stream, IPartitioner partitioner, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken)
    {
        for (var attempt = 0; _metadata.PartitionCountForStream(stream) == 0; attempt++)
        {
            UseStream(stream);
            if (attempt == PartitionerLookups)
            {
                throw new NoSuchStreamException($"{SluiceErrors.NoSuchStream}: no metadata for stream '{stream}'");
            }

            if (attempt > 0)
            {
                await Task.Delay(RetryDelay, cancellationToken).ConfigureAwait(false);
            }

            await TryRefreshMetadataAsync(cancellationToken).ConfigureAwait(false);
        }

        var metadata = _metadata;
        var partition = partitioner.GetPartition(stream, key.Span, value.Span, metadata);
        var count = metadata.PartitionCountForStream(stream);
        if (partition < 0 || partition >= count)
        {
            throw new InvalidOperationException($"partitioner {partitioner.GetType().Name} chose partition {partition}, but stream '{stream}' has {count}");
        }

        return partition;
    }

    private void LogAckHandlerError(Exception ex) => _logger.LogError(ex, "An ack handler threw");

    private static readonly AckHandler<AckHandler> InvokeAckHandler = static (ack, error, handler) => handler(ack, error);

    private static readonly Action<object?, CancellationToken> StopWaiting = static (state, token) =>
    {
        // Completed whether or not the session still held it: a message being resent is held by none.
        var pending = (TaskPendingAck)state!;
        pending.Session?.Forget(pending.CorrelationId);
        pending.Complete(null, new OperationCanceledException(token));
    };

    /// <summary>Makes what waits for a message's ack; a struct, so a send allocates only the waiter itself.</summary>
    private interface IPendingAcks
    {
        PendingAck? Create(string correlationId, TimeSpan timeout);
    }

    /// <summary>AckPolicy NONE: nothing waits.</summary>
    private readonly struct NoAcks : IPendingAcks
    {
        public PendingAck? Create(string correlationId, TimeSpan timeout) => null;
    }

    private readonly struct TaskAcks : IPendingAcks
    {
        public PendingAck? Create(string correlationId, TimeSpan timeout) => new TaskPendingAck(correlationId, timeout);
    }

    private readonly struct CallbackAcks<TState>(AckHandler<TState> handler, TState state, Action<Exception> onHandlerError) : IPendingAcks
    {
        public PendingAck? Create(string correlationId, TimeSpan timeout) => new CallbackPendingAck<TState>(correlationId, timeout, handler, state, onHandlerError);
    }

    private static void AddHeaders(Google.Protobuf.Collections.MapField<string, ByteString> target, IReadOnlyDictionary<string, ReadOnlyMemory<byte>>? headers)
    {
        if (headers is null)
        {
            return;
        }

        foreach (var (name, value) in headers)
        {
            target[name] = ByteString.CopyFrom(value.Span);
        }
    }
}
