using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Sluice.Bench.Options;
using Sluice.Client;

namespace Sluice.Bench.Runs;

/// <summary>
/// The <c>group</c> mode: a consumer group of <see cref="BenchOptions.Concurrent"/> members (each with a client of its
/// own, as separate processes would have) drains the first <see cref="BenchOptions.Messages"/> messages of a stream
/// through <see cref="SluiceConsumer"/>, then measures two rebalances while a publisher keeps every partition busy:
/// one more member joining, and one member leaving.
/// </summary>
/// <remarks>
/// A rebalance is over when the members' assignments cover every partition once (the newcomer holding some, or the
/// leaver none) and every partition has since delivered a message published after the change to its new owner.
/// Progress is checked every <see cref="Poll"/>, which bounds the measurement's resolution.
/// </remarks>
public static class GroupMode
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(10);

    public static async Task<int> RunAsync(BenchOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.Timeout);
        var ct = deadline.Token;

        await using var admin = await SluiceClient.ConnectAsync(options.ServersOrDefault, SluiceClientOptions.Default, ct).ConfigureAwait(false);
        var metadata = await admin.FetchMetadataAsync(new FetchMetadataOptions { Streams = [options.Stream] }, ct).ConfigureAwait(false);
        var stream = metadata.GetStream(options.Stream) ?? throw new InvalidOperationException($"no stream {options.Stream}: publish to it first (producer mode)");
        var partitions = stream.Partitions.Count;
        var newest = new long[partitions];
        long available = 0;
        for (var p = 0; p < partitions; p++)
        {
            newest[p] = (await admin.FetchPartitionMetadataAsync(options.Stream, p, ct).ConfigureAwait(false)).HighWatermark;
            available += newest[p] + 1;
        }

        if (available < options.Messages)
        {
            throw new InvalidOperationException($"the stream holds {available} messages, fewer than --messages {options.Messages}");
        }

        var group = new GroupState(partitions);
        var groupId = "bench-" + Guid.NewGuid().ToString("N")[..8];
        var consumerOptions = ConsumerOptions.Default with { FetchInterval = options.FetchInterval };

        // Drain: the clock starts before the first join, so the group's start-up (joins, assignments) is part of it.
        var members = new List<Member>();
        var drainClock = Stopwatch.StartNew();
        for (var i = 0; i < options.Concurrent; i++)
        {
            members.Add(await Member.StartAsync(i, options, groupId, consumerOptions, group, ct).ConfigureAwait(false));
        }

        var target = Enumerable.Range(0, partitions).Sum(p => newest[p] + 1);
        while (group.Distinct < target)
        {
            await Task.Delay(Poll, ct).ConfigureAwait(false);
        }

        var drain = drainClock.Elapsed;
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"drain: {options.Concurrent} members, {partitions} partitions, {target} messages in {drain.TotalSeconds:0.000} s = {target / drain.TotalSeconds:0} msgs/s ({group.Delivered - target} redelivered)")).ConfigureAwait(false);

        // Rebalances, with new messages arriving on every partition so "read again" can be seen.
        using var publishing = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var publisher = Task.Run(() => PublishAsync(admin, options.Stream, partitions, publishing.Token), CancellationToken.None);
        try
        {
            await MeasureAsync(output, "join", members, group, async () =>
            {
                var member = await Member.StartAsync(members.Count, options, groupId, consumerOptions, group, ct).ConfigureAwait(false);
                members.Add(member);
                return member;
            }, ct).ConfigureAwait(false);

            var leaver = members[0];
            await MeasureAsync(output, "leave", members, group, async () =>
            {
                members.Remove(leaver);
                await leaver.DisposeAsync().ConfigureAwait(false);
                return null;
            }, ct).ConfigureAwait(false);
        }
        finally
        {
            await publishing.CancelAsync().ConfigureAwait(false);
            await publisher.ConfigureAwait(false);
            foreach (var member in members)
            {
                await member.DisposeAsync().ConfigureAwait(false);
            }
        }

        return 0;
    }

    private static async Task MeasureAsync(TextWriter output, string what, List<Member> members, GroupState group, Func<Task<Member?>> change, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var since = Stopwatch.GetTimestamp();
        var added = await change().ConfigureAwait(false);
        while (!Settled(members, added, group, since))
        {
            await Task.Delay(Poll, ct).ConfigureAwait(false);
        }

        var elapsed = clock.Elapsed;
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"rebalance on {what}: {elapsed.TotalSeconds:0.000} s until all {group.Partitions} partitions were read again ({members.Count} members)")).ConfigureAwait(false);
    }

    /// <summary>Every partition assigned to exactly one member (the newcomer among them) and read by it since <paramref name="since"/>.</summary>
    private static bool Settled(List<Member> members, Member? added, GroupState group, long since)
    {
        var owner = new int[group.Partitions];
        Array.Fill(owner, -1);
        foreach (var member in members)
        {
            foreach (var assigned in member.Consumer.Assignments)
            {
                if (owner[assigned.Partition] != -1)
                {
                    return false; // two members (one has not seen the rebalance yet)
                }

                owner[assigned.Partition] = member.Index;
            }
        }

        if (added is not null && !owner.Contains(added.Index))
        {
            return false;
        }

        for (var p = 0; p < group.Partitions; p++)
        {
            if (owner[p] == -1 || group.LastRead(owner[p], p) <= since)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A message to every partition every few milliseconds: enough to see each partition read, little load.</summary>
    private static async Task PublishAsync(SluiceClient client, string stream, int partitions, CancellationToken ct)
    {
        var payload = new byte[16];
        try
        {
            while (!ct.IsCancellationRequested)
            {
                for (var p = 0; p < partitions; p++)
                {
                    await client.PublishAsync(stream, payload, new MessageOptions { Partition = p }, ct).ConfigureAwait(false);
                }

                await Task.Delay(TimeSpan.FromMilliseconds(5), ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // done
        }
    }

    /// <summary>What the members have read: distinct messages, deliveries, and when each member last read each partition.</summary>
    private sealed class GroupState(int partitions)
    {
        private readonly long[] _next = Enumerable.Repeat(0L, partitions).ToArray();
        private readonly ConcurrentDictionary<(int Member, int Partition), long> _lastRead = new();
        private long _distinct;
        private long _delivered;

        public int Partitions { get; } = partitions;

        public long Distinct => Interlocked.Read(ref _distinct);

        public long Delivered => Interlocked.Read(ref _delivered);

        public long LastRead(int member, int partition) => _lastRead.TryGetValue((member, partition), out var at) ? at : 0;

        public void Record(int member, SluiceMessage message)
        {
            Interlocked.Increment(ref _delivered);
            _lastRead[(member, message.Partition)] = Stopwatch.GetTimestamp();
            // Each partition is read in order, one member at a time: a message past the highest seen so far is new.
            var next = message.Offset + 1;
            var seen = Interlocked.Read(ref _next[message.Partition]);
            while (next > seen)
            {
                var was = Interlocked.CompareExchange(ref _next[message.Partition], next, seen);
                if (was == seen)
                {
                    Interlocked.Add(ref _distinct, next - seen);
                    return;
                }

                seen = was;
            }
        }
    }

    private sealed class Member : IAsyncDisposable
    {
        private readonly SluiceClient _client;

        private Member(int index, SluiceClient client, SluiceConsumer consumer)
        {
            Index = index;
            _client = client;
            Consumer = consumer;
        }

        public int Index { get; }

        public SluiceConsumer Consumer { get; }

        public static async Task<Member> StartAsync(int index, BenchOptions options, string groupId, ConsumerOptions consumerOptions, GroupState group, CancellationToken ct)
        {
            var client = await SluiceClient.ConnectAsync(options.ServersOrDefault, SluiceClientOptions.Default, ct).ConfigureAwait(false);
            var consumer = client.CreateConsumer(groupId, consumerOptions with { ConsumerId = $"member-{index}" });
            await consumer.SubscribeAsync([options.Stream], (message, _) =>
            {
                group.Record(index, message);
                return ValueTask.CompletedTask;
            }, ct).ConfigureAwait(false);
            return new Member(index, client, consumer);
        }

        public async ValueTask DisposeAsync()
        {
            await Consumer.DisposeAsync().ConfigureAwait(false);
            await _client.DisposeAsync().ConfigureAwait(false);
        }
    }
}
