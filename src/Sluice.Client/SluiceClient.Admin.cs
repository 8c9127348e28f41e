using Sluice.Client.Internal;
using Sluice.Protocol.Admin;

namespace Sluice.Client;

// Sluice-only administration (proto/admin.proto). Internal for now: the `sluice group` commands use it; a public .NET
// API for group administration would need its own result types.
public sealed partial class SluiceClient
{
    private const string AdminPrefix = "/sluice.admin.v1.Admin/";

    /// <summary>Every consumer group. A Liftbridge server answers UNIMPLEMENTED (a <see cref="SluiceException"/> with that status).</summary>
    internal async Task<ListConsumerGroupsResponse> ListConsumerGroupsAsync(CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        return await InvokeAnyAsync(AdminPrefix + "ListConsumerGroups", new ListConsumerGroupsRequest(), ListConsumerGroupsResponse.Parser, RpcKind.Other, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>One group's members, assignments, committed positions and lag; NOT_FOUND for an unknown group.</summary>
    internal async Task<DescribeConsumerGroupResponse> DescribeConsumerGroupAsync(string groupId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(groupId);
        ThrowIfDisposed();
        return await InvokeAnyAsync(AdminPrefix + "DescribeConsumerGroup", new DescribeConsumerGroupRequest { GroupId = groupId }, DescribeConsumerGroupResponse.Parser, RpcKind.Other, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The controller and the live brokers as the answering broker sees them (UNIMPLEMENTED on Liftbridge).</summary>
    internal async Task<DescribeClusterResponse> DescribeClusterAsync(CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        return await InvokeAnyAsync(AdminPrefix + "DescribeCluster", new DescribeClusterRequest(), DescribeClusterResponse.Parser, RpcKind.Other, null, cancellationToken).ConfigureAwait(false);
    }
}
