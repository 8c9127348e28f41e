using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Sluice.Client.Grpc;
using Sluice.Protocol.Api;
using Sluice.Server.Grpc;

namespace Sluice.Benchmarks.Grpc;

/// <summary>
/// Raw gRPC transport throughput over loopback: our client against our server in one process,
/// 256-byte payloads, no storage behind the handlers.
/// <c>dotnet run -c Release --project bench/Sluice.Benchmarks -- grpc [runs] [messages]</c>
/// </summary>
internal static class GrpcTransportBenchmark
{
    private static readonly ByteString Payload = ByteString.CopyFrom(new byte[256]);

    public static async Task<int> RunAsync(string[] args)
    {
        var runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 5;
        var messages = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1_000_000;

        var methods = new GrpcMethodRegistry()
            .AddServerStreaming<SubscribeRequest, Message>("proto.API", "Subscribe", SubscribeRequest.Parser, async (request, responses, context) =>
            {
                for (long i = 0; i < request.StartOffset; i++)
                {
                    await responses.WriteAsync(new Message { Offset = i, Value = Payload, Stream = request.Stream }, context.CancellationToken);
                }
            })
            .AddDuplexStreaming<PublishRequest, PublishResponse>("proto.API", "PublishAsync", PublishRequest.Parser, async (requests, responses, context) =>
            {
                long offset = 0;
                await foreach (var request in requests)
                {
                    await responses.WriteAsync(new PublishResponse { CorrelationId = request.CorrelationId, Ack = new Ack { Stream = request.Stream, Offset = offset++, CorrelationId = request.CorrelationId } }, context.CancellationToken);
                }
            });
        await using var server = new GrpcServer(GrpcServerOptions.Default with { Port = 0 }, methods);
        await server.StartAsync();
        using var channel = new GrpcChannel(new Uri($"http://127.0.0.1:{server.Port}"));

        Console.WriteLine($"gRPC transport, loopback, 256-byte payloads, {messages:N0} messages per run, {runs} runs, {Environment.ProcessorCount} cores");
        await MeasureAsync("server-streaming (Subscribe, 1 stream)", runs, messages, () => StreamAsync(channel, messages));
        await MeasureAsync("bidi publish + ack each (PublishAsync, 1 stream)", runs, messages, () => PublishAsync(channel, messages));
        return 0;
    }

    private static async Task MeasureAsync(string name, int runs, int messages, Func<Task> run)
    {
        await run(); // warm-up: JIT, connection, pools
        var rates = new List<double>();
        for (var i = 0; i < runs; i++)
        {
            var sw = Stopwatch.StartNew();
            await run();
            rates.Add(messages / sw.Elapsed.TotalSeconds);
        }

        rates.Sort();
        Console.WriteLine($"{name}: median {rates[rates.Count / 2]:N0} msgs/s (runs: {string.Join(" / ", rates.Select(r => r.ToString("N0", CultureInfo.InvariantCulture)))})");
    }

    private static async Task StreamAsync(GrpcChannel channel, int messages)
    {
        await using var call = channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "bench", StartOffset = messages }, Message.Parser);
        var count = 0;
        while (await call.MoveNextAsync())
        {
            count++;
        }

        if (count != messages)
        {
            throw new InvalidOperationException($"received {count} of {messages}");
        }
    }

    private static async Task PublishAsync(GrpcChannel channel, int messages)
    {
        await using var call = channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        var reading = Task.Run(async () =>
        {
            var acks = 0;
            while (acks < messages && await call.MoveNextAsync())
            {
                acks++;
            }

            return acks;
        });
        for (var i = 0; i < messages; i++)
        {
            await call.WriteAsync(new PublishRequest { Stream = "bench", Value = Payload, CorrelationId = "c" });
        }

        await call.CompleteRequestsAsync();
        var received = await reading;
        if (received != messages)
        {
            throw new InvalidOperationException($"received {received} of {messages} acks");
        }
    }
}
