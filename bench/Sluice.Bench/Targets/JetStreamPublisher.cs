using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using Sluice.Bench.Runs;

namespace Sluice.Bench.Targets;

/// <summary>
/// Publishes to JetStream through NATS.Net on a (possibly shared) connection. The synchronous mode awaits
/// each PubAck of <see cref="NatsJSContext.PublishAsync{T}"/>; the windowed mode starts
/// <see cref="NatsJSContext.TryPublishAsync{T}"/> calls without awaiting them, so as many acks are
/// outstanding as the caller's window allows. Without acks it sends plain PUBs.
/// </summary>
/// <remarks>
/// NATS.Net's request path costs the client about 3x the CPU of the old hand-written client per
/// windowed publish (docs/benchmarks.md, "JetStream target on NATS.Net"); the alternatives it offers
/// (<c>PublishConcurrentAsync</c>, the shared-inbox reply mode, a larger writer buffer) measured no
/// better, so this is the plain API a JetStream user writes.
/// </remarks>
internal sealed class JetStreamPublisher(NatsConnection connection, string[] subjects, bool acks) : IBenchPublisher
{
    private readonly NatsJSContext _js = new(connection);

    public async Task PublishAndWaitAsync(BenchMessage message, CancellationToken cancellationToken)
    {
        var subject = subjects[message.Partition];
        if (!acks)
        {
            await connection.PublishAsync(subject, message.Value, cancellationToken: cancellationToken).ConfigureAwait(false);
            return;
        }

        var ack = await PublishWithAckAsync(subject, message.Value, cancellationToken).ConfigureAwait(false);
        if (CheckPubAck(ack) is { } error)
        {
            throw error;
        }
    }

    public ValueTask PublishAsync(BenchMessage message, IAckSink sink, long state, CancellationToken cancellationToken)
    {
        var subject = subjects[message.Partition];
        if (!acks)
        {
            return connection.PublishAsync(subject, message.Value, cancellationToken: cancellationToken);
        }

        // Not awaited: the request is written before TryPublishAsync's first real await, and the ack arrives
        // later. TryPublishAsync reports a failed publish as a result, not a thrown exception, and no token is
        // passed: NATS.Net's request timeout bounds each wait, and a token costs a registration per publish.
        _ = CompleteAsync(subject, _js.TryPublishAsync(subject, message.Value, cancellationToken: CancellationToken.None), sink, state);
        return ValueTask.CompletedTask;
    }

    // A PING round trip: every PUB written before it has reached the server.
    public Task FlushAsync(CancellationToken cancellationToken) => connection.PingAsync(cancellationToken).AsTask();

    /// <summary>Nothing to release: the connection (and NATS.Net's shared reply inbox) belongs to <see cref="JetStreamTarget"/>.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>The PubAck's error, if it carries one.</summary>
    internal static Exception? CheckPubAck(PubAckResponse ack)
    {
        if (ack.IsSuccess())
        {
            return null;
        }

        try
        {
            ack.EnsureSuccess();
            return new NatsJSException("PubAck neither succeeded nor carried an error");
        }
        catch (NatsJSException ex)
        {
            return ex;
        }
    }

    private static async Task CompleteAsync(string subject, ValueTask<NatsResult<PubAckResponse>> publish, IAckSink sink, long state)
    {
        Exception? error;
        try
        {
            var result = await publish.ConfigureAwait(false);
            error = result.Success ? CheckPubAck(result.Value) : Explain(subject, result.Error);
        }
        catch (Exception ex)
        {
            error = ex;
        }

        sink.OnAck(state, error);
    }

    // NATS.Net retries a 503 and then reports only "no response"; say what it usually means.
    private static Exception Explain(string subject, Exception error) => error is NatsJSPublishNoResponseException
        ? new NatsJSException($"No responders (or no reply) for '{subject}' after NATS.Net's retries: is a stream bound to it?", error)
        : error;

    private async ValueTask<PubAckResponse> PublishWithAckAsync(string subject, ReadOnlyMemory<byte> value, CancellationToken cancellationToken)
    {
        try
        {
            return await _js.PublishAsync(subject, value, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (NatsJSPublishNoResponseException ex)
        {
            throw Explain(subject, ex);
        }
    }
}
