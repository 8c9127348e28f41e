using System.Collections.Frozen;
using Sluice.Client.Internal;
using Api = Sluice.Protocol.Api;

namespace Sluice.Client;

/// <summary>A snapshot of the cluster: its brokers, streams, partitions and (if asked for) consumer groups.</summary>
public sealed class SluiceMetadata
{
    internal static readonly SluiceMetadata Empty = new(DateTimeOffset.MinValue, [], FrozenDictionary<string, StreamInfo>.Empty, FrozenDictionary<string, ConsumerGroupInfo>.Empty);

    private readonly FrozenDictionary<string, BrokerInfo> _brokersById;

    private SluiceMetadata(DateTimeOffset lastUpdated, IReadOnlyList<BrokerInfo> brokers, IReadOnlyDictionary<string, StreamInfo> streams, IReadOnlyDictionary<string, ConsumerGroupInfo> groups)
    {
        LastUpdated = lastUpdated;
        Brokers = brokers;
        Streams = streams;
        ConsumerGroups = groups;
        _brokersById = brokers.ToFrozenDictionary(b => b.Id, StringComparer.Ordinal);
    }

    /// <summary>When the snapshot was taken.</summary>
    public DateTimeOffset LastUpdated { get; }

    /// <summary>The brokers that answered (a broker that did not may still lead partitions).</summary>
    public IReadOnlyList<BrokerInfo> Brokers { get; }

    /// <summary>The streams by name (streams the server did not know are left out).</summary>
    public IReadOnlyDictionary<string, StreamInfo> Streams { get; }

    /// <summary>The consumer groups asked for, by id (unknown groups are left out).</summary>
    public IReadOnlyDictionary<string, ConsumerGroupInfo> ConsumerGroups { get; }

    /// <summary>"host:port" of every broker.</summary>
    public IReadOnlyList<string> Addresses => Brokers.Select(b => b.Address).ToArray();

    /// <summary>The broker with <paramref name="id"/>, or null.</summary>
    /// <param name="id">Broker id.</param>
    public BrokerInfo? GetBroker(string id) => _brokersById.GetValueOrDefault(id);

    /// <summary>The stream named <paramref name="name"/>, or null.</summary>
    /// <param name="name">Stream name.</param>
    public StreamInfo? GetStream(string name) => Streams.GetValueOrDefault(name);

    /// <summary>The number of partitions of <paramref name="stream"/>, 0 when it is unknown.</summary>
    /// <param name="stream">Stream name.</param>
    public int PartitionCountForStream(string stream) => GetStream(stream)?.Partitions.Count ?? 0;

    /// <summary>The consumer group <paramref name="groupId"/>, or null.</summary>
    /// <param name="groupId">Group id.</param>
    public ConsumerGroupInfo? GetConsumerGroup(string groupId) => ConsumerGroups.GetValueOrDefault(groupId);

    internal static SluiceMetadata FromProto(Api.FetchMetadataResponse response, DateTimeOffset now)
    {
        var brokers = response.Brokers.Select(BrokerInfo.FromProto).ToArray();
        var byId = brokers.ToDictionary(b => b.Id, StringComparer.Ordinal);
        var streams = new Dictionary<string, StreamInfo>(StringComparer.Ordinal);
        foreach (var stream in response.StreamMetadata)
        {
            if (stream.Error == Api.StreamMetadata.Types.Error.Ok)
            {
                streams[stream.Name] = StreamInfo.FromProto(stream, byId);
            }
        }

        var groups = new Dictionary<string, ConsumerGroupInfo>(StringComparer.Ordinal);
        foreach (var group in response.GroupMetadata)
        {
            if (group.Error == Api.ConsumerGroupMetadata.Types.Error.Ok)
            {
                groups[group.GroupId] = new ConsumerGroupInfo { Id = group.GroupId, Coordinator = group.Coordinator, Epoch = group.Epoch };
            }
        }

        return new SluiceMetadata(now, brokers, streams.ToFrozenDictionary(StringComparer.Ordinal), groups.ToFrozenDictionary(StringComparer.Ordinal));
    }
}

/// <summary>A broker of the cluster.</summary>
public sealed record BrokerInfo
{
    /// <summary>The broker id.</summary>
    public required string Id { get; init; }

    private string? _address;

    /// <summary>The host clients connect to.</summary>
    public required string Host
    {
        get;
        init
        {
            field = value;
            _address = null;
        }
    }

    /// <summary>The port clients connect to.</summary>
    public required int Port
    {
        get;
        init
        {
            field = value;
            _address = null;
        }
    }

    /// <summary>Partitions this broker holds a replica of.</summary>
    public int PartitionCount { get; init; }

    /// <summary>Partitions this broker leads.</summary>
    public int LeaderCount { get; init; }

    /// <summary>"host:port" ("[v6]:port" for IPv6 literals). Made once: every publish looks up its broker by it.</summary>
    public string Address => _address ??= Host.Contains(':', StringComparison.Ordinal) && !Host.StartsWith('[') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";

    internal static BrokerInfo FromProto(Api.Broker broker) => new()
    {
        Id = broker.Id,
        Host = broker.Host,
        Port = broker.Port,
        PartitionCount = broker.PartitionCount,
        LeaderCount = broker.LeaderCount,
    };
}

/// <summary>A stream and its partitions.</summary>
public sealed class StreamInfo
{
    /// <summary>The stream name.</summary>
    public required string Name { get; init; }

    /// <summary>The NATS subject the stream is attached to.</summary>
    public required string Subject { get; init; }

    /// <summary>When the stream was created.</summary>
    public DateTimeOffset CreationTime { get; init; }

    /// <summary>The partitions by id.</summary>
    public required IReadOnlyDictionary<int, PartitionInfo> Partitions { get; init; }

    /// <summary>Partition <paramref name="id"/>, or null.</summary>
    /// <param name="id">Partition id.</param>
    public PartitionInfo? GetPartition(int id) => Partitions.GetValueOrDefault(id);

    internal static StreamInfo FromProto(Api.StreamMetadata stream, IReadOnlyDictionary<string, BrokerInfo> brokers) => new()
    {
        Name = stream.Name,
        Subject = stream.Subject,
        CreationTime = Timestamps.FromUnixNanoseconds(stream.CreationTimestamp),
        Partitions = stream.Partitions.ToFrozenDictionary(p => p.Key, p => PartitionInfo.FromProto(p.Value, brokers)),
    };
}

/// <summary>The first and latest time an event happened to a partition (null: never).</summary>
/// <param name="First">The first time.</param>
/// <param name="Latest">The latest time.</param>
public readonly record struct PartitionEventTimestamps(DateTimeOffset? First, DateTimeOffset? Latest)
{
    internal static PartitionEventTimestamps FromProto(Api.PartitionEventTimestamps? timestamps) => timestamps is null
        ? default
        : new(Timestamps.FromUnixNanosecondsOrNull(timestamps.FirstTimestamp), Timestamps.FromUnixNanosecondsOrNull(timestamps.LatestTimestamp));
}

/// <summary>A stream partition: its leader, replicas and positions.</summary>
public sealed class PartitionInfo
{
    /// <summary>The partition id.</summary>
    public int Id { get; init; }

    /// <summary>The id of the leader broker ("" when none).</summary>
    public required string LeaderId { get; init; }

    /// <summary>The leader broker, when it is among the brokers of the metadata.</summary>
    public BrokerInfo? Leader { get; init; }

    /// <summary>Ids of the brokers holding a replica.</summary>
    public required IReadOnlyList<string> Replicas { get; init; }

    /// <summary>Ids of the in-sync replicas.</summary>
    public required IReadOnlyList<string> Isr { get; init; }

    /// <summary>The offset of the last committed message (-1: none).</summary>
    public long HighWatermark { get; init; }

    /// <summary>The offset of the newest message (-1: none).</summary>
    public long NewestOffset { get; init; }

    /// <summary>The partition is paused.</summary>
    public bool Paused { get; init; }

    /// <summary>The partition is readonly.</summary>
    public bool Readonly { get; init; }

    /// <summary>When messages were first and last received.</summary>
    public PartitionEventTimestamps MessagesReceivedTimestamps { get; init; }

    /// <summary>When the partition was first and last paused.</summary>
    public PartitionEventTimestamps PauseTimestamps { get; init; }

    /// <summary>When the partition was first and last made readonly.</summary>
    public PartitionEventTimestamps ReadonlyTimestamps { get; init; }

    internal static PartitionInfo FromProto(Api.PartitionMetadata partition, IReadOnlyDictionary<string, BrokerInfo> brokers) => new()
    {
        Id = partition.Id,
        LeaderId = partition.Leader,
        Leader = brokers.GetValueOrDefault(partition.Leader),
        Replicas = partition.Replicas.ToArray(),
        Isr = partition.Isr.ToArray(),
        HighWatermark = partition.HighWatermark,
        NewestOffset = partition.NewestOffset,
        Paused = partition.Paused,
        Readonly = partition.Readonly,
        MessagesReceivedTimestamps = PartitionEventTimestamps.FromProto(partition.MessagesReceivedTimestamps),
        PauseTimestamps = PartitionEventTimestamps.FromProto(partition.PauseTimestamps),
        ReadonlyTimestamps = PartitionEventTimestamps.FromProto(partition.ReadonlyTimestamps),
    };
}

/// <summary>A consumer group.</summary>
public sealed class ConsumerGroupInfo
{
    /// <summary>The group id.</summary>
    public required string Id { get; init; }

    /// <summary>The id of the broker coordinating the group.</summary>
    public required string Coordinator { get; init; }

    /// <summary>The group's epoch (changes on every membership change).</summary>
    public ulong Epoch { get; init; }
}
