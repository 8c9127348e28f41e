using Sluice.Protocol.Internal;

namespace Sluice.Server.Groups;

/// <summary>A consumer group as the metadata store holds it, with the revision it was read at and its epoch.</summary>
internal sealed record GroupView(ConsumerGroupRecord Record, long ModRevision, ulong Epoch)
{
    public string Id => Record.Id;

    public string Coordinator => Record.Coordinator;

    /// <summary>Liftbridge's epoch 0 for a group as created; after that the revision of the write that last changed it.</summary>
    public static ulong EpochOf(long version, long modRevision) => version <= 1 ? 0 : (ulong)modRevision;

    public ConsumerGroupMember? Member(string consumerId) => Record.Members.FirstOrDefault(m => m.Id == consumerId);

    public bool IsAssigned(string consumerId, string stream, int partition) =>
        Member(consumerId)?.Assignments.Any(a => a.Stream == stream && a.Partitions.Contains(partition)) == true;
}
