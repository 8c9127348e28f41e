using Sluice.Server.Cluster;
using Sluice.Server.Streams;

namespace Sluice.Server.Groups;

/// <summary>In a cluster: coordinators are live brokers (the least loaded), and the controller creates <c>__cursors</c>.</summary>
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

    public Task EnsureCursorsStreamAsync(CancellationToken cancellationToken) =>
        broker.Cursors.Enabled
            ? Task.CompletedTask
            : throw new PreconditionFailedException("consumer groups in a cluster need the cursors stream: set cursors.stream.partitions (docs/consumer-groups.md)");
}
