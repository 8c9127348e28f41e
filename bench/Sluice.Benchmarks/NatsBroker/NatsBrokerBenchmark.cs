using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using NATS.Client.Core;
using Sluice.Protocol.Api;
using Sluice.Protocol.Envelopes;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;
using Sluice.TestKit;

namespace Sluice.Benchmarks.NatsBroker;

/// <summary>
/// NATS publish → stored → ack through the broker: a real nats-server on loopback, the broker in-process
/// attached to it (durability never), and one NATS.Net publisher sending enveloped 256-byte messages
/// with an ack inbox (AckPolicy LEADER) and counting the acks that come back.
/// <c>dotnet bench/Sluice.Benchmarks/bin/Release/net10.0/Sluice.Benchmarks.dll nats-broker [runs] [messages] [window]</c>
/// </summary>
internal static class NatsBrokerBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 3;
        var messages = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 200_000;
        // In-flight messages: below the partition queue (16 Ki) and the subscription buffer (64 Ki), so nothing is dropped.
        var window = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 8_192;
        var dataDir = Path.Combine(Path.GetTempPath(), "sluice-natsbroker-bench-" + Guid.NewGuid().ToString("N"));
        await using var nats = await NatsServerProcess.StartAsync();
        try
        {
            var options = ServerOptions.Default with
            {
                Host = "127.0.0.1",
                Port = 0,
                DataDir = dataDir,
                Storage = StorageOptions.Default with { Durability = DurabilityMode.Never },
                Nats = NatsConnectionSettings.Default with { Servers = [nats.Url] },
            };
            await using var server = await SluiceServer.StartAsync(options);
            using var channel = new Sluice.Client.Grpc.GrpcChannel(new Uri($"http://127.0.0.1:{server.Port}"));
            await using var publisher = new NatsConnection(new NatsOpts { Url = nats.Url, SubPendingChannelCapacity = 1 << 20 });
            await publisher.ConnectAsync();
            Console.WriteLine($"NATS → broker → ack, nats-server on loopback, 256-byte enveloped messages, AckPolicy LEADER, {window} in flight, durability never, {runs} runs (median), {Environment.ProcessorCount} cores");

            var rates = new List<double>();
            for (var run = -1; run < runs; run++)
            {
                var name = "nb" + (run + 1).ToString(CultureInfo.InvariantCulture);
                await channel.UnaryAsync("/proto.API/CreateStream", new CreateStreamRequest { Name = name, Subject = name }, CreateStreamResponse.Parser, TimeSpan.FromSeconds(10));
                var rate = await RunOnceAsync(publisher, name, run < 0 ? 20_000 : messages, window);
                if (run >= 0)
                {
                    rates.Add(rate); // run -1 warms up JIT and pools
                    Console.WriteLine($"  run {run + 1}: {rate:N0} acked msgs/s");
                }
            }

            rates.Sort();
            Console.WriteLine($"NATS publish → stored → ack: median {rates[rates.Count / 2]:N0} msgs/s ({rates[rates.Count / 2] * 256 / (1024 * 1024):N1} MiB/s of values)");
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

    private static async Task<double> RunOnceAsync(NatsConnection publisher, string subject, int count, int window)
    {
        var inbox = "bench.acks." + subject;
        await using var acks = await publisher.SubscribeCoreAsync<byte[]>(inbox);
        await publisher.PingAsync();
        var value = ByteString.CopyFrom(new byte[256]);
        var envelope = Envelope.EncodePublish(new Message { Value = value, AckInbox = inbox, AckPolicy = AckPolicy.Leader, Offset = -1 });

        // The broker subscribes when the stream is created; probe (acks to another inbox) until an ack proves the SUB is in place.
        var probeInbox = "bench.probe." + subject;
        await using (var probeAcks = await publisher.SubscribeCoreAsync<byte[]>(probeInbox))
        {
            var probe = Envelope.EncodePublish(new Message { Value = value, AckInbox = probeInbox, AckPolicy = AckPolicy.Leader, Offset = -1 });
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (true)
            {
                await publisher.PublishAsync(subject, probe);
                await publisher.PingAsync();
                using var wait = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
                try
                {
                    await probeAcks.Msgs.ReadAsync(wait.Token);
                    break;
                }
                catch (OperationCanceledException) when (DateTime.UtcNow < deadline)
                {
                }
            }
        }

        using var credits = new SemaphoreSlim(window, window);
        var received = 0;
        var reader = Task.Run(async () =>
        {
            while (received < count && await acks.Msgs.WaitToReadAsync())
            {
                while (received < count && acks.Msgs.TryRead(out var msg))
                {
                    if (msg.Data is not { Length: > 7 } data || data[7] != (byte)EnvelopeType.Ack)
                    {
                        throw new InvalidOperationException("not an ack");
                    }

                    received++;
                    credits.Release();
                }
            }
        });

        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            await credits.WaitAsync();
            await publisher.PublishAsync(subject, envelope);
        }

        await publisher.PingAsync();
        await reader.WaitAsync(TimeSpan.FromSeconds(120));
        var elapsed = clock.Elapsed;
        // CPU of this process (publisher and broker; nats-server is apart) per message: steadier than the rate on a shared machine.
        var cpuPerMessage = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMicroseconds / count;
        Console.WriteLine($"    {cpuPerMessage:N1} µs CPU per message (publisher + broker process)");
        return count / elapsed.TotalSeconds;
    }
}
