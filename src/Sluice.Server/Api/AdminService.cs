using Microsoft.Extensions.Logging;
using Sluice.Protocol.Admin;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Server.Authorization;
using Sluice.Server.Cluster;
using Sluice.Server.Groups;
using Sluice.Server.Grpc;
using Sluice.Server.Streams;
using Broker = Sluice.Server.Streams.Broker;

namespace Sluice.Server.Api;

/// <summary>
/// The Sluice-only <c>sluice.admin.v1.Admin</c> service (proto/admin.proto): lists consumer groups and describes one
/// with its members, assignments, committed positions and lag. Kept out of <c>proto.API</c> so Liftbridge's clients
/// see Liftbridge's service unchanged.
/// </summary>
/// <remarks>
/// Any broker answers. Group state comes from the metadata store. A description is forwarded once to the group's
/// coordinator, the only broker that knows the members' heartbeats; each partition's offsets come from its leader and
/// the group's cursor from the leader of its <c>__cursors</c> partition, here or over a peer call in a cluster.
/// </remarks>
internal sealed partial class AdminService(Broker broker, ConsumerGroups groups, ClusterNode? node, Authorizer? authz = null)
{
    public const string ServiceName = "sluice.admin.v1.Admin";

    private const string LeaderUnavailable = "partition leader unavailable";

    private const string CursorUnavailable = "cursor unavailable";

    // A peer that does not answer in this time is reported as unavailable: a description must not hang on one broker.
    private static readonly TimeSpan PeerTimeout = TimeSpan.FromSeconds(5);

    private readonly ILogger _logger = broker.Loggers.CreateLogger<AdminService>();

    public void Register(GrpcMethodRegistry registry) => registry
        .AddUnary<ListConsumerGroupsRequest, ListConsumerGroupsResponse>(ServiceName, "ListConsumerGroups", ListConsumerGroupsRequest.Parser, (r, c) => Run(() => { authz?.Check(c, "*", "ListConsumerGroups"); return ListAsync(c.CancellationToken); }))
        .AddUnary<DescribeConsumerGroupRequest, DescribeConsumerGroupResponse>(ServiceName, "DescribeConsumerGroup", DescribeConsumerGroupRequest.Parser, (r, c) => Run(() => { authz?.Check(c, r.GroupId, "DescribeConsumerGroup"); return DescribeAsync(r, c.CancellationToken); }))
        .AddUnary<DescribeClusterRequest, DescribeClusterResponse>(ServiceName, "DescribeCluster", DescribeClusterRequest.Parser, (_, c) => Run(() => { authz?.Check(c, "*", "DescribeCluster"); return Task.FromResult(DescribeCluster()); }));

    private DescribeClusterResponse DescribeCluster()
    {
        if (node is null)
        {
            return new DescribeClusterResponse { ServerId = broker.ServerId, Brokers = { broker.ServerId } };
        }

        var snapshot = node.View.Current;
        return new DescribeClusterResponse
        {
            ServerId = broker.ServerId,
            Clustered = true,
            Controller = snapshot.Controller?.BrokerId ?? string.Empty,
            MetadataRevision = snapshot.Revision,
            Brokers = { snapshot.Brokers.Keys.Order(StringComparer.Ordinal) },
        };
    }

    private async ValueTask<T> Run<T>(Func<Task<T>> action)
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

    private async Task<ListConsumerGroupsResponse> ListAsync(CancellationToken cancellationToken)
    {
        var response = new ListConsumerGroupsResponse();
        foreach (var view in await groups.ListAsync(cancellationToken).ConfigureAwait(false))
        {
            response.Groups.Add(new ConsumerGroupSummary
            {
                GroupId = view.Id,
                Coordinator = view.Coordinator,
                Epoch = view.Epoch,
                Members = view.Record.Members.Count,
                Streams = { view.Record.Members.SelectMany(m => m.Streams).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal) },
            });
        }

        return response;
    }

    internal async Task<DescribeConsumerGroupResponse> DescribeAsync(DescribeConsumerGroupRequest request, CancellationToken cancellationToken)
    {
        if (request.GroupId.Length == 0)
        {
            throw new InvalidRequestException("No groupId provided");
        }

        var view = await groups.RefreshAsync(request.GroupId, cancellationToken).ConfigureAwait(false)
            ?? throw new NotFoundException("consumer group does not exist");
        var coordinatorHere = view.Coordinator == broker.ServerId;
        if (!coordinatorHere && !request.Local && node?.PeerChannel(view.Coordinator) is { } coordinator)
        {
            try
            {
                return await coordinator.UnaryAsync(
                    $"/{ServiceName}/DescribeConsumerGroup",
                    new DescribeConsumerGroupRequest { GroupId = request.GroupId, Local = true },
                    DescribeConsumerGroupResponse.Parser,
                    PeerTimeout,
                    cancellationToken).ConfigureAwait(false);
            }
            catch (GrpcException ex) when (ex.StatusCode is GrpcStatusCode.Unavailable or GrpcStatusCode.DeadlineExceeded or GrpcStatusCode.Unimplemented)
            {
                // The coordinator is going or gone: answer from here, without heartbeats.
                LogCoordinatorUnreachable(_logger, ex, request.GroupId, view.Coordinator);
            }
        }

        var ages = coordinatorHere ? groups.HeartbeatAges(view.Id) : [];
        var response = new DescribeConsumerGroupResponse { GroupId = view.Id, Coordinator = view.Coordinator, Epoch = view.Epoch };
        var assigned = new List<(string Stream, int Partition, string Consumer)>();
        foreach (var member in view.Record.Members.OrderBy(m => m.Id, StringComparer.Ordinal))
        {
            var description = new ConsumerGroupMemberDescription { ConsumerId = member.Id, Streams = { member.Streams } };
            description.Assignments.AddRange(member.Assignments.Select(a => a.Clone()));
            if (ages.TryGetValue(member.Id, out var age))
            {
                description.LastHeartbeatAgeMs = (long)age.TotalMilliseconds;
            }

            response.Members.Add(description);
            assigned.AddRange(member.Assignments.SelectMany(a => a.Partitions.Select(p => (a.Stream, p, member.Id))));
        }

        var partitions = await Task.WhenAll(assigned
            .OrderBy(a => a.Stream, StringComparer.Ordinal).ThenBy(a => a.Partition)
            .Select(a => DescribePartitionAsync(view.Id, a.Stream, a.Partition, a.Consumer, cancellationToken))).ConfigureAwait(false);
        response.Partitions.AddRange(partitions);
        return response;
    }

    private async Task<ConsumerGroupPartitionDescription> DescribePartitionAsync(string groupId, string stream, int partition, string consumer, CancellationToken cancellationToken)
    {
        var description = new ConsumerGroupPartitionDescription { Stream = stream, Partition = partition, ConsumerId = consumer, HighWatermark = -1, NewestOffset = -1 };
        var offsets = await OffsetsAsync(stream, partition, cancellationToken).ConfigureAwait(false);
        var cursor = await CursorAsync(CursorStore.GroupCursorPrefix + groupId, stream, partition, cancellationToken).ConfigureAwait(false);
        var errors = new List<string>();
        if (offsets is { } o)
        {
            (description.HighWatermark, description.NewestOffset) = o;
        }
        else
        {
            errors.Add(LeaderUnavailable);
        }

        if (cursor is null)
        {
            errors.Add(CursorUnavailable);
        }
        else if (cursor >= 0)
        {
            description.CommittedOffset = cursor.Value;
            if (offsets is not null && CursorStore.Lag(description.HighWatermark, cursor.Value) is { } lag)
            {
                description.Lag = lag;
            }
        }

        description.Error = string.Join("; ", errors);
        return description;
    }

    /// <summary>The partition's high watermark and newest offset as its leader reports them; null when it cannot be asked.</summary>
    private async Task<(long HighWatermark, long NewestOffset)?> OffsetsAsync(string stream, int id, CancellationToken cancellationToken)
    {
        if (!broker.TryGetStream(stream, out var s) || !s.TryGetPartition(id, out var partition))
        {
            return null; // deleted meanwhile: the group's next rebalance drops it
        }

        var leader = partition.Leadership?.Leader;
        if (leader is null || leader == broker.ServerId)
        {
            return (partition.HighWatermark, partition.NewestOffset);
        }

        try
        {
            var metadata = await CallPeerAsync(leader, "/" + ApiService.ServiceName + "/FetchPartitionMetadata", new FetchPartitionMetadataRequest { Stream = stream, Partition = id }, FetchPartitionMetadataResponse.Parser, cancellationToken).ConfigureAwait(false);
            return metadata is null ? null : (metadata.Metadata.HighWatermark, metadata.Metadata.NewestOffset);
        }
        catch (GrpcException ex)
        {
            LogPeerFailed(_logger, ex, "FetchPartitionMetadata", leader);
            return null;
        }
    }

    /// <summary>The cursor's offset (-1: none stored, also when there is no cursors stream); null when its leader cannot be asked.</summary>
    private async Task<long?> CursorAsync(string cursorId, string stream, int id, CancellationToken cancellationToken)
    {
        if (broker.Cursors.PartitionOf(cursorId, stream, id) is not { } target)
        {
            return -1;
        }

        var leader = target.Leadership?.Leader;
        try
        {
            if (leader is null || leader == broker.ServerId)
            {
                return await broker.Cursors.FetchAsync(cursorId, stream, id, cancellationToken).ConfigureAwait(false);
            }

            if (leader.Length == 0)
            {
                return null;
            }

            var response = await CallPeerAsync(leader, "/" + ApiService.ServiceName + "/FetchCursor", new FetchCursorRequest { CursorId = cursorId, Stream = stream, Partition = id }, FetchCursorResponse.Parser, cancellationToken).ConfigureAwait(false);
            return response?.Offset;
        }
        catch (Exception ex) when (ex is GrpcException or BrokerException or IOException)
        {
            LogPeerFailed(_logger, ex, "FetchCursor", leader ?? broker.ServerId);
            return null;
        }
    }

    private async Task<TResponse?> CallPeerAsync<TRequest, TResponse>(string brokerId, string path, TRequest request, Google.Protobuf.MessageParser<TResponse> parser, CancellationToken cancellationToken)
        where TRequest : class, Google.Protobuf.IMessage<TRequest>
        where TResponse : class, Google.Protobuf.IMessage<TResponse>
    {
        if (node?.PeerChannel(brokerId) is not { } channel)
        {
            return null;
        }

        return await channel.UnaryAsync(path, request, parser, PeerTimeout, cancellationToken).ConfigureAwait(false);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "DescribeConsumerGroup {Group}: coordinator {Coordinator} did not answer; answering without heartbeats")]
    private static partial void LogCoordinatorUnreachable(ILogger logger, Exception exception, string group, string coordinator);

    [LoggerMessage(Level = LogLevel.Information, Message = "DescribeConsumerGroup: {Method} on broker {Broker} failed")]
    private static partial void LogPeerFailed(ILogger logger, Exception exception, string method, string broker);
}
