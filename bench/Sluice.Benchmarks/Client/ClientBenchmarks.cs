using BenchmarkDotNet.Attributes;
using Sluice.Client;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;

namespace Sluice.Benchmarks.Client;

/// <summary>
/// Sluice.Client publish and subscribe cost per message, measured by BenchmarkDotNet against a real
/// broker in the same process (durability never, a temp data dir). The memory diagnoser counts every
/// allocation of the process, so "allocated" is the client's and the in-process broker's together.
/// Run: <c>dotnet run -c Release --project bench/Sluice.Benchmarks -- --filter '*ClientBenchmarks*'</c>.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 2, iterationCount: 5)] // minutes, not an hour: enough to see the order of magnitude
public class ClientBenchmarks
{
    private const int Messages = 1_000;
    private const string PublishStream = "publish";
    private const string ReadStream = "read";

    private readonly byte[] _value = new byte[64]; // small messages: per-message cost, not bandwidth
    private string _dataDir = "";
    private SluiceServer? _server;
    private SluiceClient? _client;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _dataDir = Path.Combine(Path.GetTempPath(), $"sluice-clientbench-{Guid.NewGuid():N}");
        _server = await SluiceServer.StartAsync(ServerOptions.Default with
        {
            Host = "127.0.0.1",
            Port = 0,
            DataDir = _dataDir,
            Storage = StorageOptions.Default with { Durability = DurabilityMode.Never },
        });
        _client = await SluiceClient.ConnectAsync([$"127.0.0.1:{_server.Port}"]);
        await _client.CreateStreamAsync(PublishStream, PublishStream);
        await _client.CreateStreamAsync(ReadStream, ReadStream);
        await Task.WhenAll(Enumerable.Range(0, Messages).Select(_ => _client.PublishAsync(ReadStream, _value)));
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }

        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        Directory.Delete(_dataDir, recursive: true);
    }

    /// <summary>One publish at a time, each awaited before the next: the latency-bound case.</summary>
    [Benchmark(OperationsPerInvoke = Messages)]
    public async Task PublishAwaitedOneByOne()
    {
        var client = _client!;
        for (var i = 0; i < Messages; i++)
        {
            await client.PublishAsync(PublishStream, _value);
        }
    }

    /// <summary>The callback form: queue all, then wait for the last ack (go's PublishAsync).</summary>
    [Benchmark(OperationsPerInvoke = Messages)]
    public async Task PublishPipelinedCallbacks()
    {
        var client = _client!;
        var remaining = Messages;
        Exception? failure = null;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        AckHandler onAck = (_, error) =>
        {
            if (error is not null)
            {
                failure = error;
            }

            if (Interlocked.Decrement(ref remaining) == 0)
            {
                done.SetResult();
            }
        };
        for (var i = 0; i < Messages; i++)
        {
            await client.PublishAsync(PublishStream, _value, onAck);
        }

        await done.Task;
        if (failure is not null)
        {
            throw new InvalidOperationException("a publish failed", failure);
        }
    }

    /// <summary>A subscription reading the same 1,000 messages from the earliest offset to a stop offset.</summary>
    [Benchmark(OperationsPerInvoke = Messages)]
    public async Task SubscribeFromEarliest()
    {
        var read = 0;
        await foreach (var _ in _client!.SubscribeAsync(ReadStream, SubscribeOptions.Default.StartAtEarliest().StopAtOffset(Messages - 1)))
        {
            read++;
        }

        if (read != Messages)
        {
            throw new InvalidOperationException($"read {read} messages, expected {Messages}");
        }
    }
}
