using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Sluice.Client;
using Xunit.Abstractions;

namespace Sluice.Cli.Tests.Cluster;

/// <summary>Real brokers, real etcd: the partition leader's process is SIGKILLed under publish load, three times.</summary>
[Collection(ProcessClusterCollection.Name)]
public sealed class LeaderKillTests(ITestOutputHelper output)
{
    private const string Stream = "killed";
    private const int Window = 16;

    [Fact]
    public async Task Leader_SIGKILLed_three_times_under_load_loses_and_duplicates_no_acked_message()
    {
        await using var cluster = await ProcessCluster.StartAsync(3);
        await using var client = await SluiceClient.ConnectAsync(cluster.Addresses, new SluiceClientOptions
        {
            IdempotentPublishing = true,
            AckWaitTime = TimeSpan.FromSeconds(10),
            ResubscribeWaitTime = TimeSpan.FromSeconds(60),
        });
        await client.CreateStreamAsync(Stream + ".subject", Stream, new StreamOptions { ReplicationFactor = 3, MinIsr = 2 });
        await cluster.WaitForFullIsrAsync(Stream);

        using var load = new PublishLoad(client);
        using var stop = new CancellationTokenSource();
        using var stopReading = new CancellationTokenSource();
        var publisher = Task.Run(() => load.RunAsync(stop.Token));
        var received = new List<(long Offset, string Payload)>();
        var subscriber = Task.Run(async () =>
        {
            await foreach (var message in client.SubscribeAsync(Stream, new SubscribeOptions { StartPosition = StartPosition.Earliest }, stopReading.Token))
            {
                lock (received)
                {
                    received.Add((message.Offset, message.GetValueAsString()));
                }
            }
        });

        var failovers = new List<TimeSpan>();
        for (var kill = 1; kill <= 3; kill++)
        {
            var before = load.AckCount;
            await cluster.WaitForAsync(() => Task.FromResult(load.AckCount >= before + 200 || publisher.IsCompleted), "200 more acks");
            Assert.False(publisher.IsCompleted, "the publisher stopped");
            var leader = await cluster.WaitForFullIsrAsync(Stream);
            var killedAt = Stopwatch.GetTimestamp();
            await cluster.KillAsync(cluster[leader]);
            var killedAtClock = DateTimeOffset.UtcNow;

            // Acks of the dead leader may still sit in the socket: the first ack of the new leader is the first one
            // committed after the old leader's process was gone (the brokers share this machine's clock).
            await cluster.WaitForAsync(() => Task.FromResult(load.FirstAckCommittedAfter(killedAtClock) is not null), $"an ack after kill {kill}");
            var failover = Stopwatch.GetElapsedTime(killedAt, load.FirstAckCommittedAfter(killedAtClock)!.Value);
            failovers.Add(failover);
            output.WriteLine($"kill {kill}: leader {leader} SIGKILLed; first ack after it {failover.TotalMilliseconds:F0} ms later");
            cluster.Restart(cluster[leader]);
        }

        var last = load.AckCount;
        await cluster.WaitForAsync(() => Task.FromResult(load.AckCount >= last + 100), "100 acks after the last kill");
        await stop.CancelAsync();
        await publisher.WaitAsync(ProcessCluster.Timeout);
        await load.DrainAsync();

        var finalLeader = await cluster.WaitForFullIsrAsync(Stream);
        // The broker named leader in the metadata takes the role a moment later: wait until it answers as leader.
        Protocol.Api.PartitionMetadata? partition = null;
        await cluster.WaitForAsync(
            async () =>
            {
                try
                {
                    partition = (await cluster[finalLeader].CallAsync("FetchPartitionMetadata", new Protocol.Api.FetchPartitionMetadataRequest { Stream = Stream }, Protocol.Api.FetchPartitionMetadataResponse.Parser, TimeSpan.FromSeconds(5))).Metadata;
                    return partition.HighWatermark == partition.NewestOffset;
                }
                catch (Protocol.Grpc.GrpcException e) when (e.StatusCode == Protocol.Grpc.GrpcStatusCode.FailedPrecondition)
                {
                    return false;
                }
            },
            $"{finalLeader} answers as leader with its high watermark at its newest offset");
        var end = partition!.HighWatermark;
        var logs = new Dictionary<string, List<Protocol.Api.Message>>();
        foreach (var broker in cluster.Brokers)
        {
            logs[broker.Id] = await ProcessCluster.ReadLogAsync(broker, Stream, end);
        }

        var log = logs[finalLeader];
        Assert.Equal(Enumerable.Range(0, (int)end + 1).Select(i => (long)i), log.Select(m => m.Offset));
        var payloads = log.Select(m => m.Value.ToStringUtf8()).ToList();
        var repeated = payloads.GroupBy(p => p).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(repeated.Count == 0, "stored twice: " + string.Join(", ", repeated.Take(10)));
        var acked = load.Acked;
        Assert.Equal(0, load.AckedTwice);
        var wrong = acked.Where(a => a.Value > end || payloads[(int)a.Value] != a.Key).Take(10).ToList();
        Assert.True(wrong.Count == 0, "acked but not at its offset: " + string.Join(", ", wrong.Select(w => $"{w.Key}@{w.Value}")));
        foreach (var (id, replica) in logs)
        {
            Assert.True(
                replica.Select(m => (m.Offset, m.Timestamp, Value: m.Value.ToStringUtf8())).SequenceEqual(log.Select(m => (m.Offset, m.Timestamp, Value: m.Value.ToStringUtf8()))),
                $"{id}'s log differs from the leader {finalLeader}'s");
        }

        await cluster.WaitForAsync(
            () => subscriber.IsCompleted ? throw new Xunit.Sdk.XunitException($"the subscriber ended after {CountOf(received)} messages: {subscriber.Exception}") : Task.FromResult(CountOf(received) > end),
            "the subscriber reaches the end");
        await stopReading.CancelAsync();
        List<(long Offset, string Payload)> seen;
        lock (received)
        {
            seen = [.. received];
        }

        Assert.Equal(log.Select(m => (m.Offset, m.Value.ToStringUtf8())), seen.Take(log.Count));
        output.WriteLine($"{acked.Count} acked, {end + 1} stored, {load.Failures} publishes failed ({load.FailureKinds}); failover ms: {string.Join(", ", failovers.Select(f => f.TotalMilliseconds.ToString("F0", System.Globalization.CultureInfo.InvariantCulture)))}");
    }

    private static int CountOf(List<(long, string)> list)
    {
        lock (list)
        {
            return list.Count;
        }
    }

    /// <summary>Publishes unique payloads with ALL acks, at most <see cref="Window"/> outstanding, recording every ack.</summary>
    private sealed class PublishLoad(SluiceClient client) : IDisposable
    {
        private readonly SemaphoreSlim _window = new(Window);
        private readonly ConcurrentDictionary<string, long> _acked = new();
        private readonly ConcurrentQueue<(long At, DateTimeOffset Committed)> _ackTimes = new();
        private readonly ConcurrentDictionary<string, int> _failures = new();
        private int _ackedTwice;

        public int AckedTwice => Volatile.Read(ref _ackedTwice);

        public int AckCount => _acked.Count;

        public IReadOnlyDictionary<string, long> Acked => _acked;

        public int Failures => _failures.Values.Sum();

        public string FailureKinds => string.Join(", ", _failures.Select(f => $"{f.Key} x{f.Value}"));

        /// <summary>When the first ack of a message committed after <paramref name="after"/> arrived (Stopwatch ticks).</summary>
        public long? FirstAckCommittedAfter(DateTimeOffset after)
        {
            var times = _ackTimes.Where(a => a.Committed > after).Select(a => a.At).ToList();
            return times.Count == 0 ? null : times.Min();
        }

        public async Task RunAsync(CancellationToken stop)
        {
            var options = new MessageOptions { AckPolicy = AckPolicy.All };
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                try
                {
                    await _window.WaitAsync(stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                var payload = "p" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                try
                {
                    await client.PublishAsync(Stream, Encoding.UTF8.GetBytes(payload), OnAck, (this, payload), options, CancellationToken.None);
                }
                catch (SluiceException e)
                {
                    Fail(e);
                    _window.Release();
                    await Task.Delay(20, CancellationToken.None); // no broker to queue on right now: back off a little
                }
            }
        }

        public void Dispose() => _window.Dispose();

        /// <summary>Waits until every outstanding publish has its ack or its error.</summary>
        public async Task DrainAsync()
        {
            for (var i = 0; i < Window; i++)
            {
                Assert.True(await _window.WaitAsync(ProcessCluster.Timeout), "publishes still outstanding");
            }
        }

        private static void OnAck(SluiceAck? ack, Exception? error, (PublishLoad Load, string Payload) state)
        {
            var load = state.Load;
            if (ack is not null)
            {
                if (!load._acked.TryAdd(state.Payload, ack.Offset))
                {
                    Interlocked.Increment(ref load._ackedTwice);
                }

                load._ackTimes.Enqueue((Stopwatch.GetTimestamp(), ack.CommitTimestamp));
            }
            else
            {
                load.Fail(error!);
            }

            load._window.Release();
        }

        private void Fail(Exception e) => _failures.AddOrUpdate(
            e switch
            {
                PublishFailedException p => $"{e.GetType().Name}/{p.Code} \"{p.Message}\"",
                SluiceException { StatusCode: { } code } => $"{e.GetType().Name}/{code}",
                _ => e.GetType().Name,
            },
            1,
            (_, n) => n + 1);
    }
}
