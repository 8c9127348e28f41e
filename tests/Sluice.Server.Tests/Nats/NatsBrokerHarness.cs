using NATS.Client.Core;
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

    public static async Task<NatsBrokerHarness> StartAsync(
        Func<ServerOptions, ServerOptions>? configure = null,
        NatsServerProcessOptions? natsOptions = null,
        Func<NatsOpts, NatsOpts>? client = null,
        Func<string, string>? brokerUrl = null)
    {
        var nats = await NatsServerProcess.StartAsync(natsOptions);
        BrokerHarness? broker = null;
        try
        {
            broker = await BrokerHarness.StartAsync(o =>
            {
                o = o with { Nats = o.Nats with { Servers = [brokerUrl?.Invoke(nats.Url) ?? nats.Url] } };
                return configure?.Invoke(o) ?? o;
            });
            var clientOpts = new NatsOpts
            {
                Url = nats.Url,
                AuthOpts = new NatsAuthOpts { Username = natsOptions?.User, Password = natsOptions?.Password },
                ConnectTimeout = TimeSpan.FromSeconds(10), // the machine is shared; tests here are not about connect timeouts
                ReconnectWaitMin = TimeSpan.FromMilliseconds(100),
                ReconnectWaitMax = TimeSpan.FromMilliseconds(500),
                MaxReconnectRetry = -1,
            };
            var connection = new NatsConnection(client?.Invoke(clientOpts) ?? clientOpts);
            await connection.ConnectAsync();
            return new NatsBrokerHarness(nats, broker, connection);
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
    public async Task SyncBrokerAsync() => await Attachment.FlushAsync().WaitAsync(BrokerHarness.CallTimeout);

    /// <summary>A plain subscription on <see cref="Client"/> that nats-server has registered when this returns.</summary>
    public async Task<INatsSub<byte[]>> SubscribeAsync(string subject)
    {
        var sub = await Client.SubscribeCoreAsync<byte[]>(subject);
        await Client.PingAsync();
        return sub;
    }

    public async Task PublishAsync(string subject, byte[] data, string? replyTo = null)
    {
        await Client.PublishAsync(subject, data, replyTo: replyTo);
        await Client.PingAsync();
    }

    /// <summary>The next message on <paramref name="sub"/>, within the call timeout.</summary>
    public static async Task<NatsMsg<byte[]>> NextAsync(INatsSub<byte[]> sub) =>
        await sub.Msgs.ReadAsync().AsTask().WaitAsync(BrokerHarness.CallTimeout);

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
