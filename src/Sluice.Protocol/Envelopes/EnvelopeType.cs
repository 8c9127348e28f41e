namespace Sluice.Protocol.Envelopes;

/// <summary>The message type byte of a Liftbridge envelope (offset 7).</summary>
public enum EnvelopeType : byte
{
    Publish = 0,
    Ack = 1,
    ReplicationRequest = 2,
    ReplicationResponse = 3,
    RaftJoinRequest = 4,
    RaftJoinResponse = 5,
    LeaderEpochOffsetRequest = 6,
    LeaderEpochOffsetResponse = 7,
    PropagatedRequest = 8,
    PropagatedResponse = 9,
    ServerInfoRequest = 10,
    ServerInfoResponse = 11,
    PartitionStatusRequest = 12,
    PartitionStatusResponse = 13,
    PartitionNotification = 14,
}
