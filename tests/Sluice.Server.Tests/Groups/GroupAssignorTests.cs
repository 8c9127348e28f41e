using Sluice.Protocol.Internal;
using Sluice.Server.Groups;

namespace Sluice.Server.Tests.Groups;

public sealed class GroupAssignorTests
{
    private static ConsumerGroupMember Member(string id, params string[] streams) => new() { Id = id, Streams = { streams } };

    private static int[] Of(ConsumerGroupMember member, string stream) =>
        member.Assignments.SingleOrDefault(a => a.Stream == stream)?.Partitions.ToArray() ?? [];

    [Fact]
    public void Counts_follow_Liftbridges_rule_fewest_across_streams_then_smallest_id()
    {
        var members = new List<ConsumerGroupMember> { Member("b", "s", "t"), Member("a", "s", "t") };
        GroupAssignor.Assign(members, s => s == "s" ? 3 : 1);
        // s: 0→a, 1→b, 2→a (tie: smallest id); t: 0→b (fewest). Totals 2 and 2.
        Assert.Equal([0, 2], Of(members[1], "s"));
        Assert.Equal([1], Of(members[0], "s"));
        Assert.Equal([0], Of(members[0], "t"));
        Assert.Empty(Of(members[1], "t"));
    }

    [Fact]
    public void A_join_moves_only_the_partitions_the_new_member_takes()
    {
        var members = new List<ConsumerGroupMember> { Member("a", "s"), Member("b", "s"), Member("c", "s") };
        GroupAssignor.Assign(members, _ => 6);
        var before = members.ToDictionary(m => m.Id, m => Of(m, "s"));

        members.Add(Member("d", "s"));
        GroupAssignor.Assign(members, _ => 6);
        var moved = members.Where(m => m.Id != "d").Sum(m => before[m.Id].Except(Of(m, "s")).Count());
        Assert.Equal(1, moved); // 6 over 4 members is 2,2,1,1: one partition changes hands
        Assert.Single(Of(members[3], "s"));
        Assert.Equal([0, 1, 2, 3, 4, 5], members.SelectMany(m => Of(m, "s")).Order());
    }

    [Fact]
    public void A_leave_moves_only_the_leavers_partitions()
    {
        var members = new List<ConsumerGroupMember> { Member("a", "s"), Member("b", "s"), Member("c", "s") };
        GroupAssignor.Assign(members, _ => 6);
        var before = members.ToDictionary(m => m.Id, m => Of(m, "s"));

        members.RemoveAt(1);
        GroupAssignor.Assign(members, _ => 6);
        foreach (var m in members)
        {
            Assert.Empty(before[m.Id].Except(Of(m, "s"))); // kept all it had
            Assert.Equal(3, Of(m, "s").Length);
        }
    }

    [Fact]
    public void A_stream_that_does_not_exist_gives_nothing()
    {
        var members = new List<ConsumerGroupMember> { Member("a", "gone") };
        GroupAssignor.Assign(members, _ => 0);
        Assert.Empty(members[0].Assignments);
    }
}
