using System.Collections.Immutable;
using Sluice.Protocol.Internal;
using Sluice.Server.Cluster;

namespace Sluice.Server.Tests.Cluster;

/// <summary>The controller's rules for a partition's leadership, given which brokers are alive.</summary>
public sealed class ControllerDecisionTests
{
    private static ClusterSnapshot Alive(params string[] brokers) => new()
    {
        Brokers = brokers.ToImmutableDictionary(b => b, b => new BrokerRecord { Id = b }, StringComparer.Ordinal),
    };

    private static PartitionLeadership Leadership(string leader, string[] isr, long epoch = 10) => new(["b1", "b2", "b3"], leader, isr, epoch, 5);

    [Fact]
    public void AHealthyPartitionIsLeftAlone() =>
        Assert.Null(Controller.Desired(Alive("b1", "b2", "b3"), Leadership("b1", ["b1", "b2", "b3"])));

    [Fact]
    public void ADeadLeaderIsReplacedByTheFirstLiveInSyncReplicaInTheSameDecisionThatDropsIt()
    {
        var desired = Controller.Desired(Alive("b2", "b3"), Leadership("b1", ["b1", "b3"]))!;
        Assert.Equal("b3", desired.Leader); // b2 is alive but not in sync
        Assert.Equal(["b3"], desired.Isr);
        Assert.Equal(11, desired.LeaderEpoch);
    }

    [Fact]
    public void ADeadFollowerLeavesTheIsrWithoutAnEpochChange()
    {
        var desired = Controller.Desired(Alive("b1", "b3"), Leadership("b1", ["b1", "b2", "b3"]))!;
        Assert.Equal("b1", desired.Leader);
        Assert.Equal(["b1", "b3"], desired.Isr);
        Assert.Equal(10, desired.LeaderEpoch);
    }

    [Fact]
    public void WithNoLiveInSyncReplicaThereIsNoLeaderAndTheIsrIsKept()
    {
        var desired = Controller.Desired(Alive("b2"), Leadership("b1", ["b1", "b3"]))!;
        Assert.Equal(string.Empty, desired.Leader);
        Assert.Equal(["b1", "b3"], desired.Isr);

        // The first of that ISR to come back leads; an out-of-sync replica never does.
        var none = new PartitionLeadership(["b1", "b2", "b3"], string.Empty, ["b1", "b3"], 11, 6);
        Assert.Null(Controller.Desired(Alive("b2"), none));
        Assert.Equal("b3", Controller.Desired(Alive("b2", "b3"), none)!.Leader);
    }

    [Fact]
    public void ThePreferredReplicaLeadsAgainOnceItIsInSync()
    {
        Assert.Null(Controller.Desired(Alive("b1", "b2", "b3"), Leadership("b2", ["b2", "b3"])));
        var desired = Controller.Desired(Alive("b1", "b2", "b3"), Leadership("b2", ["b1", "b2", "b3"]))!;
        Assert.Equal("b1", desired.Leader);
        Assert.Equal(11, desired.LeaderEpoch);
    }

    [Fact]
    public void PlacementSpreadsFirstReplicasOverTheBrokers()
    {
        var replicas = Controller.Place(Alive("b1", "b2", "b3"), partitions: 6, replicationFactor: 2).ToList();
        Assert.All(replicas, r => Assert.Equal(2, r.Replicas.Distinct().Count()));
        Assert.Equal(2, replicas.Count(r => r.Replicas[0] == "b1"));
        Assert.Equal(2, replicas.Count(r => r.Replicas[0] == "b2"));
        Assert.Equal(2, replicas.Count(r => r.Replicas[0] == "b3"));
    }
}
