using System.Text;
using Sluice.Client;

namespace Sluice.Console.Tests;

/// <summary>
/// A server with what an operator would look at: three streams with messages, a cursor, and a consumer group
/// "billing" whose member handled 10 of the 15 messages of "payments", committed, and is stuck on the 11th (so it lags).
/// </summary>
public sealed class SeededServer : IAsyncLifetime
{
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SluiceConsumer? _member;
    private int _handled;

    public ConsoleServer Node { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Node = await ConsoleServer.StartAsync();
        var client = Node.Client;
        await client.CreateStreamAsync("orders.created", "orders", StreamOptions.Default with { Partitions = 3 });
        await client.CreateStreamAsync("payments.settled", "payments");
        await client.CreateStreamAsync("audit.log", "audit-log");
        await Node.PublishAsync("orders", 0, 12);
        await Node.PublishAsync("orders", 1, 7);
        await Node.PublishAsync("orders", 2, 5);
        await Node.PublishAsync("payments", 0, 15);
        await Node.PublishAsync("audit-log", 0, 3);
        await client.SetCursorAsync("audit", "orders", 0, 3);

        var handledTen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _member = client.CreateConsumer("billing", ConsumerOptions.Default with { ConsumerId = "billing-1", AutoCommitInterval = TimeSpan.Zero });
        await _member.SubscribeAsync(["payments"], async (message, ct) =>
        {
            if (Interlocked.Increment(ref _handled) > 10)
            {
                await _release.Task.WaitAsync(ct); // stuck: the rest of the partition is lag
                return;
            }

            if (Volatile.Read(ref _handled) == 10)
            {
                handledTen.TrySetResult();
            }
        });
        await handledTen.Task.WaitAsync(TimeSpan.FromSeconds(20));
        await _member.CommitAsync();
    }

    public async Task DisposeAsync()
    {
        _release.TrySetResult();
        if (_member is not null)
        {
            await _member.DisposeAsync();
        }

        if (Node is not null)
        {
            await Node.DisposeAsync();
        }
    }

    /// <summary>Publishes to orders/1 until disposed, so the rates are not zero.</summary>
    public IAsyncDisposable Traffic(string stream = "orders", int partition = 1)
    {
        var stop = new CancellationTokenSource();
        var loop = Task.Run(async () =>
        {
            var i = 0;
            while (!stop.IsCancellationRequested)
            {
                await Node.Client.PublishAsync(stream, Encoding.UTF8.GetBytes($"live-{i++}"), MessageOptions.Default with { Partition = partition });
                await Task.Delay(20, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        });
        return new Stopper(stop, loop);
    }

    private sealed class Stopper(CancellationTokenSource stop, Task loop) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await stop.CancelAsync();
            await loop;
            stop.Dispose();
        }
    }
}
