using System.Text.Json.Serialization;

namespace Sluice.Cli.Output;

// The shapes `--output json` prints. Field names are part of the CLI's interface: add fields, never rename them.

internal sealed record BrokerJson(string Id, string Host, int Port, string Address, int PartitionCount, int LeaderCount);

internal sealed record StreamJson(string Name, string Subject, int Partitions, string? CreationTime);

internal sealed record PartitionJson(
    int Id,
    string Leader,
    IReadOnlyList<string> Replicas,
    IReadOnlyList<string> Isr,
    long HighWatermark,
    long NewestOffset,
    bool Paused,
    bool Readonly,
    string? LatestMessageTime,
    IReadOnlyList<PartitionGroupJson> Groups);

/// <summary>A consumer group reading a partition (in `stream describe`): its member there, committed offset and lag.</summary>
internal sealed record PartitionGroupJson(string Group, string Member, long? CommittedOffset, long? Lag);

internal sealed record GroupJson(string GroupId, string Coordinator, ulong Epoch, int Members, IReadOnlyList<string> Streams);

internal sealed record GroupAssignmentJson(string Stream, IReadOnlyList<int> Partitions);

/// <summary>A group member; <c>LastHeartbeatAgeMs</c> is null when the group's coordinator could not be asked.</summary>
internal sealed record GroupMemberJson(string ConsumerId, IReadOnlyList<string> Streams, long? LastHeartbeatAgeMs, IReadOnlyList<GroupAssignmentJson> Assignments);

/// <summary>An assigned partition: <c>CommittedOffset</c> and <c>Lag</c> are null while the group has no cursor there.</summary>
internal sealed record GroupPartitionJson(string Stream, int Partition, string ConsumerId, long? CommittedOffset, long HighWatermark, long NewestOffset, long? Lag, string? Error);

/// <summary><c>TotalLag</c> is the sum of the partitions' lags, null unless every partition has one.</summary>
internal sealed record GroupDescriptionJson(string GroupId, string Coordinator, ulong Epoch, long? TotalLag, IReadOnlyList<GroupMemberJson> Members, IReadOnlyList<GroupPartitionJson> Partitions);

internal sealed record StreamDescriptionJson(string Name, string Subject, string? CreationTime, IReadOnlyList<PartitionJson> Partitions);

internal sealed record MetadataJson(IReadOnlyList<BrokerJson> Brokers, IReadOnlyList<StreamJson> Streams);

/// <summary>The outcome of create, delete, pause and readonly.</summary>
internal sealed record StreamChangeJson(string Stream, string Action, IReadOnlyList<int>? Partitions);

/// <summary>One published message: its position in the input and, unless the ack policy is none, where it was stored.</summary>
internal sealed record AckJson(long Index, string Stream, int Partition, long? Offset);

/// <summary>
/// One received message. <c>Encoding</c> is "utf8" when key, value and every header value are valid UTF-8,
/// else "base64" and all of them are base64.
/// </summary>
internal sealed record MessageJson(
    string Stream,
    int Partition,
    long Offset,
    string Timestamp,
    string Encoding,
    string Key,
    string Value,
    IReadOnlyDictionary<string, string> Headers);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(MetadataJson))]
[JsonSerializable(typeof(IReadOnlyList<StreamJson>))]
[JsonSerializable(typeof(StreamDescriptionJson))]
[JsonSerializable(typeof(StreamChangeJson))]
[JsonSerializable(typeof(IReadOnlyList<GroupJson>))]
[JsonSerializable(typeof(GroupDescriptionJson))]
[JsonSerializable(typeof(AckJson))]
[JsonSerializable(typeof(MessageJson))]
internal sealed partial class CliJsonContext : JsonSerializerContext;
