using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sluice.Bench.Options;
using Sluice.Nats;
using Sluice.Nats.JetStream;

namespace Sluice.Bench.Targets;

/// <summary>
/// NATS JetStream through <c>Sluice.Nats</c>: one file-storage, single-replica stream per partition
/// (partition 0 is the stream itself on the subject, partition N &gt; 0 is "&lt;stream&gt;-N" on
/// "&lt;subject&gt;.N", Liftbridge's subject mapping), publishes read their PubAcks, and the
/// consumer is a pull consumer fetching in batches.
/// </summary>
public sealed class JetStreamTarget(BenchOptions options) : IBenchTarget
{
    // Messages per pull request; two requests are kept outstanding so the server never idles while we parse.
    private const int PullBatch = 1000;

    private static readonly TimeSpan ApiTimeout = TimeSpan.FromSeconds(30);
    private NatsConnection? _admin;

    public string Name => "jetstream";

    internal static string StreamName(BenchOptions options, int partition) =>
        partition == 0 ? options.Stream : string.Create(CultureInfo.InvariantCulture, $"{options.Stream}-{partition}");

    internal static string SubjectName(BenchOptions options, int partition) =>
        partition == 0 ? options.Subject : string.Create(CultureInfo.InvariantCulture, $"{options.Subject}.{partition}");

    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        _admin = await NatsConnection.ConnectAsync(ConnectionOptions("sluice-bench-admin"), cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> CreateStreamAsync(CancellationToken cancellationToken)
    {
        var created = true;
        for (var p = 0; p < options.Partitions; p++)
        {
            var config = new JsonObject
            {
                ["name"] = StreamName(options, p),
                ["subjects"] = new JsonArray(SubjectName(options, p)),
                ["retention"] = "limits",
                ["storage"] = "file",
                ["num_replicas"] = 1,
                ["discard"] = "old",
            };
            try
            {
                using var response = await ApiAsync($"$JS.API.STREAM.CREATE.{StreamName(options, p)}", config, cancellationToken).ConfigureAwait(false);
            }
            catch (NatsJetStreamException ex) when (ex.ErrorCode == 10058)
            {
                // JSStreamNameExistErr: keep the existing stream, as Liftbridge's bench keeps an existing one.
                created = false;
            }
        }

        return created;
    }

    public async Task DeleteStreamAsync(CancellationToken cancellationToken)
    {
        for (var p = 0; p < options.Partitions; p++)
        {
            using var response = await ApiAsync($"$JS.API.STREAM.DELETE.{StreamName(options, p)}", null, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<IBenchConnection> OpenConnectionAsync(CancellationToken cancellationToken)
    {
        var connection = await NatsConnection.ConnectAsync(ConnectionOptions("sluice-bench-publisher"), cancellationToken).ConfigureAwait(false);
        var subjects = Enumerable.Range(0, options.Partitions).Select(p => SubjectName(options, p)).ToArray();
        return new JetStreamConnection(connection, subjects, options.AckPolicy != BenchAckPolicy.None);
    }

    public async Task<long> ConsumeAsync(long messages, Action started, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(started);
        var admin = Admin;
        var stream = StreamName(options, options.Partition);
        var config = new JsonObject
        {
            ["stream_name"] = stream,
            ["config"] = new JsonObject
            {
                ["deliver_policy"] = "all",
                ["ack_policy"] = "none",
                ["inactive_threshold"] = (long)TimeSpan.FromMinutes(5).TotalNanoseconds,
            },
        };
        using var created = await ApiAsync($"$JS.API.CONSUMER.CREATE.{stream}", config, cancellationToken).ConfigureAwait(false);
        var consumer = created.RootElement.GetProperty("name").GetString()
            ?? throw new NatsProtocolException("consumer create response without a name");

        await using var connection = await NatsConnection.ConnectAsync(ConnectionOptions("sluice-bench-consumer"), cancellationToken).ConfigureAwait(false);
        var inbox = "_INBOX." + Guid.NewGuid().ToString("N");
        await using var sub = await connection.SubscribeAsync(inbox, cancellationToken: cancellationToken).ConfigureAwait(false);
        await connection.FlushAsync(cancellationToken).ConfigureAwait(false);

        var next = $"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}";
        long requested = 0;
        long received = 0;
        long bytes = 0;

        async ValueTask PullAsync()
        {
            var batch = (int)Math.Min(PullBatch, messages - requested);
            if (batch <= 0)
            {
                return;
            }

            requested += batch;
            var body = Encoding.ASCII.GetBytes(string.Create(
                CultureInfo.InvariantCulture,
                $"{{\"batch\":{batch},\"expires\":{(long)options.Timeout.TotalNanoseconds}}}"));
            await connection.PublishAsync(next, body, replyTo: inbox, cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        started();
        await PullAsync().ConfigureAwait(false);
        await PullAsync().ConfigureAwait(false);
        await foreach (var msg in sub.Msgs.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            if (msg.Headers is { StatusCode: > 0 } status)
            {
                if (status.StatusCode == 100)
                {
                    continue; // idle heartbeat
                }

                throw new NatsProtocolException($"pull consumer on '{stream}' got status {status.StatusCode} {status.StatusDescription} after {received} of {messages} messages");
            }

            received++;
            bytes += msg.Data.Length;
            if (received == messages)
            {
                break;
            }

            if (requested - received < PullBatch)
            {
                await PullAsync().ConfigureAwait(false);
            }
        }

        if (received < messages)
        {
            throw new NatsProtocolException($"the consumer subscription ended after {received} of {messages} messages (dropped: {sub.DroppedMessages})");
        }

        using var deleted = await ApiAsync($"$JS.API.CONSUMER.DELETE.{stream}.{consumer}", null, CancellationToken.None).ConfigureAwait(false);
        return bytes;
    }

    public async ValueTask DisposeAsync()
    {
        if (_admin is not null)
        {
            await _admin.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>One NATS connection: its publishers share it, each with its own PubAck inbox.</summary>
    private sealed class JetStreamConnection(NatsConnection connection, string[] subjects, bool acks) : IBenchConnection
    {
        public async Task<IBenchPublisher> OpenPublisherAsync(CancellationToken cancellationToken) =>
            await JetStreamPublisher.StartAsync(connection, subjects, acks, cancellationToken).ConfigureAwait(false);

        public ValueTask DisposeAsync() => connection.DisposeAsync();
    }

    private NatsConnection Admin => _admin ?? throw new InvalidOperationException("Call ConnectAsync first.");

    private NatsOptions ConnectionOptions(string name) => NatsOptions.Default with
    {
        Servers = options.ServersOrDefault,
        Name = name,
        Echo = false,
        RequestTimeout = ApiTimeout,
    };

    /// <summary>Calls a JetStream API subject with a JSON body and returns the response, or throws its error.</summary>
    private async Task<JsonDocument> ApiAsync(string subject, JsonObject? body, CancellationToken cancellationToken)
    {
        var payload = body is null ? ReadOnlyMemory<byte>.Empty : Encoding.UTF8.GetBytes(body.ToJsonString());
        var reply = await Admin.RequestAsync(subject, payload, timeout: ApiTimeout, cancellationToken: cancellationToken).ConfigureAwait(false);
        var document = JsonDocument.Parse(reply.Data);
        if (document.RootElement.TryGetProperty("error", out var error))
        {
            var exception = new NatsJetStreamException(
                error.TryGetProperty("code", out var code) ? code.GetInt32() : 0,
                error.TryGetProperty("err_code", out var errCode) ? errCode.GetInt32() : 0,
                $"{subject}: {(error.TryGetProperty("description", out var description) ? description.GetString() : "no description")}");
            document.Dispose();
            throw exception;
        }

        return document;
    }
}
