using Sluice.Protocol.Api;

namespace Sluice.Nemesis;

/// <summary>
/// After the last heal, with the publishers stopped: reads every replica's copy of every partition and proves the
/// promises. Every message acked with ALL is on every in-sync replica at its acked offset, once; the replicas agree
/// message for message up to the high watermark; no offset went to two messages; nothing appears that was never
/// published; each subscriber saw a gap-free, repeat-free prefix of the final log.
/// </summary>
internal sealed class Checker(NemesisOptions options, Probe probe, Workload workload)
{
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(60);

    public List<string> Violations { get; } = [];

    /// <summary>Messages in the final logs, summed over partitions (one replica's count).</summary>
    public long MessagesStored { get; private set; }

    /// <summary>Failed publishes whose message is in the log anyway (stored, but the ack was lost).</summary>
    public long FailedButStored { get; private set; }

    /// <summary>Acked messages not at their acked offset on the final log.</summary>
    public long LostAcks { get; private set; }

    /// <summary>Acked messages of partitions that could not be read at the check (reported as a violation too).</summary>
    public long UncheckedAcks { get; private set; }

    /// <summary>Messages stored more than once.</summary>
    public long Duplicates { get; private set; }

    public async Task CheckAsync()
    {
        var acks = workload.Acks.ToLookup(a => a.Partition);
        var failed = workload.Failures.Select(f => f.Message).ToHashSet(StringComparer.Ordinal);
        for (var partition = 0; partition < options.Partitions; partition++)
        {
            await CheckPartitionAsync(partition, [.. acks[partition]], failed).ConfigureAwait(false);
        }

        Violations.AddRange(workload.SubscriberErrors);
        Violations.AddRange(workload.ClientErrors);
    }

    private async Task CheckPartitionAsync(int partition, List<AckRecord> acks, HashSet<string> failed)
    {
        // Every in-sync replica when the ISR is full; otherwise what the leader holds, at least (what readers get).
        var healthy = await probe.TryHealthyAsync(options.Stream, partition).ConfigureAwait(false);
        var leader = healthy?.Leader ?? await probe.TryLeaderAsync(options.Stream, partition).ConfigureAwait(false);
        if (leader is null)
        {
            UncheckedAcks += acks.Count;
            Violations.Add($"partition {partition}: no leader at the check; its {acks.Count} acked messages could not be checked");
            return;
        }

        IReadOnlyList<string> readFrom = healthy is null ? [leader] : healthy.Isr;
        if (healthy is null)
        {
            Violations.Add($"partition {partition}: no full ISR at the check; checked the leader {leader}'s copy only");
        }

        var view = await probe.TryLeaderViewAsync(leader, options.Stream, partition).ConfigureAwait(false);
        if (view is null)
        {
            UncheckedAcks += acks.Count;
            Violations.Add($"partition {partition}: its leader {leader} did not answer FetchPartitionMetadata; its {acks.Count} acked messages could not be checked");
            return;
        }

        var hw = view.HighWatermark;
        var replicas = new Dictionary<string, List<Message>>(StringComparer.Ordinal);
        foreach (var broker in readFrom)
        {
            try
            {
                replicas[broker] = await probe.ReadReplicaAsync(broker, options.Stream, partition, hw, ReadTimeout).ConfigureAwait(false);
            }
            catch (Exception e) when (e is InvalidOperationException or OperationCanceledException or Protocol.Grpc.GrpcException or IOException)
            {
                Violations.Add($"partition {partition}: replica {broker} could not be read up to the high watermark {hw}: {e.Message}");
            }
        }

        if (replicas.Count == 0)
        {
            UncheckedAcks += acks.Count;
            return;
        }

        var reference = replicas.ContainsKey(leader) ? leader : replicas.Keys.First();
        var log = replicas[reference];
        foreach (var (broker, other) in replicas.Where(r => r.Key != reference))
        {
            CompareReplicas(partition, reference, log, broker, other);
        }

        MessagesStored += log.Count;
        var byOffset = new Dictionary<long, string>();
        var byName = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var i = 0; i < log.Count; i++)
        {
            var message = log[i];
            if (message.Offset != i)
            {
                Violations.Add($"partition {partition}: replica {reference} holds offset {message.Offset} at position {i} (a gap in the log)");
                break;
            }

            var name = Workload.Name(message.Value.Span);
            byOffset[message.Offset] = name;
            if (!workload.WasAttempted(name))
            {
                Violations.Add($"partition {partition}: offset {message.Offset} holds '{name}', which no publisher sent");
            }

            if (!byName.TryAdd(name, message.Offset))
            {
                Duplicates++;
                Violations.Add($"partition {partition}: '{name}' is stored twice, at offsets {byName[name]} and {message.Offset} (its message id should have kept it once)");
            }
            else if (failed.Contains(name))
            {
                FailedButStored++;
            }
        }

        foreach (var group in acks.GroupBy(a => a.Offset).Where(g => g.Select(a => a.Message).Distinct(StringComparer.Ordinal).Count() > 1))
        {
            Violations.Add($"partition {partition}: offset {group.Key} was acked for {string.Join(" and ", group.Select(a => $"'{a.Message}'"))}");
        }

        foreach (var ack in acks)
        {
            if (!byOffset.TryGetValue(ack.Offset, out var stored))
            {
                LostAcks++;
                Violations.Add($"partition {partition}: '{ack.Message}' was acked at offset {ack.Offset}, above the final high watermark {hw}: lost");
            }
            else if (stored != ack.Message)
            {
                LostAcks++;
                Violations.Add($"partition {partition}: '{ack.Message}' was acked at offset {ack.Offset}, which holds '{stored}'"
                    + (byName.TryGetValue(ack.Message, out var at) ? $" (it is at offset {at})" : " (it is nowhere: lost)"));
            }
        }

        foreach (var seen in workload.Seen[partition])
        {
            if (byOffset.TryGetValue(seen.Offset, out var stored) && stored != seen.Message)
            {
                Violations.Add($"partition {partition}: the subscriber received '{seen.Message}' at offset {seen.Offset}, which finally holds '{stored}'");
            }
        }
    }

    private void CompareReplicas(int partition, string referenceBroker, List<Message> reference, string broker, List<Message> other)
    {
        if (reference.Count != other.Count)
        {
            Violations.Add($"partition {partition}: replica {referenceBroker} holds {reference.Count} messages up to the high watermark and {broker} {other.Count}");
        }

        for (var i = 0; i < Math.Min(reference.Count, other.Count); i++)
        {
            if (!reference[i].Equals(other[i]))
            {
                Violations.Add($"partition {partition}: replicas {referenceBroker} and {broker} differ at offset {reference[i].Offset} "
                    + $"('{Workload.Name(reference[i].Value.Span)}' at {reference[i].Timestamp} vs '{Workload.Name(other[i].Value.Span)}' at {other[i].Timestamp})");
                return;
            }
        }
    }
}
