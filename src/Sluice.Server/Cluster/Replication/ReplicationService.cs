using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Internal;
using Sluice.Server.Api;
using Sluice.Server.Grpc;
using Sluice.Server.Streams;
using Sluice.Storage.Log;

namespace Sluice.Server.Cluster.Replication;

/// <summary>
/// The brokers' own service, <c>sluice.internal.Replication</c>, on the same port as the client API:
/// followers fetch from leaders (<c>Fetch</c>, <c>EpochEnd</c>) and leaders ask the controller for ISR
/// changes (<c>AlterIsr</c>). Every call names a registered broker and its lease (its epoch); anything
/// else is refused with PermissionDenied.
/// </summary>
internal sealed partial class ReplicationService(ClusterNode node, Broker broker, ILogger logger)
{
    public const string ServiceName = "sluice.internal.Replication";

    public void Register(GrpcMethodRegistry registry) => registry
        .AddDuplexStreaming<FetchRequest, FetchResponse>(ServiceName, "Fetch", FetchRequest.Parser, FetchAsync)
        .AddUnary<EpochEndRequest, EpochEndResponse>(ServiceName, "EpochEnd", EpochEndRequest.Parser, (r, c) => Run(() => EpochEnd(r, c)))
        .AddUnary<AlterIsrRequest, AlterIsrResponse>(ServiceName, "AlterIsr", AlterIsrRequest.Parser, (r, c) => Run(() => AlterIsrAsync(r, c)))
        .AddUnary<ResumePartitionRequest, ResumePartitionResponse>(ServiceName, "Resume", ResumePartitionRequest.Parser, (r, c) => Run(() => ResumeAsync(r, c)));

    private async ValueTask<T> Run<T>(Func<ValueTask<T>> action)
    {
        try
        {
            return await action().ConfigureAwait(false);
        }
        catch (Exception ex) when (ApiErrors.IsMapped(ex))
        {
            throw ApiErrors.ToGrpc(ex, logger);
        }
    }

    /// <summary>Refuses a caller that is not the registered broker it names; marks the connection of one that is.</summary>
    private void CheckPeer(string brokerId, long lease, GrpcCallContext context)
    {
        if (!node.View.Current.Brokers.TryGetValue(brokerId, out var record) || record.Lease != lease)
        {
            throw new GrpcException(GrpcStatusCode.PermissionDenied, $"broker '{brokerId}' with lease {lease} is not registered in the cluster");
        }

        // With TLS an id and a lease read from etcd are not proof enough: the caller's certificate (already checked
        // against tls.client.auth.ca, or the system store, by the handshake) must name the host the broker registered.
        if (broker.Options.Tls.Enabled)
        {
            var certificate = context.ClientCertificate
                ?? throw new GrpcException(GrpcStatusCode.PermissionDenied, $"broker '{brokerId}' must present its TLS certificate on internal calls");
            if (!certificate.MatchesHostname(record.Host))
            {
                throw new GrpcException(GrpcStatusCode.PermissionDenied, $"the TLS certificate presented for broker '{brokerId}' does not name its host {record.Host}");
            }
        }

        context.MarkPeerBroker();
    }

    private (LeaderReplication Replication, CommitLog Log) Led(string stream, int id, long epoch)
    {
        if (!broker.TryGetStream(stream, out var s) || !s.TryGetPartition(id, out var partition))
        {
            throw new GrpcException(GrpcStatusCode.NotFound, "No such partition");
        }

        if (partition.Runtime is not { Replication: { } replication, Log: var log })
        {
            throw new GrpcException(GrpcStatusCode.FailedPrecondition, "Server not partition leader");
        }

        if (epoch != replication.Epoch)
        {
            throw new GrpcException(GrpcStatusCode.FailedPrecondition, $"leader epoch mismatch: this leader has {replication.Epoch}, the request {epoch}");
        }

        return (replication, log);
    }

    private ValueTask<EpochEndResponse> EpochEnd(EpochEndRequest request, GrpcCallContext context)
    {
        CheckPeer(request.ReplicaId, request.BrokerLease, context);
        if (!broker.TryGetStream(request.Stream, out var s) || !s.TryGetPartition(request.Partition, out var partition) || partition.Runtime is not { Replication: not null, Log: var log })
        {
            throw new GrpcException(GrpcStatusCode.FailedPrecondition, "Server not partition leader");
        }

        // The largest epoch here at or below the asked one, and where it ends.
        var epoch = -1L;
        foreach (var (e, _) in log.LeaderEpochs)
        {
            if (e <= request.LeaderEpoch)
            {
                epoch = e;
            }
        }

        var end = epoch < 0 ? -1 : log.LastOffsetForLeaderEpoch(epoch);
        return ValueTask.FromResult(new EpochEndResponse { LeaderEpoch = epoch, EndOffset = end });
    }

    private async ValueTask<AlterIsrResponse> AlterIsrAsync(AlterIsrRequest request, GrpcCallContext context)
    {
        // The request names the leader and its epoch, which the controller checks against the metadata; the leader
        // must be a registered broker.
        if (!node.View.Current.Brokers.ContainsKey(request.LeaderId))
        {
            throw new GrpcException(GrpcStatusCode.PermissionDenied, $"broker '{request.LeaderId}' is not registered in the cluster");
        }

        return await node.Controller.AlterIsrAsync(request, context.CancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<ResumePartitionResponse> ResumeAsync(ResumePartitionRequest request, GrpcCallContext context)
    {
        if (!node.Controller.IsController(node.View.Current))
        {
            throw new PartitionUnavailableException("this broker is no longer the controller; try again");
        }

        await node.ResumeOnControllerAsync(request, context.CancellationToken).ConfigureAwait(false);
        return new ResumePartitionResponse();
    }

    /// <summary>
    /// One follower's fetch loop: each request says where the follower is; the answer carries the records from
    /// there (up to maxBytes) and the high watermark, or, with nothing new, waits up to the idle wait for data
    /// or a higher high watermark.
    /// </summary>
    private async Task FetchAsync(IAsyncEnumerable<FetchRequest> requests, GrpcStreamWriter<FetchResponse> responses, GrpcCallContext context)
    {
        var token = context.CancellationToken;
        var lastHw = long.MinValue;
        using var waiter = new FetchWaiter(token);
        await foreach (var request in requests.WithCancellation(token).ConfigureAwait(false))
        {
            CheckPeer(request.ReplicaId, request.BrokerLease, context);
            var (replication, log) = Led(request.Stream, request.Partition, request.LeaderEpoch);
            if (request.FetchOffset > log.NextOffset)
            {
                // The follower has what this leader never wrote: it must truncate first.
                throw new GrpcException(GrpcStatusCode.OutOfRange, $"fetch offset {request.FetchOffset} is past the leader's log end {log.NextOffset}");
            }

            replication.OnFetch(request.ReplicaId, request.FetchOffset, request.StorageFull);
            if (request.FetchOffset >= log.NextOffset && log.HighWatermark <= lastHw)
            {
                // Nothing new: wait for records, a higher high watermark or the idle wait (then the same high
                // watermark tells the follower this leader is alive).
                await waiter.WaitAsync(replication, log, request.FetchOffset, lastHw, node.IdleWait).ConfigureAwait(false);
                token.ThrowIfCancellationRequested();
                (replication, log) = Led(request.Stream, request.Partition, request.LeaderEpoch); // leadership may have ended meanwhile
            }

            var response = new FetchResponse { LeaderEpoch = replication.Epoch, LogStartOffset = Math.Max(0, log.OldestOffset) };
            if (request.FetchOffset < log.NextOffset)
            {
                var max = request.MaxBytes > 0 ? request.MaxBytes : node.MaxFetchBytes;
                using var batch = log.Read(request.FetchOffset, max);
                if (!batch.IsEmpty)
                {
                    response.Records = UnsafeByteOperations.UnsafeWrap(ReplicationFormat.Encode(batch.Records));
                    response.RecordCount = batch.Count;
                    replication.AddTraced(response, request.FetchOffset, batch.NextOffset);
                }
            }

            response.HighWatermark = log.HighWatermark;
            lastHw = response.HighWatermark;
            await responses.WriteAsync(response, token).ConfigureAwait(false);
        }
    }
}
