using Sluice.Protocol.Api;
using Sluice.Server.Grpc;
using Sluice.Server.Monitoring;
using Sluice.Server.Streams;

namespace Sluice.Server.Api;

/// <summary>
/// One PublishAsync stream: receives acks from partition writer loops (any thread), turns them
/// into responses correlated by correlationId, and counts in-flight publishes so a half-close can
/// wait for them. Committed messages are acked with <see cref="PublishAckFrame"/>s encoded straight
/// from the commit; refusals are PublishResponse objects with an async error. Responses are posted
/// to the stream writer, which sends them on the calling thread when the stream is free and queues
/// them otherwise, so writer loops never wait on a slow client.
/// </summary>
internal sealed class PublishAsyncSession : IAckReceiver
{
    private readonly GrpcStreamWriter<object> _responses;
    private readonly CancellationToken _callToken;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _inFlight;
    private volatile bool _closing;

    public PublishAsyncSession(GrpcStreamWriter<object> responses, CancellationToken callToken)
    {
        _responses = responses;
        _callToken = callToken;
    }

    public void Begin() => Interlocked.Increment(ref _inFlight);

    public void Abandon() => Done();

    public void SendError(string correlationId, PublishAsyncError.Types.Code code, string message) =>
        _responses.Post(new PublishResponse
        {
            CorrelationId = correlationId,
            Ack = new Ack(), // kept empty for old clients, as Liftbridge does
            AsyncError = new PublishAsyncError { Code = code, Message = message },
        });

    public void OnCommitted(PublishItem item, in CommitInfo commit)
    {
        _responses.Post(new PublishAckFrame(item, commit), flush: false);
        ServerTracing.EndPublish(item);
        Done(); // committed items reach a receiver only with an ack policy other than NONE
    }

    /// <summary>A refused message (committed ones come through <see cref="OnCommitted"/>): an async error on the stream.</summary>
    public void OnAck(PublishItem item, Ack ack)
    {
        ServerTracing.EndPublish(item, item.RefusalReason ?? ack.AckError.ToString());
        switch (ack.AckError)
        {
            case Ack.Types.Error.IncorrectOffset:
                SendError(item.CorrelationId, PublishAsyncError.Types.Code.IncorrectOffset, "incorrect expected offset");
                break;
            case Ack.Types.Error.TooLarge:
                SendError(item.CorrelationId, PublishAsyncError.Types.Code.BadRequest, "message exceeds max replication size");
                break;
            case Ack.Types.Error.Encryption:
                SendError(item.CorrelationId, PublishAsyncError.Types.Code.EncryptionFailed, "encryption failed on partition");
                break;
            default:
                SendError(item.CorrelationId, PublishAsyncError.Types.Code.Internal, item.RefusalReason ?? ApiErrors.InternalMessage);
                break;
        }

        if (item.AckPolicy != AckPolicy.None)
        {
            Done();
        }
    }

    public void FlushAcks() => _responses.PostFlush();

    private void Done()
    {
        if (Interlocked.Decrement(ref _inFlight) == 0 && _closing)
        {
            _drained.TrySetResult();
        }
    }

    /// <summary>Waits until every tracked publish is acked, or <paramref name="timeout"/>.</summary>
    public async Task DrainAsync(TimeSpan timeout)
    {
        _closing = true;
        if (Interlocked.Read(ref _inFlight) == 0)
        {
            return;
        }

        try
        {
            await _drained.Task.WaitAsync(timeout, _callToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Liftbridge ends the stream after the timeout too; the client's own ack timers report the rest.
        }
    }
}
