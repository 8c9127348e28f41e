using Sluice.Protocol.Api;
using Sluice.Protocol.Internal;

namespace Sluice.Server.Groups;

/// <summary>
/// Hands a group's partitions to its members. The counts are Liftbridge's rule: streams in name order, each
/// partition to the member subscribed to that stream with the fewest partitions so far across all streams (ties
/// to the smallest consumer id). Which partitions a member gets is sticky: a member keeps the ones it already
/// had up to its count, and only the rest move, so a join or a leave moves as few partitions as that balance allows
/// (Liftbridge hands every partition out again from partition 0). A partition nobody keeps goes to its owner under
/// Liftbridge's rule when that member has room, so with nothing to keep the result is Liftbridge's.
/// </summary>
internal static class GroupAssignor
{
    /// <summary>
    /// Recomputes every member's assignments in place. <paramref name="partitionCount"/> gives a stream's partitions
    /// (0 for a stream that does not exist, whose partitions nobody gets).
    /// </summary>
    public static void Assign(IReadOnlyList<ConsumerGroupMember> members, Func<string, int> partitionCount)
    {
        var ordered = members.OrderBy(m => m.Id, StringComparer.Ordinal).ToList();
        var streams = ordered.SelectMany(m => m.Streams).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var totals = ordered.ToDictionary(m => m.Id, _ => 0, StringComparer.Ordinal);
        var targets = new Dictionary<(string Member, string Stream), int>();
        var ideal = new Dictionary<(string Stream, int Partition), string>(); // Liftbridge's owner, used for partitions nobody keeps
        foreach (var stream in streams)
        {
            var subscribers = ordered.Where(m => m.Streams.Contains(stream)).ToList();
            for (var p = 0; p < partitionCount(stream); p++)
            {
                var least = subscribers.MinBy(m => (totals[m.Id], m.Id), Comparer.Instance)!;
                totals[least.Id]++;
                ideal[(stream, p)] = least.Id;
                targets[(least.Id, stream)] = targets.GetValueOrDefault((least.Id, stream)) + 1;
            }
        }

        var previous = ordered.ToDictionary(
            m => m.Id,
            m => m.Assignments.ToDictionary(a => a.Stream, a => a.Partitions.ToList(), StringComparer.Ordinal),
            StringComparer.Ordinal);
        var next = ordered.ToDictionary(m => m.Id, _ => new SortedDictionary<string, SortedSet<int>>(StringComparer.Ordinal), StringComparer.Ordinal);
        foreach (var stream in streams)
        {
            var free = new SortedSet<int>(Enumerable.Range(0, partitionCount(stream)));
            var subscribers = ordered.Where(m => targets.ContainsKey((m.Id, stream))).ToList();
            foreach (var member in subscribers)
            {
                var kept = new SortedSet<int>();
                foreach (var p in previous[member.Id].GetValueOrDefault(stream) ?? [])
                {
                    if (kept.Count < targets[(member.Id, stream)] && free.Remove(p))
                    {
                        kept.Add(p);
                    }
                }

                next[member.Id][stream] = kept;
            }

            // Free partitions go to their Liftbridge owner where it still has room (so a new group is assigned exactly as
            // Liftbridge assigns it), the rest to whoever is short.
            foreach (var p in free.ToList())
            {
                var owner = ideal[(stream, p)];
                if (next[owner][stream].Count < targets[(owner, stream)])
                {
                    next[owner][stream].Add(p);
                    free.Remove(p);
                }
            }

            foreach (var member in subscribers)
            {
                var set = next[member.Id][stream];
                while (set.Count < targets[(member.Id, stream)])
                {
                    var p = free.Min;
                    free.Remove(p);
                    set.Add(p);
                }
            }
        }

        foreach (var member in ordered)
        {
            member.Assignments.Clear();
            foreach (var (stream, partitions) in next[member.Id])
            {
                member.Assignments.Add(new PartitionAssignment { Stream = stream, Partitions = { partitions } });
            }
        }
    }

    /// <summary>Fewest assignments first, then the smallest id (ordinal, as Go compares strings).</summary>
    private sealed class Comparer : IComparer<(int Count, string Id)>
    {
        public static readonly Comparer Instance = new();

        public int Compare((int Count, string Id) x, (int Count, string Id) y) =>
            x.Count != y.Count ? x.Count.CompareTo(y.Count) : string.CompareOrdinal(x.Id, y.Id);
    }
}
