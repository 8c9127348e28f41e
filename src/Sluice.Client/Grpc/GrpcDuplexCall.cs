using System.Buffers;
using System.Net;
using System.Runtime.CompilerServices;
using Sluice.Protocol.Grpc;

namespace Sluice.Client.Grpc;

/// <summary>
/// A bidirectional call. There is no pump task: a writer that finds the request stream free frames
/// every queued request into the HTTP/2 request stream on its own thread (~32 KB per write) and
/// flushes once when the queue is empty; writers that find it busy only queue, and the busy one
/// sends their requests too. This saves a thread hop per request (a context switch each on a
/// 2-core machine) and still batches under load: a flush per message costs 8-10x in throughput.
/// Responses are read as in a server-streaming call; reading and writing can run concurrently.
/// </summary>
internal sealed class GrpcDuplexCall<TRequest, TResponse> : GrpcStreamingCall<TResponse>
    where TRequest : class
    where TResponse : class
{
    private const int WriteChunk = 32 * 1024;   // matches the server's flush threshold; measured sweet spot
    private const int QueueCapacity = 1024;     // above this a writer waits for the stream: a slow server pushes back

    private readonly DuplexContent _content;
    private readonly GrpcChannelOptions _options;
    private readonly RequestWriter _requests;
    private volatile bool _completed;
    private volatile Exception? _failure;

    internal GrpcDuplexCall(DuplexContent content, GrpcDecoder<TResponse> decode, GrpcChannelOptions options, TimeSpan? timeout, CancellationToken cancellationToken)
        : base(decode, options, timeout, cancellationToken)
    {
        _content = content;
        _options = options;
        _requests = new RequestWriter(this);
    }

    /// <summary>
    /// Sends a request: on this thread when the stream is free, else by the writer holding it.
    /// Do not change the request afterwards: it may be serialized later.
    /// </summary>
    public ValueTask WriteAsync(TRequest message, CancellationToken cancellationToken = default) => WriteAsync(message, inline: true, cancellationToken);

    /// <summary>
    /// Like <see cref="WriteAsync(TRequest, CancellationToken)"/>; with <paramref name="inline"/>
    /// false a free stream is written by a thread-pool work item instead of this thread, so that a
    /// caller about to write more (pipelining) queues them all first and they go out in one write.
    /// </summary>
    public ValueTask WriteAsync(TRequest message, bool inline, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        ThrowIfFailed();
        if (_completed)
        {
            throw new InvalidOperationException("The request stream is already complete.");
        }

        return _requests.WriteAsync(message, inline, cancellationToken);
    }

    /// <summary>Sends every queued request, then ends the request stream (half-close).</summary>
    public async Task CompleteRequestsAsync()
    {
        _completed = true;
        ThrowIfFailed();
        await _requests.FlushAndKeepAsync(CallCancellation.Token).ConfigureAwait(false);
        _content.Complete(); // END_STREAM; the writer role stays taken: nothing more is sent
    }

    protected override ValueTask OnDisposeAsync()
    {
        _completed = true;
        _content.Fail(new OperationCanceledException("The call was disposed."));
        return ValueTask.CompletedTask;
    }

    private void ThrowIfFailed()
    {
        if (_failure is { } failure)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
    }

    /// <summary>
    /// The request stream appears once HttpClient sends the headers; if the request fails first
    /// (connection refused), that failure must end the pump instead of a wait forever.
    /// </summary>
    private async Task<Stream> GetRequestStreamAsync(CancellationToken token)
    {
        await Task.WhenAny(_content.RequestStream, ResponseTask).WaitAsync(token).ConfigureAwait(false);
        if (_content.RequestStream.IsCompleted)
        {
            return await _content.RequestStream.ConfigureAwait(false);
        }

        await ResponseTask.ConfigureAwait(false); // throws the transport failure
        throw new GrpcException(GrpcStatusCode.Cancelled, "The server ended the call before requests could be sent");
    }

    private void WriteFrame(ArrayBufferWriter<byte> buffer, TRequest message)
    {
        if (_options.CompressRequests)
        {
            buffer.Write(GrpcRequestFraming.Frame(message, _options));
        }
        else
        {
            GrpcFrame.WriteMessage(buffer, message, _options.MaxSendMessageSize);
        }
    }

    /// <summary>The request side: frames queued requests into HttpClient's request stream (~32 KB per write), one writer at a time.</summary>
    private sealed class RequestWriter(GrpcDuplexCall<TRequest, TResponse> call) : SingleWriter<TRequest>
    {
        private readonly ArrayBufferWriter<byte> _buffer = new(2 * WriteChunk);
        private Stream? _stream;
        private int _queued;

        public ValueTask WriteAsync(TRequest message, bool inline, CancellationToken cancellationToken)
        {
            Queue.Enqueue(message);
            if (Interlocked.Increment(ref _queued) > QueueCapacity)
            {
                return WaitAndDrainAsync(cancellationToken);
            }

            if (!TryEnter())
            {
                return default; // the current writer sends it
            }

            if (!inline)
            {
                ThreadPool.UnsafeQueueUserWorkItem(static writer => _ = ObserveAsync(writer.DrainAsync()), this, preferLocal: false);
                return default;
            }

            var drain = DrainAsync();
            if (drain.IsCompleted)
            {
                drain.GetAwaiter().GetResult(); // a failure here belongs to this caller
                return default;
            }

            // Blocked on the server (flow control) or still waiting for the request stream: the caller
            // goes on; a failure is kept in _failure and reported by the next write.
            _ = ObserveAsync(drain);
            return default;
        }

        /// <summary>Sends everything queued and keeps the writer role, so nothing can follow.</summary>
        public async Task FlushAndKeepAsync(CancellationToken cancellationToken)
        {
            await EnterAsync(cancellationToken).ConfigureAwait(false);
            await DrainAsync(keepRole: true).ConfigureAwait(false);
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))] // awaited once per message: the box is reused
        protected override async ValueTask WritePassAsync()
        {
            call.ThrowIfFailed(); // a writer that waited for the role while the previous holder failed
            var token = call.CallCancellation.Token;
            var stream = _stream ??= await call.GetRequestStreamAsync(token).ConfigureAwait(false);
            var wrote = false;
            while (Queue.TryDequeue(out var message))
            {
                Interlocked.Decrement(ref _queued);
                call.WriteFrame(_buffer, message);
                wrote = true;
                if (_buffer.WrittenCount >= WriteChunk)
                {
                    await stream.WriteAsync(_buffer.WrittenMemory, token).ConfigureAwait(false);
                    _buffer.ResetWrittenCount();
                }
            }

            if (_buffer.WrittenCount > 0)
            {
                await stream.WriteAsync(_buffer.WrittenMemory, token).ConfigureAwait(false);
                _buffer.ResetWrittenCount();
            }

            if (wrote)
            {
                await stream.FlushAsync(token).ConfigureAwait(false); // also after a pass that ended on a full chunk
            }
        }

        protected override Exception OnFailed(Exception exception)
        {
            var mapped = call._failure ?? call.MapException(exception);
            call._failure ??= mapped;
            call._content.Fail(mapped);
            return mapped;
        }

        private async ValueTask WaitAndDrainAsync(CancellationToken cancellationToken)
        {
            await EnterAsync(cancellationToken).ConfigureAwait(false);
            await DrainAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>
/// Request content for full duplex: hands HttpClient's request stream to the pump and keeps the
/// request open until the pump completes it, so we never wait for response headers before writing.
/// </summary>
internal sealed class DuplexContent : HttpContent
{
    private readonly TaskCompletionSource<Stream> _stream = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public DuplexContent() => Headers.ContentType = GrpcRequestFraming.ContentType;

    public Task<Stream> RequestStream => _stream.Task;

    public void Complete() => _done.TrySetResult();

    public void Fail(Exception ex) => _done.TrySetException(ex);

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
    {
        _stream.TrySetResult(stream);
        return _done.Task;
    }

    protected override bool TryComputeLength(out long length)
    {
        length = -1;
        return false;
    }
}
