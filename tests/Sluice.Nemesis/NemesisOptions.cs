namespace Sluice.Nemesis;

/// <summary>What a run does: the cluster, the workload and the faults, in order.</summary>
internal sealed record NemesisOptions
{
    /// <summary>The built `sluice.dll` the brokers run.</summary>
    public required string SluiceDll { get; init; }

    /// <summary>Where logs, configs and data go (the caller creates and removes it).</summary>
    public required string WorkDirectory { get; init; }

    /// <summary>The system under test: "sluice" or "liftbridge".</summary>
    public string SystemName { get; init; } = "sluice";

    /// <summary>The Liftbridge server binary, for <see cref="SystemName"/> "liftbridge".</summary>
    public string? LiftbridgeBinary { get; init; }

    public int Brokers { get; init; } = 3;

    public int EtcdMembers { get; init; } = 3;

    public int MinInsyncReplicas { get; init; } = 2;

    /// <summary>YAML appended to every broker's config.</summary>
    public string ExtraConfig { get; init; } = "";

    /// <summary>Each broker's data directory on a tmpfs of this size (needed by <see cref="FaultKind.DiskFull"/>); null = plain directories.</summary>
    public long? TmpfsBytes { get; init; }

    public string Stream { get; init; } = "nemesis";

    public int Partitions { get; init; } = 3;

    /// <summary>Publishers, each with its own client, one publish awaited at a time, spread over the partitions.</summary>
    public int Publishers { get; init; } = 6;

    public int MessageBytes { get; init; } = 256;

    /// <summary>The faults, in the order they are injected (one at a time).</summary>
    public IReadOnlyList<FaultKind> Faults { get; init; } = [];

    /// <summary>How long each fault lasts before it is healed (a pause or a partition must outlast the broker lease, 3 s).</summary>
    public TimeSpan Hold { get; init; } = TimeSpan.FromSeconds(8);

    /// <summary>Load without faults before the first fault and after each recovery.</summary>
    public TimeSpan Quiet { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>The bound on "serves again": after a heal, every partition must have a leader and a full ISR within it.</summary>
    public TimeSpan RecoveryTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Latency added to a slow follower's links.</summary>
    public TimeSpan SlowLatency { get; init; } = TimeSpan.FromMilliseconds(100);

    public int Seed { get; init; } = 1;

    /// <summary>Progress lines (null for none).</summary>
    public TextWriter? Log { get; init; }

    /// <summary>Parses "leader-kill:20,partition:10" (kinds in kebab case) into a schedule, interleaving kinds as evenly as possible.</summary>
    public static IReadOnlyList<FaultKind> ParsePlan(string plan)
    {
        var counts = new List<(FaultKind Kind, int Count)>();
        foreach (var part in plan.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var colon = part.IndexOf(':', StringComparison.Ordinal);
            var name = colon < 0 ? part : part[..colon];
            var count = colon < 0 ? 1 : int.Parse(part[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            var kind = Enum.GetValues<FaultKind>().FirstOrDefault(k => KebabName(k) == name, (FaultKind)(-1));
            if (kind == (FaultKind)(-1) || count < 0)
            {
                throw new ArgumentException($"unknown fault '{part}': expected kind[:count] with kind one of {string.Join(", ", Enum.GetValues<FaultKind>().Select(KebabName))}");
            }

            counts.Add((kind, count));
        }

        // Spread each kind over the run: fault i of a kind with n faults sits at (i + 0.5) / n of the way.
        return [.. counts.SelectMany(c => Enumerable.Range(0, c.Count).Select(i => (c.Kind, At: (i + 0.5) / c.Count)))
            .OrderBy(f => f.At).ThenBy(f => f.Kind).Select(f => f.Kind)];
    }

    public static string KebabName(FaultKind kind) => kind switch
    {
        FaultKind.LeaderKill => "leader-kill",
        FaultKind.ControllerKill => "controller-kill",
        FaultKind.Pause => "pause",
        FaultKind.Partition => "partition",
        FaultKind.EtcdKill => "etcd-kill",
        FaultKind.DiskFull => "disk-full",
        FaultKind.SlowFollower => "slow-follower",
        _ => kind.ToString(),
    };
}
