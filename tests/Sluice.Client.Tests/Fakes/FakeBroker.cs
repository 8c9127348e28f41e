using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Server.Grpc;
using Api = Sluice.Protocol.Api;

namespace Sluice.Client.Tests.Fakes;

/// <summary>One broker of a <see cref="FakeCluster"/>: a real gRPC server with fake proto.API handlers.</summary>
internal sealed class FakeBroker(FakeCluster cluster, string id)
{
    private GrpcServer? _server;

    public string Id { get; } = id;

    public int Port { get; private set; }

    public bool IsRunning => _server is not null;

    public string Address => $"127.0.0.1:{Port}";

    /// <summary>Starts (or restarts, on the same port) the broker.</summary>
    public async Task StartAsync()
    {
        var registry = new GrpcMethodRegistry();
        Register(registry);
        var server = new GrpcServer(GrpcServerOptions.Default with { Port = Port, ShutdownTimeout = TimeSpan.FromSeconds(2), Tls = cluster.Tls }, registry);
        await server.StartAsync();
        Port = server.Port;
        _server = server;
    }

    /// <summary>Stops the broker: running calls end UNAVAILABLE, new connections are refused.</summary>
    public async Task StopAsync()
    {
        if (_server is { } server)
        {
            _server = null;
            await server.DisposeAsync();
        }
    }

    private void Register(GrpcMethodRegistry registry)
    {
        const string Api = "proto.API";
        registry
            .AddUnary<CreateStreamRequest, CreateStreamResponse>(Api, "CreateStream", CreateStreamRequest.Parser, (r, _) =>
            {
                Record("CreateStream", r);
                cluster.CreateStream(r);
                return ValueTask.FromResult(new CreateStreamResponse());
            })
            .AddUnary<DeleteStreamRequest, DeleteStreamResponse>(Api, "DeleteStream", DeleteStreamRequest.Parser, (r, _) =>
            {
                Record("DeleteStream", r);
                cluster.DeleteStream(r.Name);
                return ValueTask.FromResult(new DeleteStreamResponse());
            })
            .AddUnary<PauseStreamRequest, PauseStreamResponse>(Api, "PauseStream", PauseStreamRequest.Parser, (r, _) =>
            {
                Record("PauseStream", r);
                foreach (var partition in SelectPartitions(r.Name, r.Partitions))
                {
                    partition.Paused = true;
                    partition.PauseTimestamp = FakePartition.NowNanoseconds();
                    partition.Stream.ResumeAll = r.ResumeAll;
                    partition.Signal();
                }

                return ValueTask.FromResult(new PauseStreamResponse());
            })
            .AddUnary<SetStreamReadonlyRequest, SetStreamReadonlyResponse>(Api, "SetStreamReadonly", SetStreamReadonlyRequest.Parser, (r, _) =>
            {
                Record("SetStreamReadonly", r);
                foreach (var partition in SelectPartitions(r.Name, r.Partitions))
                {
                    partition.Readonly = r.Readonly;
                    partition.ReadonlyTimestamp = FakePartition.NowNanoseconds();
                    partition.Signal();
                }

                return ValueTask.FromResult(new SetStreamReadonlyResponse());
            })
            .AddUnary<FetchMetadataRequest, FetchMetadataResponse>(Api, "FetchMetadata", FetchMetadataRequest.Parser, (r, _) =>
            {
                Record("FetchMetadata", r);
                return ValueTask.FromResult(cluster.Metadata(r));
            })
            .AddUnary<FetchPartitionMetadataRequest, FetchPartitionMetadataResponse>(Api, "FetchPartitionMetadata", FetchPartitionMetadataRequest.Parser, (r, _) =>
            {
                Record("FetchPartitionMetadata", r);
                lock (cluster.Gate)
                {
                    var partition = cluster.GetStream(r.Stream)?.Partitions.ElementAtOrDefault(r.Partition)
                        ?? throw new GrpcException(GrpcStatusCode.NotFound, "partition not found");
                    if (partition.Leader != Id)
                    {
                        throw new GrpcException(GrpcStatusCode.FailedPrecondition, "The request should be sent to partition leader");
                    }

                    return ValueTask.FromResult(new FetchPartitionMetadataResponse { Metadata = partition.ToMetadata() });
                }
            })
            .AddUnary<SetCursorRequest, SetCursorResponse>(Api, "SetCursor", SetCursorRequest.Parser, (r, _) =>
            {
                Record("SetCursor", r);
                cluster.SetCursor(CursorKey(r.CursorId, r.Stream, r.Partition), r.Offset);
                return ValueTask.FromResult(new SetCursorResponse());
            })
            .AddUnary<FetchCursorRequest, FetchCursorResponse>(Api, "FetchCursor", FetchCursorRequest.Parser, (r, _) =>
            {
                Record("FetchCursor", r);
                return ValueTask.FromResult(new FetchCursorResponse { Offset = cluster.GetCursor(CursorKey(r.CursorId, r.Stream, r.Partition)) ?? -1 });
            })
            .AddUnary<PublishToSubjectRequest, PublishToSubjectResponse>(Api, "PublishToSubject", PublishToSubjectRequest.Parser, PublishToSubjectAsync)
            .AddServerStreaming<SubscribeRequest, Message>(Api, "Subscribe", SubscribeRequest.Parser, SubscribeAsync)
            .AddDuplexStreaming<PublishRequest, PublishResponse>(Api, "PublishAsync", PublishRequest.Parser, PublishAsyncAsync);
    }

    private void Record(string method, IMessage request) => cluster.Record(this, method, request);

    private List<FakePartition> SelectPartitions(string name, Google.Protobuf.Collections.RepeatedField<int> ids)
    {
        lock (cluster.Gate)
        {
            var stream = cluster.RequireStream(name, GrpcStatusCode.NotFound, "stream does not exist");
            if (ids.Count == 0)
            {
                return stream.Partitions;
            }

            return ids.Select(i => stream.Partitions.ElementAtOrDefault(i) ?? throw new GrpcException(GrpcStatusCode.NotFound, "partition does not exist")).ToList();
        }
    }

    /// <summary>Checks cursors are enabled and this broker leads the cursor's partition, like Liftbridge.</summary>
    private string CursorKey(string cursorId, string stream, int partition)
    {
        if (string.IsNullOrEmpty(stream))
        {
            throw new GrpcException(GrpcStatusCode.InvalidArgument, "No stream provided");
        }

        if (string.IsNullOrEmpty(cursorId))
        {
            throw new GrpcException(GrpcStatusCode.InvalidArgument, "No cursorId provided");
        }

        lock (cluster.Gate)
        {
            var cursors = cluster.GetStream("__cursors") ?? throw new GrpcException(GrpcStatusCode.Internal, "Cursors stream does not exist");
            var target = FakeCluster.CursorPartition(cursorId, stream, partition, cursors.Partitions.Count);
            if (cursors.Partitions[target].Leader != Id)
            {
                throw new GrpcException(GrpcStatusCode.FailedPrecondition, $"Server not leader for cursors partition {target}");
            }
        }

        return $"{cursorId},{stream},{partition}";
    }

    private async ValueTask<PublishToSubjectResponse> PublishToSubjectAsync(PublishToSubjectRequest r, GrpcCallContext context)
    {
        Record("PublishToSubject", r);
        cluster.CallTraceParents.Enqueue(("PublishToSubject", context.RequestHeader("traceparent")));
        Message? stored = null;
        lock (cluster.Gate)
        {
            var target = cluster.GetAllPartitions().FirstOrDefault(p => p.PartitionSubject == r.Subject);
            if (target is not null)
            {
                stored = target.Append(r.Key, r.Value, r.Headers);
            }
        }

        if (stored is null || r.AckPolicy == Api.AckPolicy.None || context.Deadline is null)
        {
            if (stored is null && r.AckPolicy != Api.AckPolicy.None && context.Deadline is not null)
            {
                // No stream on the subject: no ack ever comes; wait out the deadline like Liftbridge.
                await Task.Delay(Timeout.Infinite, context.CancellationToken);
            }

            return new PublishToSubjectResponse();
        }

        return new PublishToSubjectResponse { Ack = AckFor(stored, r.CorrelationId, r.AckInbox, r.AckPolicy) };
    }

    private static Ack AckFor(Message stored, string correlationId, string ackInbox, Api.AckPolicy policy) => new()
    {
        Stream = stored.Stream,
        PartitionSubject = stored.Subject.Split('.')[0],
        MsgSubject = stored.Subject,
        Offset = stored.Offset,
        AckInbox = ackInbox,
        CorrelationId = correlationId,
        AckPolicy = policy,
        ReceptionTimestamp = stored.Timestamp,
        CommitTimestamp = FakePartition.NowNanoseconds(),
    };

    private async Task PublishAsyncAsync(IAsyncEnumerable<PublishRequest> requests, GrpcStreamWriter<PublishResponse> responses, GrpcCallContext context)
    {
        var inbox = $"lift.ack.{Guid.NewGuid():N}";
        await foreach (var r in requests)
        {
            Record("PublishAsync", r);
            if (cluster.DropAcks)
            {
                continue;
            }

            var response = Publish(r, inbox);
            if (response is not null)
            {
                await responses.WriteAsync(response, context.CancellationToken);
            }
        }
    }

    /// <summary>One PublishAsync request, checked in Liftbridge's order (reference §1.3, §3.4).</summary>
    private PublishResponse? Publish(PublishRequest r, string inbox)
    {
        PublishResponse Error(PublishAsyncError.Types.Code code, string message) => new()
        {
            CorrelationId = r.CorrelationId,
            Ack = new Ack(),
            AsyncError = new PublishAsyncError { Code = code, Message = message },
        };

        if (cluster.NextAsyncFault() is { } fault)
        {
            return new PublishResponse { CorrelationId = r.CorrelationId, Ack = new Ack(), AsyncError = fault };
        }

        lock (cluster.Gate)
        {
            var stream = cluster.GetStream(r.Stream);
            if (stream is null)
            {
                return Error(PublishAsyncError.Types.Code.NotFound, $"no such stream: {r.Stream}");
            }

            var partition = stream.Partitions.ElementAtOrDefault(r.Partition);
            if (partition is null)
            {
                return Error(PublishAsyncError.Types.Code.NotFound, $"no such partition: {r.Partition}");
            }

            if (partition.Readonly)
            {
                return Error(PublishAsyncError.Types.Code.Readonly, $"readonly partition: {r.Partition}");
            }

            if (stream.Occ && r.AckPolicy == Api.AckPolicy.None)
            {
                return Error(PublishAsyncError.Types.Code.BadRequest, "stream with concurrency control must have AckPolicy set");
            }

            if (stream.Occ && r.ExpectedOffset != -1 && r.ExpectedOffset != partition.Messages.Count)
            {
                return Error(PublishAsyncError.Types.Code.IncorrectOffset, "incorrect expected offset");
            }

            if (partition.Paused)
            {
                foreach (var p in stream.ResumeAll ? stream.Partitions : [partition])
                {
                    p.Paused = false;
                }
            }

            var stored = partition.Append(r.Key, r.Value, r.Headers);
            return r.AckPolicy == Api.AckPolicy.None
                ? null
                : new PublishResponse { CorrelationId = r.CorrelationId, Ack = AckFor(stored, r.CorrelationId, inbox, r.AckPolicy) };
        }
    }

    /// <summary>Liftbridge's subscribe: checks, the empty handshake frame, then messages until the stop offset (reference §3.9).</summary>
    private async Task SubscribeAsync(SubscribeRequest r, GrpcStreamWriter<Message> responses, GrpcCallContext context)
    {
        Record("Subscribe", r);
        FakePartition partition;
        long next;
        long stop;
        lock (cluster.Gate)
        {
            partition = cluster.GetStream(r.Stream)?.Partitions.ElementAtOrDefault(r.Partition)
                ?? throw new GrpcException(GrpcStatusCode.NotFound, "No such partition");
            if (partition.Leader != Id && !r.ReadISRReplica)
            {
                throw new GrpcException(GrpcStatusCode.FailedPrecondition, "Server not partition leader");
            }

            if (partition.Paused)
            {
                if (!r.Resume)
                {
                    // As the real broker (docs/broker.md): a paused partition has no running leader.
                    throw new GrpcException(GrpcStatusCode.FailedPrecondition, "Partition is paused; subscribe with resume=true to resume it");
                }

                partition.Paused = false;
            }

            var messages = partition.Messages;
            var count = messages.Count;
            next = r.StartPosition switch
            {
                Api.StartPosition.Offset => Math.Clamp(r.StartOffset, 0, count),
                Api.StartPosition.Earliest => 0,
                Api.StartPosition.Latest => Math.Max(count - 1, 0),
                Api.StartPosition.Timestamp => messages.FindIndex(m => m.Timestamp >= r.StartTimestamp) is var i and >= 0 ? i : count,
                _ => count,
            };
            stop = r.StopPosition switch
            {
                Api.StopPosition.StopOffset => r.StopOffset,
                Api.StopPosition.StopLatest => count == 0 ? throw new GrpcException(GrpcStatusCode.ResourceExhausted, "Stream is empty") : count - 1,
                Api.StopPosition.StopTimestamp => messages.FindLastIndex(m => m.Timestamp <= r.StopTimestamp),
                _ => long.MaxValue,
            };
            if (stop < next && r.StopPosition != Api.StopPosition.StopOnCancel)
            {
                throw new GrpcException(GrpcStatusCode.InvalidArgument, $"Stop offset is before start offset: {stop} < {next}");
            }
        }

        await responses.WriteAsync(new Message(), context.CancellationToken); // the handshake
        while (true)
        {
            Task changed;
            var batch = new List<Message>();
            lock (cluster.Gate)
            {
                changed = partition.Changed;
                if (partition.Deleted)
                {
                    throw new GrpcException(GrpcStatusCode.NotFound, "Stream deleted");
                }

                if (partition.Paused)
                {
                    throw new GrpcException(GrpcStatusCode.FailedPrecondition, "Partition paused");
                }

                while (next < partition.Messages.Count && next <= stop)
                {
                    batch.Add(partition.Messages[(int)next++]);
                }

                if (batch.Count == 0 && partition.Readonly && next >= partition.Messages.Count)
                {
                    throw new GrpcException(GrpcStatusCode.ResourceExhausted, "Partition is readonly");
                }
            }

            foreach (var message in batch)
            {
                await responses.WriteAsync(message, context.CancellationToken);
            }

            if (next > stop)
            {
                throw new GrpcException(GrpcStatusCode.ResourceExhausted, "Stop offset reached");
            }

            if (batch.Count == 0)
            {
                await changed.WaitAsync(context.CancellationToken);
            }
        }
    }
}
