using System.Globalization;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Sluice.Bench.Options;

namespace Sluice.Bench.Targets;

/// <summary>
/// NATS JetStream through the official client (NATS.Net): one file-storage stream per partition, with
/// <see cref="BenchOptions.ReplicationFactor"/> replicas (its PubAck comes once a quorum of them stored the message) (partition 0 is the stream itself on the subject, partition N &gt; 0 is "&lt;stream&gt;-N" on
/// "&lt;subject&gt;.N", Liftbridge's subject mapping), publishes read their PubAcks, and the consumer is an
/// ordered consumer (ephemeral, deliver all, no acks, pulling in batches), as a user reading a stream from the start would write it.
/// </summary>
public sealed class JetStreamTarget(BenchOptions options) : IBenchTarget
{
    // Messages per pull request; NATS.Net re-pulls at half of it, so the server never idles while we parse.
    private const int PullBatch = 1000;

    // JSStreamNameExistErr: a stream with that name and a different configuration exists.
    private const int StreamNameExists = 10058;

    private static readonly TimeSpan ApiTimeout = TimeSpan.FromSeconds(30);
    private NatsConnection? _admin;

    public string Name => "jetstream";

    internal static string StreamName(BenchOptions options, int partition) =>
        partition == 0 ? options.Stream : string.Create(CultureInfo.InvariantCulture, $"{options.Stream}-{partition}");

    internal static string SubjectName(BenchOptions options, int partition) =>
        partition == 0 ? options.Subject : string.Create(CultureInfo.InvariantCulture, $"{options.Subject}.{partition}");

    /// <summary>The stream <see cref="CreateStreamAsync"/> creates for <paramref name="partition"/>.</summary>
    internal static StreamConfig StreamConfigFor(BenchOptions options, int partition) =>
        new(StreamName(options, partition), [SubjectName(options, partition)])
        {
            Retention = StreamConfigRetention.Limits,
            Storage = StreamConfigStorage.File,
            NumReplicas = options.ReplicationFactor,
            Discard = StreamConfigDiscard.Old,
        };

    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        _admin = await ConnectAsync("sluice-bench-admin", cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> CreateStreamAsync(CancellationToken cancellationToken)
    {
        var js = new NatsJSContext(Admin);
        var created = true;
        for (var p = 0; p < options.Partitions; p++)
        {
            try
            {
                await js.CreateStreamAsync(StreamConfigFor(options, p), cancellationToken).ConfigureAwait(false);
            }
            catch (NatsJSApiException ex) when (ex.Error.ErrCode == StreamNameExists)
            {
                // Keep the existing stream, as Liftbridge's bench keeps an existing one.
                created = false;
            }
        }

        return created;
    }

    public async Task DeleteStreamAsync(CancellationToken cancellationToken)
    {
        var js = new NatsJSContext(Admin);
        for (var p = 0; p < options.Partitions; p++)
        {
            await js.DeleteStreamAsync(StreamName(options, p), cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<IBenchConnection> OpenConnectionAsync(CancellationToken cancellationToken)
    {
        var connection = await ConnectAsync("sluice-bench-publisher", cancellationToken).ConfigureAwait(false);
        var subjects = Enumerable.Range(0, options.Partitions).Select(p => SubjectName(options, p)).ToArray();
        return new JetStreamConnection(connection, subjects, options.AckPolicy != BenchAckPolicy.None);
    }

    public async Task<long> ConsumeAsync(long messages, Action started, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(started);
        var stream = StreamName(options, options.Partition);
        await using var connection = await ConnectAsync("sluice-bench-consumer", cancellationToken).ConfigureAwait(false);
        var js = new NatsJSContext(connection);
        var consumer = await js.CreateOrderedConsumerAsync(
            stream,
            new NatsJSOrderedConsumerOpts { DeliverPolicy = ConsumerConfigDeliverPolicy.All },
            cancellationToken).ConfigureAwait(false);
        // Pull requests keep NATS.Net's default expiry (30 s, re-pulled as they end): tying it to the run's
        // timeout failed runs longer than a minute, because the idle heartbeat (half the expiry) must stay under 30 s.
        var consumeOptions = new NatsJSConsumeOpts { MaxMsgs = PullBatch };

        long received = 0;
        long bytes = 0;
        started();

        // Pooled payloads (returned by Dispose): the old hand-written consumer did not copy them either.
        await foreach (var msg in consumer.ConsumeAsync<NatsMemoryOwner<byte>>(opts: consumeOptions, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            using (var data = msg.Data)
            {
                bytes += data.Length;
            }

            if (++received == messages)
            {
                break;
            }
        }

        if (received < messages)
        {
            throw new InvalidOperationException($"the ordered consumer on '{stream}' ended after {received} of {messages} messages");
        }

        return bytes;
    }

    public async ValueTask DisposeAsync()
    {
        if (_admin is not null)
        {
            await _admin.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>One NATS connection: its publishers share it (NATS.Net multiplexes their PubAck replies on one inbox).</summary>
    private sealed class JetStreamConnection(NatsConnection connection, string[] subjects, bool acks) : IBenchConnection
    {
        public Task<IBenchPublisher> OpenPublisherAsync(CancellationToken cancellationToken) =>
            Task.FromResult<IBenchPublisher>(new JetStreamPublisher(connection, subjects, acks));

        public ValueTask DisposeAsync() => connection.DisposeAsync();
    }

    private NatsConnection Admin => _admin ?? throw new InvalidOperationException("Call ConnectAsync first.");

    private async Task<NatsConnection> ConnectAsync(string name, CancellationToken cancellationToken)
    {
        var connection = new NatsConnection(NatsOpts.Default with
        {
            Url = string.Join(',', options.ServersOrDefault),
            Name = name,
            Echo = false,
            RequestTimeout = ApiTimeout,
        });
        try
        {
            await connection.ConnectAsync().AsTask().WaitAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}
