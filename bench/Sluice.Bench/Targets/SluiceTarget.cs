using Sluice.Bench.Options;
using Sluice.Bench.Runs;
using Sluice.Client;

namespace Sluice.Bench.Targets;

/// <summary>
/// A Sluice (or Liftbridge) server through <c>Sluice.Client</c>: synchronous publishes await
/// <see cref="SluiceClient.PublishAsync(string, ReadOnlyMemory{byte}, MessageOptions?, CancellationToken)"/>,
/// windowed ones use the callback form (go-liftbridge's PublishAsync), and the consumer is a
/// subscription from the earliest offset.
/// </summary>
public sealed class SluiceTarget(BenchOptions options) : IBenchTarget
{
    private SluiceClient? _admin;

    public string Name => "sluice";

    internal static AckPolicy ToClient(BenchAckPolicy policy) => policy switch
    {
        BenchAckPolicy.None => AckPolicy.None,
        BenchAckPolicy.All => AckPolicy.All,
        _ => AckPolicy.Leader,
    };

    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        _admin = await SluiceClient.ConnectAsync(options.ServersOrDefault, ClientOptions, cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> CreateStreamAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Admin.CreateStreamAsync(options.Subject, options.Stream, StreamOptions.Default with { Partitions = options.Partitions, ReplicationFactor = options.ReplicationFactor, MinIsr = options.MinIsr }, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (StreamExistsException)
        {
            return false;
        }
    }

    public Task DeleteStreamAsync(CancellationToken cancellationToken) => Admin.DeleteStreamAsync(options.Stream, cancellationToken);

    public async Task<IBenchConnection> OpenConnectionAsync(CancellationToken cancellationToken)
    {
        var client = await SluiceClient.ConnectAsync(options.ServersOrDefault, ClientOptions, cancellationToken).ConfigureAwait(false);
        return new SluiceConnection(client, options);
    }

    public async Task<long> ConsumeAsync(long messages, Action started, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(started);
        await using var client = await SluiceClient.ConnectAsync(options.ServersOrDefault, ClientOptions, cancellationToken).ConfigureAwait(false);
        var subscribe = SubscribeOptions.Default.StartAtEarliest() with { Partition = options.Partition };
        await using var subscription = await client.SubscribeCoreAsync(options.Stream, subscribe, cancellationToken).ConfigureAwait(false);
        started();
        long received = 0;
        long bytes = 0;
        await foreach (var message in subscription.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            received++;
            bytes += message.Value.Length;
            if (received == messages)
            {
                return bytes;
            }
        }

        throw new InvalidOperationException($"the subscription to '{options.Stream}' ended after {received} of {messages} messages");
    }

    public async ValueTask DisposeAsync()
    {
        if (_admin is not null)
        {
            await _admin.DisposeAsync().ConfigureAwait(false);
        }
    }

    private SluiceClient Admin => _admin ?? throw new InvalidOperationException("Call ConnectAsync first.");

    private SluiceClientOptions ClientOptions => SluiceClientOptions.Default with
    {
        // A sync run of a million messages on a loaded 2-core box can see multi-second stalls; the run timeout is the real limit.
        AckWaitTime = options.Timeout,
        Transport = options.Transport,
    };

    /// <summary>One client: its publishers share its connection and its PublishAsync stream.</summary>
    private sealed class SluiceConnection(SluiceClient client, BenchOptions options) : IBenchConnection
    {
        public Task<IBenchPublisher> OpenPublisherAsync(CancellationToken cancellationToken) =>
            Task.FromResult<IBenchPublisher>(new SluicePublisher(client, options));

        public ValueTask DisposeAsync() => client.DisposeAsync();
    }

    private sealed class SluicePublisher(SluiceClient client, BenchOptions options) : IBenchPublisher
    {
        private readonly AckPolicy _ackPolicy = ToClient(options.AckPolicy);

        public Task PublishAndWaitAsync(BenchMessage message, CancellationToken cancellationToken) =>
            client.PublishAsync(options.Stream, message.Value, Options(message), cancellationToken);

        // The state form: one static handler, no closure per message.
        public ValueTask PublishAsync(BenchMessage message, IAckSink sink, long state, CancellationToken cancellationToken) =>
            client.PublishAsync(options.Stream, message.Value, OnAck, (sink, state), Options(message), cancellationToken);

        // With ack policy none the Liftbridge protocol confirms nothing, so the run ends when the client has the last message.
        public Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        // The client belongs to the connection; a publisher holds nothing of its own.
        public ValueTask DisposeAsync() => default;

        private static readonly AckHandler<(IAckSink Sink, long State)> OnAck = static (_, error, s) => s.Sink.OnAck(s.State, error);

        private MessageOptions Options(BenchMessage message) => new()
        {
            Key = message.Key,
            Partition = message.Partition,
            AckPolicy = _ackPolicy,
        };
    }
}
