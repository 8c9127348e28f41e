using Sluice.Client.Grpc;
using Sluice.Protocol.Api;

namespace Sluice.Nemesis;

/// <summary>
/// Direct API calls to one broker at a time (no client-side routing): what each broker says of a partition, and each
/// replica's own copy of the log, read with readISRReplica.
/// </summary>
internal sealed class Probe : IDisposable
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(2);

    private readonly IClusterUnderTest _cluster;
    private readonly Dictionary<string, GrpcChannel> _channels;

    public Probe(IClusterUnderTest cluster)
    {
        _cluster = cluster;
        _channels = cluster.BrokerIds.ToDictionary(b => b, b => new GrpcChannel(new Uri("http://" + cluster.ClientAddress(b))), StringComparer.Ordinal);
    }

    /// <summary>The partition as <paramref name="broker"/> sees it, or null when it does not answer.</summary>
    public async Task<PartitionMetadata?> TryPartitionAsync(string broker, string stream, int partition)
    {
        if (!_cluster.IsRunning(broker))
        {
            return null;
        }

        try
        {
            var response = await _channels[broker].UnaryAsync("/proto.API/FetchMetadata", new FetchMetadataRequest { Streams = { stream } }, FetchMetadataResponse.Parser, CallTimeout).ConfigureAwait(false);
            return response.StreamMetadata.FirstOrDefault(s => s.Name == stream)?.Partitions.GetValueOrDefault(partition);
        }
        catch (Exception e) when (IsCallFailure(e))
        {
            return null;
        }
    }

    /// <summary>The partition's high watermark and newest offset from its leader, or null.</summary>
    public async Task<PartitionMetadata?> TryLeaderViewAsync(string leader, string stream, int partition)
    {
        try
        {
            var request = new FetchPartitionMetadataRequest { Stream = stream, Partition = partition };
            return (await _channels[leader].UnaryAsync("/proto.API/FetchPartitionMetadata", request, FetchPartitionMetadataResponse.Parser, CallTimeout).ConfigureAwait(false)).Metadata;
        }
        catch (Exception e) when (IsCallFailure(e))
        {
            return null;
        }
    }

    /// <summary>
    /// The leader every running broker agrees on, when its ISR holds every replica and every broker runs; null while
    /// that is not so.
    /// </summary>
    public async Task<PartitionMetadata?> TryHealthyAsync(string stream, int partition)
    {
        PartitionMetadata? first = null;
        foreach (var broker in _cluster.BrokerIds)
        {
            var view = await TryPartitionAsync(broker, stream, partition).ConfigureAwait(false);
            if (view is null || string.IsNullOrEmpty(view.Leader) || view.Isr.Count != view.Replicas.Count)
            {
                return null;
            }

            if (first is not null && (first.Leader != view.Leader || !first.Isr.OrderBy(b => b, StringComparer.Ordinal).SequenceEqual(view.Isr.OrderBy(b => b, StringComparer.Ordinal))))
            {
                return null;
            }

            first ??= view;
        }

        return first;
    }

    /// <summary>The partition's leader as the first broker that knows one says, or null.</summary>
    public async Task<string?> TryLeaderAsync(string stream, int partition)
    {
        foreach (var broker in _cluster.BrokerIds)
        {
            if (await TryPartitionAsync(broker, stream, partition).ConfigureAwait(false) is { Leader.Length: > 0 } view)
            {
                return view.Leader;
            }
        }

        return null;
    }

    /// <summary>The partition's messages at offsets 0..<paramref name="lastOffset"/> as <paramref name="broker"/>'s own replica holds them.</summary>
    public async Task<List<Message>> ReadReplicaAsync(string broker, string stream, int partition, long lastOffset, TimeSpan timeout)
    {
        var messages = new List<Message>();
        if (lastOffset < 0)
        {
            return messages;
        }

        using var deadline = new CancellationTokenSource(timeout);
        var request = new SubscribeRequest { Stream = stream, Partition = partition, StartPosition = StartPosition.Earliest, ReadISRReplica = true };
        await using var call = _channels[broker].ServerStreaming("/proto.API/Subscribe", request, Message.Parser, cancellationToken: deadline.Token);
        if (!await call.MoveNextAsync().ConfigureAwait(false))
        {
            throw new InvalidOperationException($"{broker}: the subscription to partition {partition} ended before its first frame");
        }

        // The first frame is the handshake (an empty message) in Liftbridge's protocol.
        while (messages.Count == 0 || messages[^1].Offset < lastOffset)
        {
            if (!await call.MoveNextAsync().ConfigureAwait(false))
            {
                throw new InvalidOperationException($"{broker}: the subscription to partition {partition} ended after {messages.Count} messages");
            }

            messages.Add(call.Current);
        }

        return messages;
    }

    public void Dispose()
    {
        foreach (var channel in _channels.Values)
        {
            channel.Dispose();
        }
    }

    private static bool IsCallFailure(Exception e) =>
        e is Protocol.Grpc.GrpcException or HttpRequestException or IOException or OperationCanceledException or TimeoutException or InvalidOperationException;
}
