using System.IO.Pipelines;
using System.Threading.Channels;
using Google.Protobuf;

namespace Sluice.Server.Grpc;

/// <summary>
/// Sends the response messages of a streaming call. Messages are queued and a single pump
/// serializes them straight into the response pipe, flushing only when the queue is empty (the
/// writer has caught up) or every <see cref="FlushThreshold"/> bytes. A flush per message costs
/// about 10x in throughput, so batching is the point of this type.
/// Do not change a message after passing it to <see cref="WriteAsync"/>: it is serialized later.
/// </summary>
public sealed class GrpcStreamWriter<T>
    where T : class, IMessage<T>
{
    /// <summary>~32 KB per flush: measured ~1.1-1.5 M msgs/s vs ~0.5 M with a flush per message.</summary>
    internal const int FlushThreshold = 32 * 1024;

    /// <summary>Bounded so a slow client pushes back on the handler instead of growing memory.</summary>
    private const int QueueCapacity = 1024;

    private readonly PipeWriter _writer;
    private readonly int _maxSendSize;
    private readonly CancellationToken _callToken;
    private readonly Channel<T> _queue;
    private readonly Action _onFirstMessage;
    private readonly Task _pump;

    internal GrpcStreamWriter(PipeWriter writer, int maxSendSize, Action onFirstMessage, CancellationToken callToken)
    {
        _onFirstMessage = onFirstMessage;
        _writer = writer;
        _maxSendSize = maxSendSize;
        _callToken = callToken;
        _queue = Channel.CreateBounded<T>(new BoundedChannelOptions(QueueCapacity)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _pump = Task.Run(PumpAsync, CancellationToken.None);
    }

    /// <summary>
    /// Queues a message. Completes at once unless the queue is full (the client reads slower than
    /// the handler writes). Throws if the call already failed (client gone, deadline, send limit).
    /// </summary>
    public ValueTask WriteAsync(T message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        return _queue.Writer.TryWrite(message) ? default : WriteSlowAsync(message, cancellationToken);
    }

    private async ValueTask WriteSlowAsync(T message, CancellationToken cancellationToken)
    {
        try
        {
            await _queue.Writer.WriteAsync(message, cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException ex)
        {
            // The pump stopped: surface its reason (e.g. the client went away), not the channel's.
            throw ex.InnerException ?? new InvalidOperationException("The response stream is already complete.", ex);
        }
    }

    /// <summary>Ends the stream: waits until every queued message is written and flushed.</summary>
    internal async Task CompleteAsync()
    {
        _queue.Writer.TryComplete();
        await _pump.ConfigureAwait(false);
    }

    private async Task PumpAsync()
    {
        try
        {
            var reader = _queue.Reader;
            var unflushed = 0;
            while (await reader.WaitToReadAsync(_callToken).ConfigureAwait(false))
            {
                while (reader.TryRead(out var message))
                {
                    if (unflushed == 0)
                    {
                        _onFirstMessage();
                    }

                    unflushed += GrpcServer.WriteMessage(_writer, message, _maxSendSize);
                    if (unflushed >= FlushThreshold)
                    {
                        await FlushAsync().ConfigureAwait(false);
                        unflushed = 0;
                    }
                }

                if (unflushed > 0)
                {
                    await FlushAsync().ConfigureAwait(false);
                    unflushed = 0;
                }
            }
        }
        catch (Exception ex)
        {
            // Fail pending and later writes with the same reason, then let CompleteAsync see it.
            _queue.Writer.TryComplete(ex);
            throw;
        }
    }

    private async ValueTask FlushAsync()
    {
        var result = await _writer.FlushAsync(_callToken).ConfigureAwait(false);
        if (result.IsCanceled || result.IsCompleted)
        {
            throw new OperationCanceledException("The client is no longer reading the response.");
        }
    }
}
