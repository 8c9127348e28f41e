using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Sluice.Client;
using Sluice.Protocol.Api;
using Sluice.Server.Grpc;

namespace Sluice.Benchmarks.Client;

/// <summary>
/// Client-side throughput and allocations per message of Sluice.Client: pipelined publishes (task
/// and callback forms) and a subscription, against a minimal proto.API server running in a child
/// process, so the allocation counts are the client's alone.
/// Run: <c>dotnet run -c Release --project bench/Sluice.Benchmarks -- client [messages] [runs]</c>.
/// </summary>
internal static class ClientThroughput
{
    private const string Stream = "bench";
    private const int ValueSize = 64;      // small messages: measures per-message cost, not bandwidth
    private const int Window = 1024;       // publishes in flight per batch, like a busy producer

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length > 0 && args[0] == "server")
        {
            await ServeAsync(int.Parse(args[1], CultureInfo.InvariantCulture));
            return 0;
        }

        var messages = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 200_000;
        var runs = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 5;
        using var server = StartServerProcess(messages);
        var address = await server.StandardOutput.ReadLineAsync() ?? throw new InvalidOperationException("the server printed no address");
        try
        {
            await using var client = await SluiceClient.ConnectAsync([address]);
            var value = new byte[ValueSize];
            Console.WriteLine($"Sluice.Client, {messages:N0} messages of {ValueSize} B per run, median of {runs} runs (first run is warm-up and discarded)");
            await MeasureAsync("publish (Task, window 1024)", messages, runs, () => PublishTasksAsync(client, value, messages));
            await MeasureAsync("publish (callback)", messages, runs, () => PublishCallbacksAsync(client, value, messages));
            await MeasureAsync("subscribe", messages, runs, () => SubscribeAsync(client, messages));
        }
        finally
        {
            server.Kill();
        }

        return 0;
    }

    private static async Task MeasureAsync(string name, int messages, int runs, Func<Task> run)
    {
        await run(); // warm-up: JIT, connections, pools
        var rates = new List<double>();
        var bytes = new List<double>();
        for (var i = 0; i < runs; i++)
        {
            GC.Collect();
            var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
            var stopwatch = Stopwatch.StartNew();
            await run();
            stopwatch.Stop();
            var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
            rates.Add(messages / stopwatch.Elapsed.TotalSeconds);
            bytes.Add((double)allocated / messages);
        }

        Console.WriteLine($"{name,-30} {Median(rates),12:N0} msg/s {Median(bytes),10:N0} B/msg allocated (runs: {string.Join(", ", rates.Select(r => r.ToString("N0", CultureInfo.InvariantCulture)))})");
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }

    private static async Task PublishTasksAsync(SluiceClient client, byte[] value, int messages)
    {
        var inFlight = new Task<SluiceAck?>[Window];
        for (var sent = 0; sent < messages;)
        {
            var batch = Math.Min(Window, messages - sent);
            for (var i = 0; i < batch; i++)
            {
                inFlight[i] = client.PublishAsync(Stream, value);
            }

            await Task.WhenAll(inFlight.AsSpan(0, batch));
            sent += batch;
        }
    }

    private static async Task PublishCallbacksAsync(SluiceClient client, byte[] value, int messages)
    {
        var remaining = messages;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnAck(SluiceAck? ack, Exception? error)
        {
            if (error is not null)
            {
                done.TrySetException(error);
            }
            else if (Interlocked.Decrement(ref remaining) == 0)
            {
                done.TrySetResult();
            }
        }

        for (var i = 0; i < messages; i++)
        {
            await client.PublishAsync(Stream, value, OnAck);
        }

        await done.Task;
    }

    private static async Task SubscribeAsync(SluiceClient client, int messages)
    {
        var count = 0;
        await foreach (var message in client.SubscribeAsync(Stream, SubscribeOptions.Default.StartAtEarliest().StopAtOffset(messages - 1)))
        {
            count += message.Value.Length > 0 ? 1 : 0;
        }

        if (count != messages)
        {
            throw new InvalidOperationException($"expected {messages} messages, got {count}");
        }
    }

    private static Process StartServerProcess(int messages)
    {
        var self = Environment.ProcessPath!;
        var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            start.ArgumentList.Add(typeof(ClientThroughput).Assembly.Location);
        }

        start.ArgumentList.Add("client");
        start.ArgumentList.Add("server");
        start.ArgumentList.Add(messages.ToString(CultureInfo.InvariantCulture));
        return Process.Start(start) ?? throw new InvalidOperationException("could not start the server process");
    }

    /// <summary>A minimal proto.API: one broker, one stream of <paramref name="messages"/> messages, every publish acked.</summary>
    private static async Task ServeAsync(int messages)
    {
        var log = new Message[messages];
        var value = ByteString.CopyFrom(new byte[ValueSize]);
        for (var i = 0; i < messages; i++)
        {
            log[i] = new Message { Offset = i, Value = value, Stream = Stream, Subject = Stream, Timestamp = i };
        }

        var registry = new GrpcMethodRegistry();
        GrpcServer? server = null;
        registry
            .AddUnary<FetchMetadataRequest, FetchMetadataResponse>("proto.API", "FetchMetadata", FetchMetadataRequest.Parser, (_, _) =>
            {
                var response = new FetchMetadataResponse();
                response.Brokers.Add(new Sluice.Protocol.Api.Broker { Id = "b0", Host = "127.0.0.1", Port = server!.Port });
                var stream = new StreamMetadata { Name = Stream, Subject = Stream };
                stream.Partitions[0] = new PartitionMetadata { Id = 0, Leader = "b0", Replicas = { "b0" }, Isr = { "b0" } };
                response.StreamMetadata.Add(stream);
                return ValueTask.FromResult(response);
            })
            .AddDuplexStreaming<PublishRequest, PublishResponse>("proto.API", "PublishAsync", PublishRequest.Parser, async (requests, responses, context) =>
            {
                long offset = 0;
                await foreach (var request in requests)
                {
                    var ack = new Ack { Stream = request.Stream, Offset = offset++, CorrelationId = request.CorrelationId, MsgSubject = Stream };
                    await responses.WriteAsync(new PublishResponse { Ack = ack, CorrelationId = request.CorrelationId }, context.CancellationToken);
                }
            })
            .AddServerStreaming<SubscribeRequest, Message>("proto.API", "Subscribe", SubscribeRequest.Parser, async (request, responses, context) =>
            {
                await responses.WriteAsync(new Message(), context.CancellationToken);
                var stop = Math.Min(request.StopOffset, messages - 1);
                for (var i = request.StartOffset; i <= stop; i++)
                {
                    await responses.WriteAsync(log[i], context.CancellationToken);
                }

                throw new Sluice.Protocol.Grpc.GrpcException(Sluice.Protocol.Grpc.GrpcStatusCode.ResourceExhausted, "Stop offset reached");
            });
        server = new GrpcServer(GrpcServerOptions.Default with { Port = 0 }, registry);
        await server.StartAsync();
        Console.WriteLine($"127.0.0.1:{server.Port}");
        await Task.Delay(Timeout.Infinite);
    }
}
