using Microsoft.Extensions.Logging;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Wire;
using Sluice.Server.Authorization;
using Sluice.Server.Groups;
using Sluice.Server.Grpc;
using Sluice.Server.Monitoring;
using Sluice.Server.Streams;
using Broker = Sluice.Server.Streams.Broker;

namespace Sluice.Server.Api;

/// <summary>
/// The <c>proto.API</c> service: validates each request in Liftbridge's order (§1.3), calls the
/// broker, and maps its errors through <see cref="ApiErrors"/>.
/// </summary>
/// <remarks>
/// Admin calls go to <paramref name="admin"/> (the broker itself, or in a cluster the controller through
/// <c>ClusterNode</c>); FetchMetadata lists <paramref name="brokers"/> (this server, or every cluster member).
/// Consumer-group calls go to <paramref name="groups"/> (Groups/ConsumerGroups).
/// </remarks>
internal sealed class ApiService(Broker broker, IStreamAdmin admin, Func<IEnumerable<Sluice.Protocol.Api.Broker>> brokers, ConsumerGroups groups, Authorizer? authz = null)
{
    public const string ServiceName = "proto.API";

    public const string TooLargeMessage = "message exceeds max replication size";

    private readonly ILogger _logger = broker.Loggers.CreateLogger<ApiService>();

    public void Register(GrpcMethodRegistry registry)
    {
        registry
            .AddUnary<CreateStreamRequest, CreateStreamResponse>(ServiceName, "CreateStream", CreateStreamRequest.Parser, (r, c) => Run(c, () => CreateStreamAsync(r, c)))
            .AddUnary<DeleteStreamRequest, DeleteStreamResponse>(ServiceName, "DeleteStream", DeleteStreamRequest.Parser, (r, c) => Run(c, () => DeleteStreamAsync(r, c)))
            .AddUnary<PauseStreamRequest, PauseStreamResponse>(ServiceName, "PauseStream", PauseStreamRequest.Parser, (r, c) => Run(c, () => PauseStreamAsync(r, c)))
            .AddUnary<SetStreamReadonlyRequest, SetStreamReadonlyResponse>(ServiceName, "SetStreamReadonly", SetStreamReadonlyRequest.Parser, (r, c) => Run(c, () => SetStreamReadonlyAsync(r, c)))
            .AddServerStreaming<SubscribeRequest, RecordMessage>(ServiceName, "Subscribe", SubscribeRequest.Parser, SubscribeAsync)
            .AddUnary<FetchMetadataRequest, FetchMetadataResponse>(ServiceName, "FetchMetadata", FetchMetadataRequest.Parser, (r, c) => Run(c, () => { Authorize(c, "*", "FetchMetadata"); return Task.FromResult(FetchMetadata(r)); }))
            .AddUnary<FetchPartitionMetadataRequest, FetchPartitionMetadataResponse>(ServiceName, "FetchPartitionMetadata", FetchPartitionMetadataRequest.Parser, (r, c) => Run(c, () => { Authorize(c, r.Stream, "FetchPartitionMetadata"); return Task.FromResult(FetchPartitionMetadata(r)); }))
            .AddUnary<WirePublishRequest, PublishResponse>(ServiceName, "Publish", WirePublishRequest.Decode, (r, c) => Run(c, () => PublishAsync(r, c)))
            .AddDuplexStreaming<WirePublishRequest, object>(ServiceName, "PublishAsync", WirePublishRequest.Decode, PublishAsyncAsync)
            .AddUnary<PublishToSubjectRequest, PublishToSubjectResponse>(ServiceName, "PublishToSubject", PublishToSubjectRequest.Parser, (r, c) => Run(c, () => PublishToSubjectAsync(r, c)))
            .AddUnary<SetCursorRequest, SetCursorResponse>(ServiceName, "SetCursor", SetCursorRequest.Parser, (r, c) => Run(c, () => SetCursorAsync(r, c)))
            .AddUnary<FetchCursorRequest, FetchCursorResponse>(ServiceName, "FetchCursor", FetchCursorRequest.Parser, (r, c) => Run(c, () => FetchCursorAsync(r, c)))
            .AddUnary<JoinConsumerGroupRequest, JoinConsumerGroupResponse>(ServiceName, "JoinConsumerGroup", JoinConsumerGroupRequest.Parser, (r, c) => Run(c, () => { Authorize(c, r.GroupId, "JoinConsumerGroup"); return groups.JoinAsync(r, c.CancellationToken); }))
            .AddUnary<LeaveConsumerGroupRequest, LeaveConsumerGroupResponse>(ServiceName, "LeaveConsumerGroup", LeaveConsumerGroupRequest.Parser, (r, c) => Run(c, async () => { Authorize(c, r.GroupId, "LeaveConsumerGroup"); await groups.LeaveAsync(r, c.CancellationToken).ConfigureAwait(false); return new LeaveConsumerGroupResponse(); }))
            .AddUnary<FetchConsumerGroupAssignmentsRequest, FetchConsumerGroupAssignmentsResponse>(ServiceName, "FetchConsumerGroupAssignments", FetchConsumerGroupAssignmentsRequest.Parser, (r, c) => Run(c, () => { Authorize(c, r.GroupId, "FetchConsumerGroupAssignments"); return groups.FetchAssignmentsAsync(r, c.CancellationToken); }))
            .AddUnary<ReportConsumerGroupCoordinatorRequest, ReportConsumerGroupCoordinatorResponse>(ServiceName, "ReportConsumerGroupCoordinator", ReportConsumerGroupCoordinatorRequest.Parser, (r, c) => Run(c, async () => { Authorize(c, r.GroupId, "ReportConsumerGroupCoordinator"); await groups.ReportCoordinatorAsync(r, c.CancellationToken).ConfigureAwait(false); return new ReportConsumerGroupCoordinatorResponse(); }));
    }

    /// <summary>With <c>tls.client.authz</c> on: PERMISSION_DENIED unless the policy allows (docs/security.md).</summary>
    private void Authorize(GrpcCallContext context, string resource, string action) => authz?.Check(context, resource, action);

    private async ValueTask<T> Run<T>(GrpcCallContext context, Func<Task<T>> action)
    {
        try
        {
            return await action().ConfigureAwait(false);
        }
        catch (Exception ex) when (ApiErrors.IsMapped(ex))
        {
            throw ApiErrors.ToGrpc(ex, _logger);
        }
    }

    // ---------------------------------------------------------------- streams

    private async Task<CreateStreamResponse> CreateStreamAsync(CreateStreamRequest request, GrpcCallContext context)
    {
        Authorize(context, request.Name, "CreateStream");
        await admin.CreateStreamAsync(request, context.CancellationToken).ConfigureAwait(false);
        return new CreateStreamResponse();
    }

    private async Task<DeleteStreamResponse> DeleteStreamAsync(DeleteStreamRequest request, GrpcCallContext context)
    {
        Authorize(context, request.Name, "DeleteStream");
        await admin.DeleteStreamAsync(request.Name, context.CancellationToken).ConfigureAwait(false);
        return new DeleteStreamResponse();
    }

    private async Task<PauseStreamResponse> PauseStreamAsync(PauseStreamRequest request, GrpcCallContext context)
    {
        Authorize(context, request.Name, "PauseStream");
        await admin.PauseAsync(request.Name, request.Partitions, request.ResumeAll, context.CancellationToken).ConfigureAwait(false);
        return new PauseStreamResponse();
    }

    private async Task<SetStreamReadonlyResponse> SetStreamReadonlyAsync(SetStreamReadonlyRequest request, GrpcCallContext context)
    {
        Authorize(context, request.Name, "SetStreamReadonly");
        await admin.SetReadonlyAsync(request.Name, request.Partitions, request.Readonly, context.CancellationToken).ConfigureAwait(false);
        return new SetStreamReadonlyResponse();
    }

    private async Task SubscribeAsync(SubscribeRequest request, GrpcStreamWriter<RecordMessage> responses, GrpcCallContext context)
    {
        var token = context.CancellationToken;
        ConsumerGroups.GroupFence? fence = null;
        try
        {
            Authorize(context, request.Stream, "Subscribe"); // before the subscription starts (Liftbridge checks after)
            if (request.Consumer is { GroupId.Length: > 0, ConsumerId.Length: > 0 })
            {
                // A group member: only with the group's current epoch and on a partition assigned to it (docs/consumer-groups.md).
                fence = await groups.FenceAsync(request, token).ConfigureAwait(false);
                token = fence?.Token ?? token;
            }

            await new Subscription(broker, request).RunAsync((m, flush) => responses.WriteAsync(m, flush, token), () => responses.FlushAsync(token), token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (fence is { Ended: true } && !context.CancellationToken.IsCancellationRequested)
        {
            // The partition went to another member: the subscription ends with status OK, as Liftbridge ends a replaced one.
        }
        catch (Exception ex) when (ApiErrors.IsMapped(ex))
        {
            throw ApiErrors.ToGrpc(ex, _logger);
        }
        finally
        {
            fence?.Dispose();
        }
    }

    // ---------------------------------------------------------------- metadata

    private FetchMetadataResponse FetchMetadata(FetchMetadataRequest request)
    {
        var response = new FetchMetadataResponse();
        response.Brokers.AddRange(brokers());
        if (request.Streams.Count == 0)
        {
            foreach (var stream in broker.Streams.OrderBy(s => s.Name, StringComparer.Ordinal))
            {
                response.StreamMetadata.Add(stream.ToMetadata(broker.ServerId));
            }
        }
        else
        {
            foreach (var name in request.Streams)
            {
                response.StreamMetadata.Add(broker.TryGetStream(name, out var stream)
                    ? stream.ToMetadata(broker.ServerId)
                    : new StreamMetadata { Name = name, Error = StreamMetadata.Types.Error.UnknownStream });
            }
        }

        foreach (var group in request.Groups)
        {
            response.GroupMetadata.Add(groups.TryGet(group) is { } view
                ? new ConsumerGroupMetadata { GroupId = group, Coordinator = view.Coordinator, Epoch = view.Epoch }
                : new ConsumerGroupMetadata { GroupId = group, Error = ConsumerGroupMetadata.Types.Error.UnknownGroup });
        }

        return response;
    }

    private FetchPartitionMetadataResponse FetchPartitionMetadata(FetchPartitionMetadataRequest request)
    {
        if (!broker.TryGetStream(request.Stream, out var stream) || !stream.TryGetPartition(request.Partition, out var partition))
        {
            throw new NotFoundException("partition not found");
        }

        if (partition.Leadership is not null && partition.Runtime is null)
        {
            throw new PreconditionFailedException("The request should be sent to partition leader"); // Liftbridge's text
        }

        return new FetchPartitionMetadataResponse { Metadata = partition.ToMetadata(broker.ServerId) };
    }

    // ---------------------------------------------------------------- publishing

    /// <remarks>Not async itself: the untraced call costs no state machine more than before (Run catches what the checks throw).</remarks>
    private Task<PublishResponse> PublishAsync(WirePublishRequest request, GrpcCallContext context)
    {
        if (request.Stream.Length == 0)
        {
            throw new InvalidRequestException("no stream provided");
        }

        Authorize(context, request.Stream, "Publish");
        var partition = CheckPublish(request);
        var waitForAck = context.Deadline is not null && request.AckPolicy != AckPolicy.None;
        var waiter = waitForAck ? new AckWaiter() : null;
        var item = NewItem(request, partition, WithNatsAck(waiter, request.AckInbox));
        CheckSize(item); // also without an ack to wait for: a dropped message must not look published
        if (ServerTracing.Enabled)
        {
            item.Trace = ServerTracing.StartPublish(broker.ServerId, partition, item, ServerTracing.ParentOf(item.Headers, context), "publish", broker.Options.Monitor.TraceSampleRatio);
        }

        return item.Trace is null ? PublishAndWaitAsync(partition, item, waiter, request, context) : PublishTracedAsync(partition, item, waiter, request, context);
    }

    /// <summary>Ends the publish span when the call ends (if no ack span ended it first: NONE, no deadline, or a failure).</summary>
    private async Task<PublishResponse> PublishTracedAsync(Partition partition, PublishItem item, AckWaiter? waiter, WirePublishRequest request, GrpcCallContext context)
    {
        try
        {
            var response = await PublishAndWaitAsync(partition, item, waiter, request, context).ConfigureAwait(false);
            ServerTracing.EndPublish(item);
            return response;
        }
        catch (Exception ex)
        {
            ServerTracing.EndPublish(item, ex.Message);
            throw;
        }
    }

    private async Task<PublishResponse> PublishAndWaitAsync(Partition partition, PublishItem item, AckWaiter? waiter, WirePublishRequest request, GrpcCallContext context)
    {
        await broker.PublishAsync(partition, item, context.CancellationToken).ConfigureAwait(false);
        await ForwardToNatsAsync(partition, item, request, context.CancellationToken).ConfigureAwait(false);
        if (waiter is null)
        {
            return new PublishResponse(); // fire and forget, as Liftbridge without a deadline or with AckPolicy NONE
        }

        var ack = await waiter.Task.WaitAsync(context.CancellationToken).ConfigureAwait(false);
        return ack.AckError switch
        {
            Ack.Types.Error.Ok => new PublishResponse { Ack = ack },
            Ack.Types.Error.IncorrectOffset => throw new GrpcException(GrpcStatusCode.Unknown, "incorrect expected offset"), // quirk 4 (kept)
            Ack.Types.Error.TooLarge => throw new InvalidRequestException(TooLargeMessage),
            Ack.Types.Error.Encryption => throw new BrokerInternalException("encryption failed on partition"),
            _ when item.RefusalReason == StorageErrors.DiskFullMessage => throw new StorageFullException(),
            _ when item.RefusalReason == PublishErrors.LeaderChanged => throw new PartitionUnavailableException(PublishErrors.LeaderChanged),
            _ when item.RefusalReason == PublishErrors.LeaderStorageFull => throw new PartitionUnavailableException(PublishErrors.LeaderStorageFull),
            _ when item.RefusalReason == PublishErrors.NotEnoughReplicasAfterAppend => throw new PreconditionFailedException(PublishErrors.NotEnoughReplicasAfterAppend),
            _ => throw new BrokerInternalException(ApiErrors.InternalMessage),
        };
    }

    /// <summary>
    /// The clustering.replication.max.bytes check, made here so every gRPC path refuses an oversized message
    /// the same way whatever its ack policy and deadline (the partition checks again for NATS ingest).
    /// </summary>
    private void CheckSize(PublishItem item)
    {
        if (IsTooLarge(item))
        {
            throw new InvalidRequestException(TooLargeMessage);
        }

        DuplicateWindow.ThrowIfInvalidId(item.Headers);
    }

    private bool IsTooLarge(PublishItem item) => item.PayloadSize > broker.Options.Clustering.ReplicationMaxBytes;

    /// <summary>NATS hook: with NATS configured, the other streams on the subject and plain NATS subscribers get the message too (docs/nats.md).</summary>
    private ValueTask ForwardToNatsAsync(Partition partition, PublishItem item, WirePublishRequest request, CancellationToken cancellationToken) =>
        broker.Context.Nats is { } nats ? nats.ForwardAsync(broker, partition, item, request, cancellationToken) : ValueTask.CompletedTask;

    /// <summary>With NATS attached, a publish that names an ack inbox also gets its ack there, as in Liftbridge (docs/nats.md).</summary>
    private IAckReceiver? WithNatsAck(IAckReceiver? receiver, string ackInbox) =>
        ackInbox.Length > 0 && broker.Context.Nats is { } nats ? new Nats.NatsAckCopy(receiver, nats) : receiver;

    /// <summary>Publish's checks after the empty-stream one: stream, partition, readonly, OCC with NONE.</summary>
    private Partition CheckPublish(WirePublishRequest request)
    {
        if (!broker.TryGetStream(request.Stream, out var stream))
        {
            throw new NotFoundException($"no such stream: {request.Stream}");
        }

        if (!stream.TryGetPartition(request.Partition, out var partition))
        {
            throw new NotFoundException($"no such partition: {request.Partition}");
        }

        if (partition.IsReadonly)
        {
            throw new PreconditionFailedException($"readonly partition: {request.Partition}");
        }

        if (stream.Settings.OptimisticConcurrencyControl && request.AckPolicy == AckPolicy.None)
        {
            throw new InvalidRequestException("stream with concurrency control must have AckPolicy set");
        }

        return partition;
    }

    internal static PublishItem NewItem(WirePublishRequest request, Partition partition, IAckReceiver? receiver)
    {
        var headers = request.HeaderEntries == 0 ? null : request.GetHeaders();
        var subject = partition.Subject;
        ReadOnlyMemory<byte> subjectUtf8 = partition.SubjectUtf8;
        if (headers is not null && headers.Remove(PublishItem.ForwardedSubjectHeader, out var forwarded))
        {
            // A PublishToSubject another broker forwarded here keeps the subject it was published to, when that
            // subject is one the stream takes (a client cannot name any other this way).
            var published = System.Text.Encoding.UTF8.GetString(forwarded.Span);
            if (Subjects.Matches(partition.Stream.Subject, published))
            {
                subject = published;
                subjectUtf8 = forwarded;
            }
        }

        return new()
        {
            Key = request.Key.IsEmpty ? null : request.Key,
            Value = request.Value.IsEmpty ? null : request.Value,
            Headers = PublishItem.BuildHeaders(headers, subjectUtf8, ReadOnlyMemory<byte>.Empty),
            Subject = subject,
            AckInbox = request.AckInbox,
            CorrelationIdUtf8 = request.CorrelationIdUtf8,
            AckPolicy = request.AckPolicy,
            ExpectedOffset = request.ExpectedOffset, // quirk 3 (kept): 0 is a real expectation, only -1 means any
            Receiver = receiver,
        };
    }

    private async Task PublishAsyncAsync(IAsyncEnumerable<WirePublishRequest> requests, GrpcStreamWriter<object> responses, GrpcCallContext context)
    {
        var session = new PublishAsyncSession(responses, context.CancellationToken);
        var caller = authz?.Identify(context.ClientCertificate);
        var requestReader = requests.GetAsyncEnumerator(context.CancellationToken);
        var reading = false; // a MoveNextAsync is outstanding: the reader cannot be disposed then
        try
        {
            var next = requestReader.MoveNextAsync();
            reading = true;
            while (await next.ConfigureAwait(false))
            {
                reading = false;
                var request = requestReader.Current;

                // Start reading the next request now: if it is already buffered, this one is part of a
                // burst and goes to the partition's writer loop, which appends the burst as one batch;
                // a lone request (a synchronous publisher) is appended on this thread instead.
                next = requestReader.MoveNextAsync();
                reading = true;
                await PublishOneAsync(session, request, moreComing: next.IsCompleted, caller, context).ConfigureAwait(false);
            }

            reading = false;
        }
        finally
        {
            if (!reading)
            {
                await requestReader.DisposeAsync().ConfigureAwait(false);
            }
        }

        // The client half-closed: give in-flight acks up to 5 s (Liftbridge's asyncAckTimeout).
        await session.DrainAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
    }

    /// <summary>One PublishAsync request: refusals become async errors on the stream, the ack comes through the session.</summary>
    private async Task PublishOneAsync(PublishAsyncSession session, WirePublishRequest request, bool moreComing, Authorizer.Caller? caller, GrpcCallContext context)
    {
        if (caller is { } who && authz!.Denial(who, request.Stream, "Publish") is { } denied)
        {
            // Liftbridge reports PERMISSION_DENIED and then stores the message anyway (its quirk); Sluice does not store it.
            session.SendError(request.CorrelationId, PublishAsyncError.Types.Code.PermissionDenied, denied);
            return;
        }

        Partition partition;
        try
        {
            partition = CheckPublish(request); // before the empty-stream check, as Liftbridge: "" gives NOT_FOUND
        }
        catch (NotFoundException ex)
        {
            session.SendError(request.CorrelationId, PublishAsyncError.Types.Code.NotFound, ex.Message);
            return;
        }
        catch (PreconditionFailedException ex)
        {
            session.SendError(request.CorrelationId, PublishAsyncError.Types.Code.Readonly, ex.Message);
            return;
        }
        catch (InvalidRequestException ex)
        {
            session.SendError(request.CorrelationId, PublishAsyncError.Types.Code.BadRequest, ex.Message);
            return;
        }

        var item = NewItem(request, partition, WithNatsAck(session, request.AckInbox));
        if (IsTooLarge(item))
        {
            session.SendError(request.CorrelationId, PublishAsyncError.Types.Code.BadRequest, TooLargeMessage);
            return;
        }

        if (DuplicateWindow.InvalidIdReason(item.Headers) is { } badId)
        {
            session.SendError(request.CorrelationId, PublishAsyncError.Types.Code.BadRequest, badId);
            return;
        }

        var tracked = request.AckPolicy != AckPolicy.None;
        if (tracked)
        {
            session.Begin();
        }

        if (ServerTracing.Enabled)
        {
            // Per message: the stream's own metadata describes whoever opened it, not each message, so only the
            // message's traceparent header is a parent here.
            item.Trace = ServerTracing.StartPublish(broker.ServerId, partition, item, ServerTracing.ParentOf(item.Headers, call: null), "publish", broker.Options.Monitor.TraceSampleRatio);
        }

        try
        {
            await broker.PublishAsync(partition, item, context.CancellationToken, moreComing).ConfigureAwait(false);
            await ForwardToNatsAsync(partition, item, request, context.CancellationToken).ConfigureAwait(false);
            if (!tracked)
            {
                ServerTracing.EndPublish(item); // AckPolicy NONE: no ack will end it
            }
        }
        catch (Exception ex) when (ApiErrors.IsMapped(ex))
        {
            ServerTracing.EndPublish(item, ex.Message);
            if (tracked)
            {
                session.Abandon();
            }

            // One failed message does not end the stream: it gets an async error with the status's text.
            var status = ApiErrors.ToGrpc(ex, _logger);
            var code = status.StatusCode == GrpcStatusCode.NotFound ? PublishAsyncError.Types.Code.NotFound : PublishAsyncError.Types.Code.Internal;
            session.SendError(request.CorrelationId, code, status.Detail);
        }
    }

    private Task<PublishToSubjectResponse> PublishToSubjectAsync(PublishToSubjectRequest request, GrpcCallContext context) =>
        ServerTracing.Enabled ? PublishToSubjectTracedAsync(request, context) : PublishToSubjectAsync(request, context, traced: null);

    /// <summary>Ends the publish spans of every stream that took the message when the call ends.</summary>
    private async Task<PublishToSubjectResponse> PublishToSubjectTracedAsync(PublishToSubjectRequest request, GrpcCallContext context)
    {
        var traced = new List<PublishItem>();
        try
        {
            var response = await PublishToSubjectAsync(request, context, traced).ConfigureAwait(false);
            traced.ForEach(t => ServerTracing.EndPublish(t));
            return response;
        }
        catch (Exception ex)
        {
            traced.ForEach(t => ServerTracing.EndPublish(t, ex.Message));
            throw;
        }
    }

    private async Task<PublishToSubjectResponse> PublishToSubjectAsync(PublishToSubjectRequest request, GrpcCallContext context, List<PublishItem>? traced)
    {
        Authorize(context, request.Subject, "PublishToSubject");
        if (!Subjects.IsValid(request.Subject) || request.Subject.AsSpan().IndexOfAny("*>") >= 0)
        {
            throw new InvalidRequestException("Subject is invalid");
        }

        // As in Liftbridge, where the message travels over NATS: a readonly partition drops it without an ack,
        // and a paused one is not subscribed to its subject (it stays paused; only Publish resumes it).
        var targets = broker.MatchSubject(request.Subject);
        targets.RemoveAll(p => p.IsReadonly || p.IsPaused);
        var waitForAck = context.Deadline is not null && request.AckPolicy != AckPolicy.None;
        var first = waitForAck && targets.Count > 0 ? new AckWaiter() : null;
        // The first partition's item is also the one checked, so a message no stream stores is refused alike.
        var receiver = WithNatsAck(first, request.AckInbox); // every partition that stores it acks on NATS, as each Liftbridge leader does
        var item = NewSubjectItem(request, receiver);
        CheckSize(item);
        for (var i = 0; i < targets.Count; i++)
        {
            var target = i == 0 ? item : NewSubjectItem(request, receiver);
            if (traced is not null)
            {
                target.Trace = ServerTracing.StartPublish(broker.ServerId, targets[i], target, ServerTracing.ParentOf(target.Headers, context), "publish_to_subject", broker.Options.Monitor.TraceSampleRatio);
                traced.Add(target);
            }

            await broker.PublishAsync(targets[i], target, context.CancellationToken).ConfigureAwait(false);
        }


        // NATS hook: plain NATS subscribers of the subject get the envelope (behaviour 14); local streams were served above.
        broker.Context.Nats?.PublishCopy(request);

        if (first is null)
        {
            if (waitForAck)
            {
                // No stream here stores it, so no ack will come: wait out the caller's deadline as Liftbridge does
                // (DEADLINE_EXCEEDED, which clients report as an ack timeout) instead of answering "no ack" as if
                // the caller had asked for none. Acks of other servers on NATS are not awaited.
                await Task.Delay(Timeout.Infinite, context.CancellationToken).ConfigureAwait(false);
            }

            return new PublishToSubjectResponse(); // nothing to wait for: no deadline, or NONE
        }

        var ack = await first.Task.WaitAsync(context.CancellationToken).ConfigureAwait(false);
        return new PublishToSubjectResponse { Ack = ack };
    }

    private static PublishItem NewSubjectItem(PublishToSubjectRequest request, IAckReceiver? receiver) => new()
    {
        Key = request.Key.IsEmpty ? null : request.Key.Memory,
        Value = request.Value.IsEmpty ? null : request.Value.Memory,
        Headers = PublishItem.BuildHeaders(request.Headers, request.Subject, string.Empty),
        Subject = request.Subject,
        AckInbox = request.AckInbox,
        CorrelationId = request.CorrelationId,
        AckPolicy = request.AckPolicy,
        Receiver = receiver,
    };

    // ---------------------------------------------------------------- cursors

    private async Task<SetCursorResponse> SetCursorAsync(SetCursorRequest request, GrpcCallContext context)
    {
        CheckCursorRequest(request.Stream, request.CursorId);
        Authorize(context, request.Stream, "SetCursor");
        Authorize(context, Broker.CursorsStreamName, "Publish"); // as in Liftbridge, where SetCursor publishes to __cursors as the caller
        await broker.Cursors.SetAsync(request.CursorId, request.Stream, request.Partition, request.Offset, context.CancellationToken).ConfigureAwait(false);
        return new SetCursorResponse();
    }

    private async Task<FetchCursorResponse> FetchCursorAsync(FetchCursorRequest request, GrpcCallContext context)
    {
        CheckCursorRequest(request.Stream, request.CursorId);
        Authorize(context, request.Stream, "FetchCursor");
        var offset = await broker.Cursors.FetchAsync(request.CursorId, request.Stream, request.Partition, context.CancellationToken).ConfigureAwait(false);
        return new FetchCursorResponse { Offset = offset };
    }

    private static void CheckCursorRequest(string stream, string cursorId)
    {
        if (stream.Length == 0)
        {
            throw new InvalidRequestException("No stream provided");
        }

        if (cursorId.Length == 0)
        {
            throw new InvalidRequestException("No cursorId provided");
        }
    }
}
