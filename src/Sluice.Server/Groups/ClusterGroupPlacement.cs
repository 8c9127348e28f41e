using Sluice.Server.Cluster;
using Sluice.Server.Streams;

namespace Sluice.Server.Groups;

/// <summary>
/// In a cluster: a new group's coordinator is the live broker coordinating the fewest groups; the controller moves
/// the groups of a broker whose lease is gone, and creates <c>__cursors</c> once groups exist.
/// </summary>
internal sealed class ClusterGroupPlacement(ClusterNode node, Broker broker) : IGroupPlacement
{
    public string ChooseCoordinator(IReadOnlyDictionary<string, int> coordinatorLoad)
    {
        var live = node.View.Current.Brokers.Keys.ToList();
        if (live.Count == 0)
        {
            return broker.ServerId;
        }

        return live.OrderBy(id => coordinatorLoad.GetValueOrDefault(id)).ThenBy(id => id, StringComparer.Ordinal).First();
    }

    public bool IsAlive(string brokerId) => node.View.Current.IsAlive(brokerId);

    public bool MovesDeadCoordinators => node.IsLive && node.Controller is { } controller && controller.IsController(node.View.Current);

    public int PartitionCount(string stream) =>
        node.View.Current.Streams.TryGetValue(stream, out var entry) ? Math.Max(1, entry.Record.Request.Partitions) : 0;

    /// <summary>
    /// The controller creates <c>__cursors</c> when it sees groups (ClusterNode.GroupsInUse); a join waits for it a while so
    /// the member's first FetchCursor finds it, then answers anyway: the join itself is done, and the client retries cursors.
    /// </summary>
    public async Task EnsureCursorsStreamAsync(CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + CursorsWait;
        while (!broker.Cursors.Enabled && DateTime.UtcNow < deadline)
        {
            await node.View.WaitForChangeAsync(TimeSpan.FromMilliseconds(200), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The controller creates internal streams a lease TTL after its election; beyond that a join does not wait.</summary>
    private TimeSpan CursorsWait => node.Settings.LeaseTtl + TimeSpan.FromSeconds(2);
}
