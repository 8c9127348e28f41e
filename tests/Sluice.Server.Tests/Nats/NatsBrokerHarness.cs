using Sluice.Nats;
using Sluice.Protocol.Api;
using Sluice.Server.Configuration;
using Sluice.Server.Nats;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Nats;

/// <summary>A real nats-server on loopback, a broker attached to it, and a plain NATS client connection.</summary>
internal sealed class NatsBrokerHarness : IAsyncDisposable
{
    private NatsBrokerHarness(NatsServerProcess nats, BrokerHarness broker, NatsConnection client)
    {
        Nats = nats;
        Broker = broker;
        Client = client;
    }

    public NatsServerProcess Nats { get; }

    public BrokerHarness Broker { get; }

    /// <summary>A plain NATS publisher/subscriber, as any NATS application.</summary>
    public NatsConnection Client { get; }

    public NatsAttachment Attachment => Broker.Server.Broker.Context.Nats ?? throw new InvalidOperationException("the broker is not attached to NATS");

    public static async Task<NatsBrokerHarness> StartAsync(Func<ServerOptions, ServerOptions>? configure = null, NatsServerProcessOptions? natsOptions = null)
    {
        var nats = await NatsServerProcess.StartAsync(natsOptions);
        BrokerHarness? broker = null;
        try
        {
            broker = await BrokerHarness.StartAsync(o =>
            {
                o = o with { Nats = o.Nats with { Servers = [nats.Url] } };
                return configure?.Invoke(o) ?? o;
            });
            var client = await NatsConnection.ConnectAsync(NatsOptions.Default with
            {
                Servers = [nats.Url],
                User = natsOptions?.User,
                Password = natsOptions?.Password,
                ConnectTimeout = TimeSpan.FromSeconds(10), // the machine is shared; tests here are not about connect timeouts
                ReconnectWait = TimeSpan.FromMilliseconds(100),
                ReconnectWaitMax = TimeSpan.FromMilliseconds(500),
                MaxReconnectAttempts = -1,
            });
            return new NatsBrokerHarness(nats, broker, client);
        }
        catch
        {
            if (broker is not null)
            {
                await broker.DisposeAsync();
            }

            await nats.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Creates a stream and waits until nats-server has processed the broker's SUBs (a PING/PONG on the
    /// broker's connection), so a publish right after reaches the stream.
    /// </summary>
    public async Task CreateStreamAsync(string name, string subject, int partitions = 1, Action<CreateStreamRequest>? configure = null)
    {
        await Broker.CreateStreamAsync(name, subject, partitions, configure);
        await SyncBrokerAsync();
    }

    /// <summary>Round trip on the broker's NATS connection: everything it sent before (SUB, UNSUB, acks) is processed by nats-server.</summary>
    public async Task SyncBrokerAsync() => await Attachment.Connection.FlushAsync();

    public async Task PublishAsync(string subject, byte[] data, string? replyTo = null)
    {
        await Client.PublishAsync(subject, data, replyTo: replyTo);
        await Client.FlushAsync();
    }

    public async Task WaitForNewestOffsetAsync(string stream, long offset, int partition = 0) =>
        await BrokerHarness.WaitUntilAsync(
            async () => (await Broker.PartitionMetadataAsync(stream, partition)).NewestOffset >= offset,
            $"{stream}/{partition} to reach offset {offset}");

    public async Task<List<Message>> ReadAllAsync(string stream, int count, int partition = 0)
    {
        await using var call = await Broker.SubscribeAsync(new SubscribeRequest { Stream = stream, Partition = partition, StartPosition = StartPosition.Earliest });
        return await BrokerHarness.ReadAsync(call, count);
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await Broker.DisposeAsync();
        await Nats.DisposeAsync();
    }
}
