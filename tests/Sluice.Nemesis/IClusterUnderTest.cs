namespace Sluice.Nemesis;

/// <summary>
/// A 3-broker system the nemesis can hurt: processes it can kill, stop and start again, and links it can cut or slow.
/// Clients reach every broker directly; only the links between brokers, and between a broker and the metadata
/// quorum, go through proxies the nemesis controls.
/// </summary>
internal interface IClusterUnderTest : IAsyncDisposable
{
    /// <summary>"Sluice" or "Liftbridge", for the report.</summary>
    string Name { get; }

    IReadOnlyList<string> BrokerIds { get; }

    /// <summary>The address clients dial for a broker (host:port).</summary>
    string ClientAddress(string broker);

    /// <summary>How many members the metadata quorum has that <see cref="KillMetadataMemberAsync"/> can kill (0 when none).</summary>
    int MetadataMembers { get; }

    /// <summary>The fault kinds this system can be given (a Liftbridge cluster has no etcd, for one).</summary>
    bool Supports(FaultKind kind);

    /// <summary>Where a broker's log goes, for the report.</summary>
    string LogPath(string broker);

    /// <summary>True while the broker's process runs (stopped by SIGSTOP counts as running).</summary>
    bool IsRunning(string broker);

    Task KillAsync(string broker);

    Task RestartAsync(string broker);

    /// <summary>SIGTERM, waiting for the broker to exit (it may hand its leaderships over first).</summary>
    Task StopGracefullyAsync(string broker);

    void Freeze(string broker);

    void Thaw(string broker);

    /// <summary>Stalls every link to and from the broker (clients excepted); with <paramref name="reset"/>, resets the open connections too.</summary>
    void Isolate(string broker, bool reset);

    void Reconnect(string broker);

    void SlowLinks(string broker, TimeSpan latency);

    void FillDisk(string broker);

    void FreeDisk(string broker);

    Task KillMetadataMemberAsync(int member);

    Task RestartMetadataMemberAsync(int member);

    /// <summary>The broker that assigns leaders now (Sluice's controller), or null when unknown.</summary>
    Task<string?> ControllerAsync(CancellationToken cancellationToken);
}

public enum FaultKind
{
    /// <summary>SIGKILL of a partition leader, restarted after the hold.</summary>
    LeaderKill,

    /// <summary>SIGKILL of the broker that assigns leaders, restarted after the hold.</summary>
    ControllerKill,

    /// <summary>SIGSTOP of a partition leader for the hold (longer than its lease), then SIGCONT.</summary>
    Pause,

    /// <summary>A partition leader cut off from the other brokers and from the metadata quorum for the hold.</summary>
    Partition,

    /// <summary>SIGKILL of one metadata (etcd) member, restarted after the hold.</summary>
    EtcdKill,

    /// <summary>A follower's file system filled to the last byte for the hold, then freed.</summary>
    DiskFull,

    /// <summary>Every link of a follower delayed for the hold.</summary>
    SlowFollower,
}
