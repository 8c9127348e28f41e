namespace Sluice.Storage.Log;

/// <summary>When appended bytes are forced to stable storage.</summary>
public enum DurabilityPolicy
{
    /// <summary>Never fsync; the OS writes pages back (Liftbridge's behaviour; replication gives durability).</summary>
    Never = 0,

    /// <summary>Fsync the active segment every <see cref="CommitLogOptions.FsyncInterval"/> when it has unsynced data.</summary>
    Interval = 1,

    /// <summary>An append returns only after fsync; concurrent appends share one fsync (group commit).</summary>
    Always = 2,
}
