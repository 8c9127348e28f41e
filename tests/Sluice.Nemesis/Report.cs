using System.Globalization;
using System.Text;

namespace Sluice.Nemesis;

/// <summary>Per-fault figures derived from the history, and the run's summary as markdown.</summary>
internal static class Report
{
    /// <summary>
    /// The longest time an affected partition went without an ALL ack, from the injection to the end of the fault's
    /// window (the next fault, or the end of the load): what a publisher to that partition waited at worst.
    /// </summary>
    public static double LongestGapMs(NemesisResult result, FaultRecord fault)
    {
        var partitions = fault.Affected.Count > 0 ? fault.Affected : Enumerable.Range(0, result.Options.Partitions).ToList();
        var longest = 0.0;
        foreach (var partition in partitions)
        {
            var previous = fault.InjectedMs;
            foreach (var acked in result.Acks.Where(a => a.Partition == partition && a.AckedMs > fault.InjectedMs && a.AckedMs <= fault.WindowEndMs).Select(a => a.AckedMs).Order())
            {
                longest = Math.Max(longest, acked - previous);
                previous = acked;
            }

            longest = Math.Max(longest, fault.WindowEndMs - previous);
        }

        return longest;
    }

    /// <summary>ALL acks per second over every partition while the fault was in place (injection to heal).</summary>
    public static double RateDuringFault(NemesisResult result, FaultRecord fault) =>
        result.Acks.Count(a => a.AckedMs > fault.InjectedMs && a.AckedMs <= fault.HealedMs) / Math.Max(0.001, (fault.HealedMs - fault.InjectedMs) / 1000);

    /// <summary>ALL acks per second under load outside every fault (injection to recovery).</summary>
    public static double QuietRate(NemesisResult result)
    {
        bool InFault(double t) => result.Faults.Any(f => t > f.InjectedMs && t <= (f.RecoveredMs ?? f.WindowEndMs));
        var faultMs = result.Faults.Sum(f => (f.RecoveredMs ?? f.WindowEndMs) - f.InjectedMs);
        var quietMs = Math.Max(1, result.DurationMs - result.LoadStartedMs - faultMs);
        return result.Acks.Count(a => !InFault(a.AckedMs)) / (quietMs / 1000);
    }

    public static string Markdown(NemesisResult result)
    {
        var text = new StringBuilder();
        var options = result.Options;
        var i = CultureInfo.InvariantCulture;
        text.Append(i, $"### {result.System}: {result.Faults.Count} faults in {result.DurationMs / 60000:0.0} min\n\n");
        text.Append(i, $"{options.Brokers} brokers, {(result.System == "Liftbridge" ? "one nats-server (its metadata is its own Raft)" : $"{options.EtcdMembers} etcd members")}, stream `{options.Stream}` with {options.Partitions} partitions, replication factor {options.Brokers}, min ISR {options.MinInsyncReplicas}; ")
            .Append(i, $"{options.Publishers} publishers (acks ALL, a message id each, one publish at a time), {options.Partitions} subscribers; each fault held {options.Hold.TotalSeconds:0} s.\n\n");
        text.Append("| fault | count | longest ALL-ack gap, median / max (s) | heal → full ISR, median / max (s) | acks/s during the fault (quiet: ")
            .Append(QuietRate(result).ToString("0", i)).Append(") | failed publishes |\n|---|---|---|---|---|---|\n");
        foreach (var group in result.Faults.GroupBy(f => f.Kind).OrderBy(g => g.Key))
        {
            var gaps = group.Select(f => LongestGapMs(result, f) / 1000).ToList();
            var heals = group.Select(f => f.RecoveredMs is { } r ? (r - f.HealedMs) / 1000 : double.NaN).ToList();
            var rates = group.Select(f => RateDuringFault(result, f)).ToList();
            var failed = group.Sum(f => result.Failures.Count(x => x.FailedMs > f.InjectedMs && x.FailedMs <= f.WindowEndMs));
            text.Append(i, $"| {NemesisOptions.KebabName(group.Key)} | {group.Count()} | {Median(gaps):0.0} / {gaps.Max():0.0} | {Median(heals):0.0} / {heals.Max():0.0} | {Median(rates):0} | {failed} |\n");
        }

        text.Append('\n');
        text.Append(i, $"- acked with ALL: {result.Acks.Count:N0}; failed publishes: {result.Failures.Count:N0} (of which stored anyway, once: {result.FailedButStored:N0})\n");
        text.Append(i, $"- **acked messages lost: {result.LostAcks}**{(result.UncheckedAcks > 0 ? $" (and {result.UncheckedAcks:N0} on partitions that could not be read at the check)" : "")}; stored twice: {result.Duplicates}; messages in the final logs: {result.MessagesStored:N0}; subscriber resubscribes: {result.Resubscribes}\n");
        text.Append(i, $"- broker crashes: {result.Crashes.Count}\n");
        foreach (var crash in result.Crashes)
        {
            text.Append("  - ").Append(crash).Append('\n');
        }

        text.Append(i, $"- violations: {result.Violations.Count}\n");
        foreach (var violation in result.Violations.Take(50))
        {
            text.Append("  - ").Append(violation).Append('\n');
        }

        if (result.Failures.Count > 0)
        {
            text.Append("- failed publishes by error: ");
            text.AppendJoin("; ", result.Failures.GroupBy(f => f.Error.Split(':')[0]).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} {g.Count()}"));
            text.Append('\n');
        }

        return text.ToString();
    }

    /// <summary>One line per fault, for the log.</summary>
    public static string Timeline(NemesisResult result)
    {
        var text = new StringBuilder("| # | fault | target | injected (s) | healed (s) | full ISR (s) | longest gap (s) |\n|---|---|---|---|---|---|---|\n");
        foreach (var f in result.Faults)
        {
            text.Append(CultureInfo.InvariantCulture, $"| {f.Index + 1} | {NemesisOptions.KebabName(f.Kind)} | {f.Target} | {f.InjectedMs / 1000:0.0} | {f.HealedMs / 1000:0.0} | {(f.RecoveredMs is { } r ? (r / 1000).ToString("0.0", CultureInfo.InvariantCulture) : "never")} | {LongestGapMs(result, f) / 1000:0.0} |\n");
        }

        return text.ToString();
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
