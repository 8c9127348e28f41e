using System.Collections.Concurrent;
using System.Text;
using Sluice.Client;

namespace Sluice.Cli.Tests.Cluster;

/// <summary>
/// One publisher per partition of a stream, each with unique payloads, ack policy ALL and at most
/// <see cref="Window"/> publishes outstanding, recording every ack (payload, partition, offset) and every failure.
/// </summary>
internal sealed class ClusterPublishLoad(SluiceClient client, string stream, int partitions) : IDisposable
{
    private const int Window = 8;

    private readonly SemaphoreSlim[] _windows = [.. Enumerable.Range(0, partitions).Select(_ => new SemaphoreSlim(Window))];
    private readonly ConcurrentDictionary<string, (int Partition, long Offset)> _acked = new();
    private readonly ConcurrentDictionary<string, int> _failures = new();
    private readonly CancellationTokenSource _stop = new();
    private Task[] _publishers = [];
    private int _ackedTwice;

    public int AckCount => _acked.Count;

    public IReadOnlyDictionary<string, (int Partition, long Offset)> Acked => _acked;

    public int AckedTwice => Volatile.Read(ref _ackedTwice);

    public int Failures => _failures.Values.Sum();

    public string FailureKinds => _failures.IsEmpty ? "none" : string.Join(", ", _failures.Select(f => $"{f.Key} x{f.Value}"));

    public void Start() => _publishers = [.. Enumerable.Range(0, partitions).Select(p => Task.Run(() => RunAsync(p, _stop.Token)))];

    /// <summary>Stops publishing and waits until every outstanding publish has its ack or its error.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_publishers).WaitAsync(ProcessCluster.Timeout);
        foreach (var window in _windows)
        {
            for (var i = 0; i < Window; i++)
            {
                Assert.True(await window.WaitAsync(ProcessCluster.Timeout), "publishes still outstanding");
            }
        }
    }

    /// <summary>Waits until <paramref name="more"/> acks have arrived since the call, failing if a publisher stopped.</summary>
    public async Task WaitForMoreAcksAsync(ProcessCluster cluster, int more, string what)
    {
        var target = AckCount + more;
        await cluster.WaitForAsync(
            () => _publishers.FirstOrDefault(p => p.IsCompleted) is { } done
                ? throw new Xunit.Sdk.XunitException($"a publisher stopped: {done.Exception}")
                : Task.FromResult(AckCount >= target),
            $"{more} more acks {what} ({FailureKinds} failures)");
    }

    /// <summary>
    /// Reads every partition from its settled leader and from every replica, and checks that each acked message is at
    /// its acked offset, no payload is stored twice, and the replicas equal the leader. Returns the messages stored.
    /// </summary>
    public async Task<long> VerifyAsync(ProcessCluster cluster)
    {
        long stored = 0;
        for (var partition = 0; partition < partitions; partition++)
        {
            var (leader, end) = await cluster.WaitForSettledEndAsync(stream, partition);
            var log = await ProcessCluster.ReadLogAsync(cluster[leader], stream, end, partition);
            Assert.Equal(Enumerable.Range(0, (int)end + 1).Select(i => (long)i), log.Select(m => m.Offset));
            var payloads = log.Select(m => m.Value.ToStringUtf8()).ToList();
            var repeated = payloads.GroupBy(p => p).Where(g => g.Count() > 1).Select(g => g.Key).Take(10).ToList();
            Assert.True(repeated.Count == 0, $"partition {partition}: stored twice: {string.Join(", ", repeated)}");
            var wrong = _acked.Where(a => a.Value.Partition == partition && (a.Value.Offset > end || payloads[(int)a.Value.Offset] != a.Key)).Take(10).ToList();
            Assert.True(wrong.Count == 0, $"partition {partition}: acked but not at its offset: {string.Join(", ", wrong.Select(w => $"{w.Key}@{w.Value.Offset}"))}");
            foreach (var broker in cluster.Brokers.Where(b => b.Id != leader))
            {
                var replica = await ProcessCluster.ReadLogAsync(broker, stream, end, partition);
                Assert.True(
                    replica.Take(log.Count).Select(m => (m.Offset, m.Value.ToStringUtf8())).SequenceEqual(log.Select(m => (m.Offset, m.Value.ToStringUtf8()))),
                    $"partition {partition}: {broker.Id}'s log differs from the leader {leader}'s");
            }

            stored += end + 1;
        }

        Assert.Equal(0, AckedTwice);
        return stored;
    }

    public void Dispose()
    {
        _stop.Dispose();
        foreach (var window in _windows)
        {
            window.Dispose();
        }
    }

    private async Task RunAsync(int partition, CancellationToken stop)
    {
        var options = new MessageOptions { AckPolicy = AckPolicy.All, Partition = partition };
        var window = _windows[partition];
        for (var i = 0; !stop.IsCancellationRequested; i++)
        {
            try
            {
                await window.WaitAsync(stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            var payload = $"p{partition}-{i}";
            try
            {
                await client.PublishAsync(stream, Encoding.UTF8.GetBytes(payload), OnAck, (this, payload, partition), options, CancellationToken.None);
            }
            catch (SluiceException e)
            {
                Fail(e);
                window.Release();
                await Task.Delay(20, CancellationToken.None); // no broker to queue on right now: back off a little
            }
        }
    }

    private static void OnAck(SluiceAck? ack, Exception? error, (ClusterPublishLoad Load, string Payload, int Partition) state)
    {
        var load = state.Load;
        if (ack is not null)
        {
            if (!load._acked.TryAdd(state.Payload, (state.Partition, ack.Offset)))
            {
                Interlocked.Increment(ref load._ackedTwice);
            }
        }
        else
        {
            load.Fail(error!);
        }

        load._windows[state.Partition].Release();
    }

    private void Fail(Exception e) => _failures.AddOrUpdate(
        e switch
        {
            PublishFailedException p => $"{e.GetType().Name}/{p.Code} \"{p.Message}\"",
            SluiceException { StatusCode: { } code } => $"{e.GetType().Name}/{code} \"{e.Message}\"",
            _ => $"{e.GetType().Name} \"{e.Message}\"",
        },
        1,
        (_, n) => n + 1);
}
