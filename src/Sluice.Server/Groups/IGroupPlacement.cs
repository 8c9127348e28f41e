using Sluice.Server.Streams;

namespace Sluice.Server.Groups;

/// <summary>What differs between a single node and a cluster for consumer groups: who coordinates, and who creates <c>__cursors</c>.</summary>
internal interface IGroupPlacement
{
    /// <summary>The coordinator of a new group, given how many groups each broker coordinates now.</summary>
    string ChooseCoordinator(IReadOnlyDictionary<string, int> coordinatorLoad);

    /// <summary>True while <paramref name="brokerId"/> is a live member (a dead coordinator's groups move).</summary>
    bool IsAlive(string brokerId);

    /// <summary>Creates the cursors stream when it does not exist (groups keep their positions there).</summary>
    Task EnsureCursorsStreamAsync(CancellationToken cancellationToken);
}

/// <summary>A single node coordinates every group itself and creates the cursors stream on its broker.</summary>
internal sealed class SingleNodeGroupPlacement(Broker broker) : IGroupPlacement
{
    public string ChooseCoordinator(IReadOnlyDictionary<string, int> coordinatorLoad) => broker.ServerId;

    public bool IsAlive(string brokerId) => brokerId == broker.ServerId;

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
