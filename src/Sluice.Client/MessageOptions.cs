using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Sluice.Protocol.Hashing;

namespace Sluice.Client;

/// <summary>When the server acknowledges a published message.</summary>
public enum AckPolicy
{
    /// <summary>Once the partition leader has stored the message (the default).</summary>
    Leader = 0,

    /// <summary>Once every in-sync replica has stored it.</summary>
    All = 1,

    /// <summary>Never: fire and forget.</summary>
    None = 2,
}

/// <summary>
/// Per-message settings of a publish (go-liftbridge <c>MessageOption</c>s). Immutable: start from
/// <see cref="Default"/> and customise with <c>with { ... }</c> or <see cref="WithHeader"/>.
/// </summary>
public sealed record MessageOptions
{
    /// <summary>No key, no headers, AckPolicy LEADER, partition 0, no expected offset.</summary>
    public static MessageOptions Default { get; } = new();

    /// <summary>The message key (used by compaction and <see cref="Partitioners.ByKey"/>). Default empty.</summary>
    public ReadOnlyMemory<byte> Key { get; init; }

    /// <summary>Message headers. Default null (none).</summary>
    public IReadOnlyDictionary<string, ReadOnlyMemory<byte>>? Headers { get; init; }

    /// <summary>When the server acks. Default <see cref="Client.AckPolicy.Leader"/>.</summary>
    public AckPolicy AckPolicy { get; init; } = AckPolicy.Leader;

    /// <summary>
    /// NATS subject the ack is published to by a server that takes the message from NATS: used by
    /// <see cref="SluiceEnvelope"/> and PublishToSubject. On PublishAsync it is only echoed in the
    /// ack the stream returns. Default null.
    /// </summary>
    public string? AckInbox { get; init; }

    /// <summary>Id echoed in the ack; a unique id is generated when null. Default null.</summary>
    public string? CorrelationId { get; init; }

    /// <summary>Publish to this partition (go-liftbridge <c>ToPartition</c>); takes precedence over <see cref="Partitioner"/>. Default null (partition 0).</summary>
    public int? Partition { get; init; }

    /// <summary>Chooses the partition from the stream's metadata (<see cref="Partitioners.ByKey"/>, <see cref="Partitioners.RoundRobin"/>, or your own). Default null.</summary>
    public IPartitioner? Partitioner { get; init; }

    /// <summary>
    /// With optimistic concurrency control: the offset the message must get, or the publish fails
    /// with <see cref="IncorrectOffsetException"/>. -1 (the default) skips the check.
    /// </summary>
    public long ExpectedOffset { get; init; } = -1;

    /// <summary>A copy of these options with one more header.</summary>
    /// <param name="name">Header name.</param>
    /// <param name="value">Header value.</param>
    public MessageOptions WithHeader(string name, ReadOnlyMemory<byte> value)
    {
        ArgumentNullException.ThrowIfNull(name);
        var headers = Headers is null ? new Dictionary<string, ReadOnlyMemory<byte>>(StringComparer.Ordinal) : new Dictionary<string, ReadOnlyMemory<byte>>(Headers, StringComparer.Ordinal);
        headers[name] = value;
        return this with { Headers = headers };
    }

    internal void Validate()
    {
        if (Partition is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(Partition), Partition, "partition cannot be less than 0");
        }

        if (!Enum.IsDefined(AckPolicy))
        {
            throw new ArgumentOutOfRangeException(nameof(AckPolicy), AckPolicy, "unknown ack policy");
        }
    }
}

/// <summary>Chooses the partition of a message (go-liftbridge <c>Partitioner</c>).</summary>
public interface IPartitioner
{
    /// <summary>The partition, in [0, number of partitions of <paramref name="stream"/>), for a message.</summary>
    /// <param name="stream">The stream published to.</param>
    /// <param name="key">The message key (may be empty).</param>
    /// <param name="value">The message value.</param>
    /// <param name="metadata">The client's current cluster metadata; it contains <paramref name="stream"/>.</param>
    int GetPartition(string stream, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, SluiceMetadata metadata);
}

/// <summary>The built-in partitioners.</summary>
public static class Partitioners
{
    /// <summary>
    /// <c>crc32(key) % partitions</c> with the IEEE polynomial, exactly as go-liftbridge, so clients
    /// in either language put a key in the same partition. An empty key hashes as "".
    /// </summary>
    public static IPartitioner ByKey { get; } = new KeyPartitioner();

    /// <summary>Cycles through the partitions, with one counter per stream shared by the whole process.</summary>
    public static IPartitioner RoundRobin { get; } = new RoundRobinPartitioner();
}

/// <summary>Partitions by the IEEE CRC-32 of the key (see <see cref="Partitioners.ByKey"/>).</summary>
public sealed class KeyPartitioner : IPartitioner
{
    /// <inheritdoc/>
    public int GetPartition(string stream, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, SluiceMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var partitions = metadata.PartitionCountForStream(stream);
        return partitions <= 0 ? 0 : (int)(Crc32Ieee.Compute(key) % (uint)partitions);
    }
}

/// <summary>Cycles through a stream's partitions, one counter per stream (see <see cref="Partitioners.RoundRobin"/>).</summary>
public sealed class RoundRobinPartitioner : IPartitioner
{
    private readonly ConcurrentDictionary<string, StrongBox<long>> _counters = new(StringComparer.Ordinal);

    /// <inheritdoc/>
    public int GetPartition(string stream, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, SluiceMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var partitions = metadata.PartitionCountForStream(stream);
        if (partitions <= 0)
        {
            return 0;
        }

        var counter = _counters.GetOrAdd(stream, static _ => new StrongBox<long>(-1));
        var next = Interlocked.Increment(ref counter.Value);
        return (int)((ulong)next % (ulong)partitions);
    }
}
