using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Sluice.Client.Grpc;
using Sluice.Protocol.Api;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;

namespace Sluice.Benchmarks.Broker;

/// <summary>
/// The real broker in-process (port 0, temp data dir, durability never) driven by our gRPC client
/// over loopback with 256-byte messages: unary Publish from one caller, PublishAsync with 100 in
/// flight, a subscription reading 1M messages from the start, ack latency, and server memory.
/// <c>dotnet bench/Sluice.Benchmarks/bin/Release/net10.0/Sluice.Benchmarks.dll broker [runs] [subscribeMessages]</c>
/// </summary>
internal static class BrokerBenchmark
{
    private const int SyncMessages = 5_000;       // unary calls are slow (~round trip each): enough for a stable rate
    private const int AsyncMessages = 200_000;
    private const int AsyncWindow = 100;
    private static readonly ByteString Payload = ByteString.CopyFrom(new byte[256]);

    public static async Task<int> RunAsync(string[] args)
    {
        var runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 3;
        var subscribeMessages = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1_000_000;
        var dataDir = Path.Combine(Path.GetTempPath(), "sluice-broker-bench-" + Guid.NewGuid().ToString("N"));
        try
        {
            var options = ServerOptions.Default with
            {
                Host = "127.0.0.1",
                Port = 0,
                DataDir = dataDir,
                Storage = StorageOptions.Default with { Durability = DurabilityMode.Never },
            };
            await using var server = await SluiceServer.StartAsync(options);
            using var channel = new GrpcChannel(new Uri($"http://127.0.0.1:{server.Port}"));
            Console.WriteLine($"Broker, loopback, 256-byte messages, durability never, {runs} runs (median), {Environment.ProcessorCount} cores");

            var syncRates = new List<double>();
            var syncLatencies = new List<double>();
            var asyncRates = new List<double>();
            var asyncLatencies = new List<double>();
            for (var run = -1; run < runs; run++)
            {
                var stream = "bench-" + (run + 1).ToString(CultureInfo.InvariantCulture);
                await channel.UnaryAsync("/proto.API/CreateStream", new CreateStreamRequest { Name = stream, Subject = stream }, CreateStreamResponse.Parser, TimeSpan.FromSeconds(10));
                var (syncRate, syncLat) = await PublishSyncAsync(channel, stream, run < 0 ? 500 : SyncMessages);
                var (asyncRate, asyncLat) = await PublishPipelinedAsync(channel, stream, run < 0 ? 10_000 : AsyncMessages);
                if (run >= 0)
                {
                    // run -1 warms up JIT, connections and pools.
                    syncRates.Add(syncRate);
                    syncLatencies.AddRange(syncLat);
                    asyncRates.Add(asyncRate);
                    asyncLatencies.AddRange(asyncLat);
                }
            }

            Console.WriteLine($"Publish (unary, 1 caller, ack LEADER): median {Median(syncRates):N0} msgs/s (runs {Join(syncRates)})");
            Console.WriteLine($"  ack latency p50 {Percentile(syncLatencies, 50):N3} ms, p99 {Percentile(syncLatencies, 99):N3} ms");
            Console.WriteLine($"PublishAsync ({AsyncWindow} in flight, ack LEADER): median {Median(asyncRates):N0} msgs/s (runs {Join(asyncRates)})");
            Console.WriteLine($"  ack latency p50 {Percentile(asyncLatencies, 50):N3} ms, p99 {Percentile(asyncLatencies, 99):N3} ms");

            await FillAsync(channel, "subscribe", subscribeMessages);
            var subRates = new List<double>();
            for (var run = -1; run < runs; run++)
            {
                var rate = await SubscribeAsync(channel, "subscribe", subscribeMessages);
                if (run >= 0)
                {
                    subRates.Add(rate);
                }
            }

            Console.WriteLine($"Subscribe from the start of {subscribeMessages:N0} messages: median {Median(subRates):N0} msgs/s (runs {Join(subRates)})");
            using var self = Process.GetCurrentProcess();
            self.Refresh();
            var gc = GC.GetGCMemoryInfo();
            Console.WriteLine($"Process memory (server + client in one process): peak working set {self.PeakWorkingSet64 / (1024.0 * 1024):N0} MiB, GC heap {gc.HeapSizeBytes / (1024.0 * 1024):N0} MiB, max GC heap committed {gc.TotalCommittedBytes / (1024.0 * 1024):N0} MiB");
            return 0;
        }
        finally
        {
            try
            {
                Directory.Delete(dataDir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<(double Rate, List<double> LatenciesMs)> PublishSyncAsync(GrpcChannel channel, string stream, int count)
    {
        var latencies = new List<double>(count);
        var total = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            var start = Stopwatch.GetTimestamp();
            var response = await channel.UnaryAsync("/proto.API/Publish", new PublishRequest { Stream = stream, Value = Payload }, PublishResponse.Parser, TimeSpan.FromSeconds(10));
            latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            if (response.Ack is null)
            {
                throw new InvalidOperationException("no ack");
            }
        }

        return (count / total.Elapsed.TotalSeconds, latencies);
    }

    private static async Task<(double Rate, List<double> LatenciesMs)> PublishPipelinedAsync(GrpcChannel channel, string stream, int count)
    {
        var sent = new long[count];
        var latencies = new List<double>(count);
        using var window = new SemaphoreSlim(AsyncWindow, AsyncWindow);
        await using var call = channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        var total = Stopwatch.StartNew();
        var reader = Task.Run(async () =>
        {
            for (var received = 0; received < count; received++)
            {
                if (!await call.MoveNextAsync())
                {
                    throw new InvalidOperationException($"the stream ended after {received} acks");
                }

                var id = int.Parse(call.Current.CorrelationId, CultureInfo.InvariantCulture);
                latencies.Add(Stopwatch.GetElapsedTime(sent[id]).TotalMilliseconds);
                window.Release();
            }
        });
        for (var i = 0; i < count; i++)
        {
            await window.WaitAsync();
            sent[i] = Stopwatch.GetTimestamp();
            await call.WriteAsync(new PublishRequest { Stream = stream, Value = Payload, CorrelationId = i.ToString(CultureInfo.InvariantCulture) });
        }

        await reader;
        var rate = count / total.Elapsed.TotalSeconds;
        await call.CompleteRequestsAsync();
        while (await call.MoveNextAsync())
        {
        }

        return (rate, latencies);
    }

    private static async Task FillAsync(GrpcChannel channel, string stream, int count)
    {
        await channel.UnaryAsync("/proto.API/CreateStream", new CreateStreamRequest { Name = stream, Subject = stream }, CreateStreamResponse.Parser, TimeSpan.FromSeconds(10));
        await using var call = channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        for (var i = 0; i < count; i++)
        {
            await call.WriteAsync(new PublishRequest { Stream = stream, Value = Payload, AckPolicy = AckPolicy.None });
        }

        await call.CompleteRequestsAsync();
        while (await call.MoveNextAsync())
        {
        }

        while (true)
        {
            var metadata = await channel.UnaryAsync("/proto.API/FetchPartitionMetadata", new FetchPartitionMetadataRequest { Stream = stream }, FetchPartitionMetadataResponse.Parser, TimeSpan.FromSeconds(10));
            if (metadata.Metadata.HighWatermark == count - 1)
            {
                return;
            }

            await Task.Delay(50); // a bench waiting for the writer to drain; not a test
        }
    }

    private static async Task<double> SubscribeAsync(GrpcChannel channel, string stream, int count)
    {
        var sw = Stopwatch.StartNew();
        await using var call = channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = stream, StartPosition = StartPosition.Earliest, StopPosition = StopPosition.StopLatest }, Message.Parser);
        var received = -1; // the handshake frame
        try
        {
            while (await call.MoveNextAsync())
            {
                received++;
            }
        }
        catch (Sluice.Protocol.Grpc.GrpcException ex) when (ex.StatusCode == Sluice.Protocol.Grpc.GrpcStatusCode.ResourceExhausted)
        {
            // "Stop offset reached": the end of the run.
        }

        if (received != count)
        {
            throw new InvalidOperationException($"received {received} of {count}");
        }

        return count / sw.Elapsed.TotalSeconds;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    private static double Percentile(List<double> values, int p)
    {
        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p / 100.0 * sorted.Count) - 1)];
    }

    private static string Join(List<double> values) => string.Join(" / ", values.Select(v => v.ToString("N0", CultureInfo.InvariantCulture)));
}
