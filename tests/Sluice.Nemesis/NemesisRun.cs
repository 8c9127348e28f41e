using System.Diagnostics;
using System.Globalization;
using Sluice.Client;

namespace Sluice.Nemesis;

/// <summary>One injected fault: what, on whom, and when (ms since the run started).</summary>
internal sealed record FaultRecord(int Index, FaultKind Kind, string Target, IReadOnlyList<int> Affected, double InjectedMs)
{
    public double HealedMs { get; set; }

    /// <summary>When every partition again had a leader and a full ISR that every broker agreed on; null when not within the bound.</summary>
    public double? RecoveredMs { get; set; }

    /// <summary>When the next fault started (or the publishers stopped): the end of this fault's window.</summary>
    public double WindowEndMs { get; set; }
}

/// <summary>What a run measured and what the checker found.</summary>
internal sealed record NemesisResult(
    string System,
    NemesisOptions Options,
    IReadOnlyList<FaultRecord> Faults,
    IReadOnlyList<AckRecord> Acks,
    IReadOnlyList<FailureRecord> Failures,
    IReadOnlyList<string> Violations,
    IReadOnlyList<string> Crashes,
    long MessagesStored,
    long FailedButStored,
    long LostAcks,
    long UncheckedAcks,
    long Duplicates,
    int Resubscribes,
    double LoadStartedMs,
    double DurationMs);

/// <summary>
/// Starts the cluster, creates a replicated stream, runs the workload, injects each fault of the plan in turn (inject,
/// hold, heal, wait for recovery, quiet), stops the load and checks the result.
/// </summary>
internal static class NemesisRun
{
    public static async Task<NemesisResult> RunAsync(NemesisOptions options, CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(options.WorkDirectory);
        var clock = Stopwatch.StartNew();
        var log = options.Log ?? TextWriter.Null;
        void Say(string line) => log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{clock.Elapsed.TotalSeconds,7:0.0}s] {line}"));

        await using var cluster = await StartClusterAsync(options, cancellationToken).ConfigureAwait(false);
        using var probe = new Probe(cluster);
        var addresses = cluster.BrokerIds.Select(cluster.ClientAddress).ToList();
        Say($"{cluster.Name}: {string.Join(", ", cluster.BrokerIds.Select(b => $"{b} {cluster.ClientAddress(b)}"))}; logs in {options.WorkDirectory}");

        await CreateStreamAsync(options, addresses, cancellationToken).ConfigureAwait(false);
        if (!await WaitRecoveredAsync(options, probe, cancellationToken).ConfigureAwait(false))
        {
            throw new InvalidOperationException($"the stream's {options.Partitions} partitions did not get a leader and a full ISR within {options.RecoveryTimeout.TotalSeconds:0} s (logs in {options.WorkDirectory})");
        }

        var faults = new List<FaultRecord>();
        var violations = new List<string>();
        var crashes = new List<string>();
        var random = new Random(options.Seed);
        await using var workload = new Workload(options, addresses, clock);
        workload.Start();
        var loadStarted = clock.Elapsed.TotalMilliseconds;
        Say($"load: {options.Publishers} publishers (acks ALL) and {options.Partitions} subscribers on {options.Partitions} partitions, replication factor {options.Brokers}");
        await Task.Delay(options.Quiet, cancellationToken).ConfigureAwait(false);

        for (var i = 0; i < options.Faults.Count; i++)
        {
            var kind = options.Faults[i];
            if (!cluster.Supports(kind))
            {
                Say($"fault {i + 1}/{options.Faults.Count}: {NemesisOptions.KebabName(kind)} does not apply to {cluster.Name}; skipped");
                continue;
            }

            var fault = await InjectAsync(i, kind, cluster, probe, options, random, clock, cancellationToken).ConfigureAwait(false);
            if (faults.Count > 0)
            {
                faults[^1].WindowEndMs = fault.InjectedMs;
            }

            faults.Add(fault);
            Say($"fault {i + 1}/{options.Faults.Count}: {NemesisOptions.KebabName(kind)} on {fault.Target} (affects {Describe(fault.Affected)})");
            await Task.Delay(options.Hold, cancellationToken).ConfigureAwait(false);
            await HealAsync(fault, cluster).ConfigureAwait(false);
            fault.HealedMs = clock.Elapsed.TotalMilliseconds;
            foreach (var broker in cluster.BrokerIds.Where(b => !cluster.IsRunning(b)))
            {
                // Nothing the nemesis did stops a process for good: one that is gone now crashed.
                crashes.Add($"fault {i + 1} ({NemesisOptions.KebabName(kind)} on {fault.Target}): {broker} exited by itself; see {cluster.LogPath(broker)}");
                Say($"  {broker} crashed; starting it again");
                await cluster.RestartAsync(broker).ConfigureAwait(false);
            }

            var recovered = await WaitRecoveredAsync(options, probe, cancellationToken).ConfigureAwait(false);
            fault.RecoveredMs = recovered ? clock.Elapsed.TotalMilliseconds : null;
            if (!recovered)
            {
                violations.Add($"fault {i + 1} ({NemesisOptions.KebabName(kind)} on {fault.Target}): the cluster did not have a leader and a full ISR on every partition within {options.RecoveryTimeout.TotalSeconds:0} s of the heal");
            }

            Say($"  healed; {(!recovered ? "NOT recovered" : $"full ISR everywhere {(fault.RecoveredMs!.Value - fault.HealedMs) / 1000:0.0} s after the heal")}; acked so far {workload.Acks.Count}, failed {workload.Failures.Count}");
            await Task.Delay(options.Quiet, cancellationToken).ConfigureAwait(false);
        }

        await workload.StopPublishersAsync().ConfigureAwait(false);
        if (faults.Count > 0)
        {
            faults[^1].WindowEndMs = clock.Elapsed.TotalMilliseconds;
        }

        var duration = clock.Elapsed.TotalMilliseconds;
        Say($"publishers stopped: {workload.Acks.Count} acked, {workload.Failures.Count} failed; checking");
        if (!await WaitRecoveredAsync(options, probe, cancellationToken).ConfigureAwait(false))
        {
            violations.Add($"after the last fault the cluster did not have a leader and a full ISR on every partition within {options.RecoveryTimeout.TotalSeconds:0} s");
        }

        await WaitSubscribersAsync(options, probe, workload, cancellationToken).ConfigureAwait(false);
        await workload.StopSubscribersAsync().ConfigureAwait(false);
        var checker = new Checker(options, probe, workload);
        await checker.CheckAsync().ConfigureAwait(false);
        violations.AddRange(checker.Violations);
        Say($"checked: {checker.MessagesStored} messages stored, {violations.Count} violations");
        return new NemesisResult(cluster.Name, options, faults, [.. workload.Acks], [.. workload.Failures], violations, crashes,
            checker.MessagesStored, checker.FailedButStored, checker.LostAcks, checker.UncheckedAcks, checker.Duplicates, workload.Resubscribes, loadStarted, duration);
    }

    private static async Task<IClusterUnderTest> StartClusterAsync(NemesisOptions options, CancellationToken cancellationToken) => options.SystemName switch
    {
        "sluice" => await SluiceCluster.StartAsync(options, cancellationToken).ConfigureAwait(false),
        "liftbridge" => await LiftbridgeCluster.StartAsync(options, cancellationToken).ConfigureAwait(false),
        _ => throw new ArgumentException($"unknown system '{options.SystemName}': sluice or liftbridge"),
    };

    private static async Task CreateStreamAsync(NemesisOptions options, IReadOnlyList<string> addresses, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.RecoveryTimeout);
        while (true)
        {
            try
            {
                await using var client = await SluiceClient.ConnectAsync(addresses, cancellationToken: deadline.Token).ConfigureAwait(false);
                await client.CreateStreamAsync(options.Stream, options.Stream, new StreamOptions { Partitions = options.Partitions, ReplicationFactor = options.Brokers }, deadline.Token).ConfigureAwait(false);
                return;
            }
            catch (StreamExistsException)
            {
                return; // an earlier attempt got through
            }
            catch (Exception e) when (e is SluiceException or IOException && !deadline.IsCancellationRequested)
            {
                await Task.Delay(250, deadline.Token).ConfigureAwait(false); // brokers still registering
            }
        }
    }

    private static async Task<FaultRecord> InjectAsync(int index, FaultKind kind, IClusterUnderTest cluster, Probe probe, NemesisOptions options, Random random, Stopwatch clock, CancellationToken cancellationToken)
    {
        var leaders = new Dictionary<int, string?>();
        for (var p = 0; p < options.Partitions; p++)
        {
            leaders[p] = await probe.TryLeaderAsync(options.Stream, p).ConfigureAwait(false);
        }

        List<int> LedBy(string broker) => [.. leaders.Where(l => l.Value == broker).Select(l => l.Key)];
        List<int> all = [.. Enumerable.Range(0, options.Partitions)];
        var someLeader = leaders[index % options.Partitions] ?? leaders.Values.FirstOrDefault(l => l is not null)
            ?? throw new InvalidOperationException("no partition has a leader before the fault");

        // A follower: the broker that leads the fewest partitions (with as many partitions as brokers each leads one,
        // so it is a follower of the others and a leader of its own, and both sides of a full disk are seen).
        string Follower() => cluster.BrokerIds.OrderBy(b => LedBy(b).Count).ThenBy(_ => random.Next()).First();

        double Now() => clock.Elapsed.TotalMilliseconds;
        switch (kind)
        {
            case FaultKind.LeaderKill:
                {
                    var record = new FaultRecord(index, kind, someLeader, LedBy(someLeader), Now());
                    await cluster.KillAsync(someLeader).ConfigureAwait(false);
                    return record;
                }

            case FaultKind.ControllerKill:
                {
                    var controller = await cluster.ControllerAsync(cancellationToken).ConfigureAwait(false) ?? someLeader;
                    var record = new FaultRecord(index, kind, controller, LedBy(controller), Now());
                    await cluster.KillAsync(controller).ConfigureAwait(false);
                    return record;
                }

            case FaultKind.Pause:
                {
                    var record = new FaultRecord(index, kind, someLeader, LedBy(someLeader), Now());
                    cluster.Freeze(someLeader);
                    return record;
                }

            case FaultKind.Partition:
                {
                    // Alternate: a link that stalls (packets lost) and one that also resets what is open.
                    var reset = index % 2 == 1;
                    var record = new FaultRecord(index, kind, someLeader + (reset ? " (reset)" : " (stall)"), LedBy(someLeader), Now());
                    cluster.Isolate(someLeader, reset);
                    return record;
                }

            case FaultKind.EtcdKill:
                {
                    var member = index % cluster.MetadataMembers;
                    var record = new FaultRecord(index, kind, "etcd e" + (member + 1).ToString(CultureInfo.InvariantCulture), all, Now());
                    await cluster.KillMetadataMemberAsync(member).ConfigureAwait(false);
                    return record;
                }

            case FaultKind.DiskFull:
                {
                    var follower = Follower();
                    var record = new FaultRecord(index, kind, follower, all, Now());
                    cluster.FillDisk(follower);
                    return record;
                }

            case FaultKind.SlowFollower:
                {
                    var follower = Follower();
                    var record = new FaultRecord(index, kind, follower, all, Now());
                    cluster.SlowLinks(follower, options.SlowLatency);
                    return record;
                }

            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown fault");
        }
    }

    private static async Task HealAsync(FaultRecord fault, IClusterUnderTest cluster)
    {
        var broker = fault.Target.Split(' ')[0];
        switch (fault.Kind)
        {
            case FaultKind.LeaderKill or FaultKind.ControllerKill:
                await cluster.RestartAsync(broker).ConfigureAwait(false);
                break;
            case FaultKind.Pause:
                cluster.Thaw(broker);
                break;
            case FaultKind.Partition:
                cluster.Reconnect(broker);
                break;
            case FaultKind.EtcdKill:
                await cluster.RestartMetadataMemberAsync(fault.Index % cluster.MetadataMembers).ConfigureAwait(false);
                break;
            case FaultKind.DiskFull:
                cluster.FreeDisk(broker);
                break;
            case FaultKind.SlowFollower:
                cluster.SlowLinks(broker, TimeSpan.Zero);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(fault), fault.Kind, "unknown fault");
        }
    }

    /// <summary>Waits until every partition has a leader and a full ISR every broker agrees on; false after the recovery timeout.</summary>
    private static async Task<bool> WaitRecoveredAsync(NemesisOptions options, Probe probe, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < options.RecoveryTimeout)
        {
            var healthy = true;
            for (var p = 0; p < options.Partitions && healthy; p++)
            {
                healthy = await probe.TryHealthyAsync(options.Stream, p).ConfigureAwait(false) is not null;
            }

            if (healthy)
            {
                return true;
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }

        return false;
    }

    /// <summary>Waits (bounded) until each subscriber has received everything up to its partition's high watermark.</summary>
    private static async Task WaitSubscribersAsync(NemesisOptions options, Probe probe, Workload workload, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        for (var p = 0; p < options.Partitions; p++)
        {
            while (deadline.Elapsed < options.RecoveryTimeout)
            {
                var leader = await probe.TryLeaderAsync(options.Stream, p).ConfigureAwait(false);
                var view = leader is null ? null : await probe.TryLeaderViewAsync(leader, options.Stream, p).ConfigureAwait(false);
                if (view is not null && workload.NextOffset(p) > view.HighWatermark)
                {
                    break;
                }

                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static string Describe(IReadOnlyList<int> partitions) =>
        partitions.Count == 0 ? "no partition" : "partition" + (partitions.Count > 1 ? "s " : " ") + string.Join(",", partitions);
}
