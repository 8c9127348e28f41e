using System.Diagnostics;
using System.Globalization;
using NATS.Client.Core;
using Sluice.TestKit;

namespace Sluice.Benchmarks.Nats;

/// <summary>
/// Raw publish throughput of NATS.Net (the client the broker uses) against a nats-server it starts on 127.0.0.1.
/// <c>dotnet run -c Release --project bench/Sluice.Benchmarks -- nats [--count N] [--size B] [--runs R]</c>
/// </summary>
public static class NatsThroughput
{
    public static async Task<int> RunAsync(string[] args)
    {
        var count = Arg(args, "--count", 1_000_000);
        var size = Arg(args, "--size", 256);
        var runs = Arg(args, "--runs", 3);
        await using var server = await NatsServerProcess.StartAsync();
        Console.WriteLine($"nats-server {server.Url}, {count:N0} msgs x {size} B, {runs} runs, {Environment.ProcessorCount} cores");

        var pub = new List<double>();
        var pubSub = new List<double>();
        for (var run = 1; run <= runs; run++)
        {
            var p = await PublishOnlyAsync(server.Url, count, size);
            pub.Add(p);
            var (ps, dropped) = await PublishSubscribeAsync(server.Url, count, size);
            pubSub.Add(ps);
            Console.WriteLine($"run {run}: publish-only {p:N0} msgs/s; pub+sub {ps:N0} msgs/s (dropped {dropped})");
        }

        Console.WriteLine($"median publish-only: {Median(pub):N0} msgs/s ({Median(pub) * size / 1024 / 1024:N1} MiB/s)");
        Console.WriteLine($"median pub+sub:      {Median(pubSub):N0} msgs/s ({Median(pubSub) * size / 1024 / 1024:N1} MiB/s)");
        return 0;
    }

    private static async Task<double> PublishOnlyAsync(string url, int count, int size)
    {
        await using var nats = new NatsConnection(new NatsOpts { Url = url });
        await nats.ConnectAsync();
        var payload = new byte[size];
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            await nats.PublishAsync("bench.pub", payload);
        }

        await nats.PingAsync();
        return count / clock.Elapsed.TotalSeconds;
    }

    private static async Task<(double Rate, long Dropped)> PublishSubscribeAsync(string url, int count, int size)
    {
        var options = new NatsOpts { Url = url, SubPendingChannelCapacity = 1_000_000 };
        await using var subscriber = new NatsConnection(options);
        await using var publisher = new NatsConnection(options);
        long dropped = 0;
        subscriber.MessageDropped += (_, _) =>
        {
            Interlocked.Increment(ref dropped);
            return ValueTask.CompletedTask;
        };
        await using var sub = await subscriber.SubscribeCoreAsync<byte[]>("bench.pubsub");
        await subscriber.PingAsync();
        await publisher.ConnectAsync();
        var received = 0;
        var consumer = Task.Run(async () =>
        {
            await foreach (var msg in sub.Msgs.ReadAllAsync())
            {
                if (++received == count)
                {
                    break;
                }
            }
        });

        var payload = new byte[size];
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            await publisher.PublishAsync("bench.pubsub", payload);
        }

        await publisher.PingAsync();
        await subscriber.PingAsync();
        await Task.WhenAny(consumer, Task.Delay(TimeSpan.FromSeconds(60)));
        var rate = received / clock.Elapsed.TotalSeconds;
        return (rate, Interlocked.Read(ref dropped));
    }

    private static int Arg(string[] args, string name, int fallback)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? int.Parse(args[index + 1], CultureInfo.InvariantCulture) : fallback;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
