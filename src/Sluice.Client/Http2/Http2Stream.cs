using System.Buffers;
using System.Net;
using System.Threading.Tasks.Sources;
using Sluice.Protocol.Http2;

namespace Sluice.Client.Http2;

/// <summary>
/// One request on an <see cref="Http2Connection"/>: its response headers, a response body that the
/// connection's reader fills and the caller drains (returning flow-control credit as it drains),
/// trailers, and the request body the caller writes. Its state is guarded by the connection's lock.
/// </summary>
internal sealed class Http2Stream : IValueTaskSource<int>
{
    /// <summary>Request option: response reads resume on the connection's reader thread (see GrpcChannel.DuplexStreaming).</summary>
    public static readonly HttpRequestOptionsKey<bool> InlineResponseReads = new("sluice.inline-response-reads");

    private readonly Http2Connection _connection;
    private readonly HttpRequestMessage _request;
    private readonly TaskCompletionSource<HttpResponseMessage> _responseReady = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ManualResetValueTaskSourceCore<int> _read = new() { RunContinuationsAsynchronously = true };
    private HttpResponseMessage? _response;
    private byte[] _buffer = [];
    private int _bufferStart;
    private int _bufferEnd;
    private Memory<byte> _readTarget;
    private bool _readPending;
    private CancellationTokenRegistration _readCancellation;
    private CancellationTokenRegistration _callCancellation;
    private int _receiveWindow;
    private int _unacknowledged;
    private bool _headersReceived;
    private bool _endReceived;
    private bool _endSent;
    private Exception? _failure;

    public Http2Stream(Http2Connection connection, HttpRequestMessage request)
    {
        _connection = connection;
        _request = request;
        _receiveWindow = Http2ClientFlowControl.StreamReceiveWindow;
        _read.RunContinuationsAsynchronously = !(request.Options.TryGetValue(InlineResponseReads, out var inline) && inline);
        RequestBody = new Http2RequestBody(this);
    }

    /// <summary>The stream id; 0 until the HEADERS frame is sent.</summary>
    public int Id { get; set; }

    /// <summary>Send credit for DATA frames on this stream (under the connection's lock).</summary>
    public long SendWindow { get; set; }

    /// <summary>Whether both directions have ended (or the stream was reset): the connection forgets it.</summary>
    public bool IsClosed => (_endReceived && _endSent) || _failure is not null;

    /// <summary>The failure that ended this stream, if any (under the connection's lock).</summary>
    public Exception? Failure => _failure;

    public Http2RequestBody RequestBody { get; }

    public Http2Connection Connection => _connection;

    private Lock Sync => _connection.Sync;

    /// <summary>Completes with the response once its headers arrive; cancelling the token resets the stream.</summary>
    public Task<HttpResponseMessage> ResponseAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.CanBeCanceled)
        {
            _callCancellation = cancellationToken.UnsafeRegister(static (state, token) => ((Http2Stream)state!).Cancel(token), this);
            bool closed;
            lock (Sync)
            {
                closed = IsClosed;
            }

            if (closed)
            {
                _callCancellation.Dispose(); // closed before the registration: nothing else disposes it
            }
        }

        return _responseReady.Task;
    }

    /// <summary>Sends the request content, then END_STREAM; a failure resets the stream.</summary>
    public async Task SendContentAsync(HttpContent content, CancellationToken cancellationToken)
    {
        try
        {
            await content.CopyToAsync(RequestBody, cancellationToken).ConfigureAwait(false);
            await _connection.Output.WriteDataAsync(this, ReadOnlyMemory<byte>.Empty, endStream: true, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Reset(Http2ErrorCode.Cancel, ex as OperationCanceledException ?? new OperationCanceledException("The request content failed.", ex));
        }
    }

    /// <summary>Whether DATA may still be sent; throws the stream's failure otherwise (under the connection's lock).</summary>
    public void ThrowIfCannotSend()
    {
        if (_failure is { } failure)
        {
            throw Http2Connection.AsIOException(failure);
        }

        if (_endSent)
        {
            throw new InvalidOperationException("The request body has already ended.");
        }
    }

    /// <summary>A header block for this stream (called by the connection's reader, outside the lock).</summary>
    public void OnHeaders(List<KeyValuePair<string, string>> headers, bool endStream)
    {
        if (!_headersReceived)
        {
            var status = 0;
            foreach (var (name, value) in headers)
            {
                if (name == ":status")
                {
                    status = int.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, out var s) ? s : 0;
                }
                else if (name.StartsWith(':'))
                {
                    throw new Http2StreamException(Http2ErrorCode.ProtocolError, $"response pseudo-header '{name}' is not allowed");
                }
            }

            if (status is < 100 or > 999)
            {
                throw new Http2StreamException(Http2ErrorCode.ProtocolError, "the response headers have no valid :status");
            }

            if (status < 200)
            {
                if (endStream)
                {
                    throw new Http2StreamException(Http2ErrorCode.ProtocolError, "an informational response ended the stream");
                }

                return; // 1xx: the final response follows
            }

            var response = new HttpResponseMessage((HttpStatusCode)status)
            {
                Version = HttpVersion.Version20,
                RequestMessage = _request,
                Content = new Http2ResponseContent(this),
            };
            foreach (var (name, value) in headers)
            {
                if (!name.StartsWith(':'))
                {
                    AddHeader(response, name, value);
                }
            }

            lock (Sync)
            {
                _headersReceived = true;
                _response = response;
            }

            if (endStream)
            {
                OnEndReceived();
            }

            _responseReady.TrySetResult(response);
            return;
        }

        if (!endStream)
        {
            throw new Http2StreamException(Http2ErrorCode.ProtocolError, "trailers must end the stream");
        }

        var trailers = _response!.TrailingHeaders;
        foreach (var (name, value) in headers)
        {
            if (name.StartsWith(':'))
            {
                throw new Http2StreamException(Http2ErrorCode.ProtocolError, $"pseudo-header '{name}' in trailers");
            }

            trailers.TryAddWithoutValidation(name, value);
        }

        OnEndReceived();
    }

    /// <summary>
    /// A DATA frame's payload (called by the connection's reader); <paramref name="flowLength"/> is
    /// the frame's full length, padding included, which the peer took from the stream's window.
    /// </summary>
    public void OnData(ReadOnlySpan<byte> data, int flowLength, bool endStream)
    {
        var completed = -1;
        lock (Sync)
        {
            if (_failure is not null)
            {
                return; // reset locally; the peer has not seen it yet
            }

            if (!_headersReceived || _endReceived)
            {
                throw new Http2StreamException(Http2ErrorCode.ProtocolError, _endReceived ? "DATA after the end of the stream" : "DATA before the response headers");
            }

            _receiveWindow -= flowLength;
            if (_receiveWindow < 0)
            {
                throw new Http2StreamException(Http2ErrorCode.FlowControlError, "the server sent more than the stream's flow-control window");
            }

            _unacknowledged += flowLength - data.Length; // padding is credited back with the next update
            if (_readPending && !data.IsEmpty && _bufferEnd == _bufferStart)
            {
                var direct = Math.Min(data.Length, _readTarget.Length);
                data[..direct].CopyTo(_readTarget.Span);
                data = data[direct..];
                Append(data);
                completed = EndReadLocked(direct);
            }
            else
            {
                Append(data);
                if (_readPending && _bufferEnd > _bufferStart)
                {
                    completed = EndReadLocked(TakeLocked(_readTarget.Span));
                }
            }
        }

        if (completed >= 0)
        {
            _read.SetResult(completed); // outside the lock: the reader's continuation may run here
        }

        if (endStream)
        {
            OnEndReceived();
        }
    }

    /// <summary>The peer reset the stream, or the connection failed: every waiter gets <paramref name="failure"/>.</summary>
    public void Fail(Exception failure)
    {
        var failRead = false;
        lock (Sync)
        {
            if (IsClosed)
            {
                return;
            }

            _failure = failure;
            if (!_endReceived)
            {
                // The response had not ended: what is buffered is lost and a waiting read fails. After
                // the end (trailers in), the rest of the body stays readable; only sending stops.
                ReturnBufferLocked();
                if (_readPending)
                {
                    EndReadLocked(0);
                    failRead = true;
                }
            }
        }

        if (failRead)
        {
            _read.SetException(Http2Connection.AsIOException(failure));
        }

        _responseReady.TrySetException(failure);
        OnClosed();
    }

    /// <summary>Resets the stream from this side (RST_STREAM <paramref name="code"/>) unless it has already closed.</summary>
    public void Reset(Http2ErrorCode code, Exception failure)
    {
        bool send;
        lock (Sync)
        {
            send = !IsClosed && Id != 0;
        }

        Fail(failure);
        if (send)
        {
            _connection.SendReset(Id, code);
        }
    }

    /// <summary>Reads response body bytes: 0 at the end of the body.</summary>
    public ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        int taken, update;
        lock (Sync)
        {
            if (_readPending)
            {
                throw new InvalidOperationException("A read is already pending on this response stream.");
            }

            if (_bufferEnd > _bufferStart)
            {
                taken = TakeLocked(destination.Span);
                update = CreditLocked(taken);
            }
            else if (_endReceived || destination.IsEmpty)
            {
                if (_endReceived)
                {
                    ReturnBufferLocked();
                }

                return new ValueTask<int>(0);
            }
            else if (_failure is { } failure)
            {
                return ValueTask.FromException<int>(Http2Connection.AsIOException(failure));
            }
            else
            {
                cancellationToken.ThrowIfCancellationRequested();
                _readPending = true;
                _readTarget = destination;
                _read.Reset();
                taken = -1;
                update = 0;
            }
        }

        if (taken >= 0)
        {
            if (update > 0)
            {
                _connection.SendWindowUpdate(Id, update);
            }

            return new ValueTask<int>(taken);
        }

        if (cancellationToken.CanBeCanceled)
        {
            _readCancellation = cancellationToken.UnsafeRegister(static (state, token) => ((Http2Stream)state!).Cancel(token), this);
        }

        return new ValueTask<int>(this, _read.Version);
    }

    /// <summary>The caller stopped reading before the end: reset the stream (CANCEL).</summary>
    public void Abandon()
    {
        bool open;
        lock (Sync)
        {
            open = !_endReceived && _failure is null;
        }

        if (open)
        {
            Reset(Http2ErrorCode.Cancel, new OperationCanceledException("The response stream was disposed before its end."));
        }
    }

    int IValueTaskSource<int>.GetResult(short token)
    {
        _readCancellation.Dispose();
        var taken = _read.GetResult(token);
        if (taken > 0)
        {
            int update;
            lock (Sync)
            {
                update = CreditLocked(taken);
            }

            if (update > 0)
            {
                _connection.SendWindowUpdate(Id, update);
            }
        }

        return taken;
    }

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _read.GetStatus(token);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _read.OnCompleted(continuation, state, token, flags);

    private static void AddHeader(HttpResponseMessage response, string name, string value)
    {
        if (name.StartsWith("content-", StringComparison.Ordinal))
        {
            response.Content.Headers.TryAddWithoutValidation(name, value);
        }
        else
        {
            response.Headers.TryAddWithoutValidation(name, value);
        }
    }

    private void Cancel(CancellationToken token) =>
        Reset(Http2ErrorCode.Cancel, new OperationCanceledException("The HTTP/2 request was cancelled.", token));

    private void OnEndReceived()
    {
        bool closed;
        var completed = false;
        lock (Sync)
        {
            if (_failure is not null || _endReceived)
            {
                return;
            }

            _endReceived = true;
            _unacknowledged = 0;
            closed = _endSent;
            if (_readPending && _bufferEnd == _bufferStart)
            {
                EndReadLocked(0);
                completed = true;
            }
        }

        if (completed)
        {
            _read.SetResult(0);
        }

        if (closed)
        {
            OnClosed();
        }
    }

    /// <summary>Called by the connection after it sent END_STREAM: the stream may now be closed.</summary>
    public void OnEndStreamWritten()
    {
        bool closed;
        lock (Sync)
        {
            _endSent = true;
            closed = _endReceived && _failure is null;
        }

        if (closed)
        {
            OnClosed();
        }
    }

    /// <summary>The stream is over: the connection forgets it, and the call's cancellation is released.</summary>
    private void OnClosed()
    {
        _connection.OnStreamClosed(this);
        _callCancellation.Dispose();
    }

    private void Append(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }

        if (_buffer.Length - _bufferEnd < data.Length)
        {
            var used = _bufferEnd - _bufferStart;
            if (_buffer.Length - used >= data.Length && _bufferStart > 0)
            {
                _buffer.AsSpan(_bufferStart, used).CopyTo(_buffer);
            }
            else
            {
                var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(16 * 1024, (used + data.Length) * 2));
                _buffer.AsSpan(_bufferStart, used).CopyTo(bigger);
                ReturnBufferLocked();
                _buffer = bigger;
            }

            _bufferStart = 0;
            _bufferEnd = used;
        }

        data.CopyTo(_buffer.AsSpan(_bufferEnd));
        _bufferEnd += data.Length;
    }

    private int TakeLocked(Span<byte> destination)
    {
        var taken = Math.Min(destination.Length, _bufferEnd - _bufferStart);
        _buffer.AsSpan(_bufferStart, taken).CopyTo(destination);
        _bufferStart += taken;
        if (_bufferStart == _bufferEnd)
        {
            _bufferStart = _bufferEnd = 0;
        }

        return taken;
    }

    /// <summary>Counts drained bytes; returns the WINDOW_UPDATE increment to send now (0 for none).</summary>
    private int CreditLocked(int drained)
    {
        _unacknowledged += drained;
        if (_endReceived || _failure is not null || _unacknowledged < Http2ClientFlowControl.StreamReceiveWindow / 4)
        {
            return 0;
        }

        var increment = _unacknowledged;
        _unacknowledged = 0;
        _receiveWindow += increment;
        return increment;
    }

    /// <summary>Ends the pending read's state; the caller completes <see cref="_read"/> after leaving the lock.</summary>
    private int EndReadLocked(int count)
    {
        _readPending = false;
        _readTarget = default;
        return count;
    }

    private void ReturnBufferLocked()
    {
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }

        _buffer = [];
        _bufferStart = _bufferEnd = 0;
    }
}

/// <summary>A stream error: the stream ends with RST_STREAM carrying <see cref="Code"/>; the connection goes on.</summary>
internal sealed class Http2StreamException(Http2ErrorCode code, string message) : Exception(message)
{
    public Http2ErrorCode Code { get; } = code;
}
