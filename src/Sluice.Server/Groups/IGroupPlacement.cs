using Sluice.Server.Streams;

namespace Sluice.Server.Groups;

/// <summary>What differs between a single node and a cluster for consumer groups: who coordinates, and who creates <c>__cursors</c>.</summary>
internal interface IGroupPlacement
{
    /// <summary>The coordinator of a new group, given how many groups each broker coordinates now.</summary>
    string ChooseCoordinator(IReadOnlyDictionary<string, int> coordinatorLoad);

    /// <summary>True while <paramref name="brokerId"/> is a live member (a dead coordinator's groups move).</summary>
    bool IsAlive(string brokerId);

    /// <summary>True on the one broker that moves the groups of dead coordinators (this server, or the controller).</summary>
    bool MovesDeadCoordinators { get; }

    /// <summary>The stream's partition count as the metadata says, 0 when it does not exist.</summary>
    int PartitionCount(string stream);

    /// <summary>Makes sure the cursors stream exists after a join (groups keep their positions there).</summary>
    Task EnsureCursorsStreamAsync(CancellationToken cancellationToken);
}

/// <summary>A single node coordinates every group itself and creates the cursors stream on its broker.</summary>
internal sealed class SingleNodeGroupPlacement(Broker broker) : IGroupPlacement
{
    public string ChooseCoordinator(IReadOnlyDictionary<string, int> coordinatorLoad) => broker.ServerId;

    public bool IsAlive(string brokerId) => brokerId == broker.ServerId;

    public bool MovesDeadCoordinators => true; // a group coordinated by another id (the server id was changed) comes here

    public int PartitionCount(string stream) => broker.TryGetStream(stream, out var s) ? s.Partitions.Length : 0;

    public async Task EnsureCursorsStreamAsync(CancellationToken cancellationToken)
    {
        if (broker.Cursors.Enabled)
        {
            return;
        }

        var request = broker.InternalStreamRequests(clusterSize: 1, groupsInUse: true).Single(r => r.Name == Broker.CursorsStreamName);
        try
        {
            await broker.CreateStreamAsync(request, internalStream: true, cancellationToken).ConfigureAwait(false);
        }
        catch (StreamExistsException)
        {
            // Another join created it first.
        }
    }
}
