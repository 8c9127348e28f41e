using System.Threading.Channels;
using Sluice.Protocol.Api;
using Sluice.Server.Grpc;
using Sluice.Server.Streams;

namespace Sluice.Server.Api;

/// <summary>
/// One PublishAsync stream: receives acks from partition writer loops (any thread), turns them
/// into responses correlated by correlationId, and counts in-flight publishes so a half-close can
/// wait for them. Responses go through a queue so writer loops never wait on a slow client.
/// </summary>
internal sealed class PublishAsyncSession : IAckReceiver, IAsyncDisposable
{
    private readonly GrpcStreamWriter<PublishResponse> _responses;
    private readonly Channel<PublishResponse> _queue = Channel.CreateUnbounded<PublishResponse>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _pump;
    private readonly CancellationToken _callToken;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _inFlight;
    private volatile bool _closing;

    public PublishAsyncSession(GrpcStreamWriter<PublishResponse> responses, CancellationToken callToken)
    {
        _responses = responses;
        _callToken = callToken;
        _pump = Task.Run(PumpAsync, CancellationToken.None);
    }

    public void Begin() => Interlocked.Increment(ref _inFlight);

    public void Abandon() => Done();

    public void SendError(string correlationId, PublishAsyncError.Types.Code code, string message) =>
        _queue.Writer.TryWrite(new PublishResponse
        {
            CorrelationId = correlationId,
            Ack = new Ack(), // kept empty for old clients, as Liftbridge does
            AsyncError = new PublishAsyncError { Code = code, Message = message },
        });

    public void OnAck(PublishItem item, Ack ack)
    {
        switch (ack.AckError)
        {
            case Ack.Types.Error.Ok:
                _queue.Writer.TryWrite(new PublishResponse { CorrelationId = ack.CorrelationId, Ack = ack });
                break;
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
                SendError(item.CorrelationId, PublishAsyncError.Types.Code.Internal, "internal error");
                break;
        }

        if (item.AckPolicy != AckPolicy.None)
        {
            Done();
        }
    }

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

    private async Task PumpAsync()
    {
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            while (reader.TryRead(out var response))
            {
                await _responses.WriteAsync(response, _callToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Stops taking responses and waits until the queued ones are handed to the stream writer.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        try
        {
            await _pump.ConfigureAwait(false);
        }
        catch (Exception) when (_callToken.IsCancellationRequested)
        {
            // The call ended (client gone or server stopping): nobody reads the rest.
        }
    }
}
