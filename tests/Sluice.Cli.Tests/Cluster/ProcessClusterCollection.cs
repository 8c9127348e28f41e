namespace Sluice.Cli.Tests.Cluster;

/// <summary>
/// The process cluster tests run one after another: each runs etcd and three brokers, one burns the CPU on purpose,
/// and together on two cores they would stretch each other's lease and failover timings.
/// </summary>
[CollectionDefinition(Name)]
public sealed class ProcessClusterCollection
{
    public const string Name = "process cluster";
}
