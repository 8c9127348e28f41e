using System.Buffers;
using System.Globalization;
using System.Runtime.CompilerServices;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Http2;

namespace Sluice.Server.Http2;

/// <summary>
/// The output side of one <see cref="Http2ServerConnection"/>: frames go into one write buffer under
/// <see cref="WriteLock"/> (which orders them on the wire) and leave in one socket write. Socket writes never wait
/// (<see cref="ServerSocketStream"/>), so any thread may write, the reader included; the reader thread corks the
/// buffer while it handles a read's frames, so what handlers running there write leaves in one write at the batch's
/// end. Responses wait here for flow-control credit and for the listener's output budget.
/// </summary>
internal sealed class Http2ServerOutput
{
    /// <summary>
    /// What the reader thread's batch may hold back before it goes to the socket anyway: far more than a read's
    /// acks, and a bound on a handler running inline (a subscription with a backlog), whose output would
    /// otherwise pile up here, out of reach of the output budget, until the batch ends.
    /// </summary>
    private const int CorkedOutputLimit = 256 << 10;

    private readonly Http2ServerConnection _connection;
    private readonly Http2Listener _listener;
    private readonly ServerSocketStream _socketStream;
    private readonly PooledBufferWriter _output = new(16 * 1024); // 16 KiB holds a read's acks; given back to the pool while the connection is quiet
    private readonly ArrayBufferWriter<byte> _headerOut = new(512); // a response header block being encoded (512 B: status, content-type, grpc-status), under WriteLock
    private Stream _transport;
    private int _peerMaxFrameSize = Http2Frame.DefaultMaxFrameSize;

    public Http2ServerOutput(Http2ServerConnection connection, Http2Listener listener, ServerSocketStream socketStream)
    {
        _connection = connection;
        _listener = listener;
        _socketStream = socketStream;
        _transport = socketStream;
    }

    /// <summary>Orders frames on the wire. Nobody takes the connection's state lock while holding it except to check a reset.</summary>
    public Lock WriteLock { get; } = new();

    /// <summary>What frames go to: the socket, or the TLS stream over it once the handshake is done.</summary>
    public Stream Transport => _transport;

    /// <summary>Set by the reader thread while it handles a read's frames: its own writes wait for the batch's end.</summary>
    public bool Corked { get; set; }

    /// <summary>The client's SETTINGS_MAX_FRAME_SIZE (under the connection's state lock).</summary>
    public int PeerMaxFrameSize
    {
        get => _peerMaxFrameSize;
        set => _peerMaxFrameSize = value;
    }

    /// <summary>Frames go through TLS from now on.</summary>
    public void UseTransport(Stream transport)
    {
        lock (WriteLock)
        {
            _transport = transport;
        }
    }

    /// <summary>
    /// Sends <paramref name="stream"/>'s buffered response bytes as DATA (with its HEADERS first if they
    /// are not out yet), waiting for flow-control credit when there is none. With
    /// <paramref name="complete"/> the trailers follow and end the stream. Returns false when the
    /// stream or the connection is gone (the bytes are dropped).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // once per response flush: the box is reused
    public async ValueTask<bool> SendAsync(Http2ServerStream stream, bool complete, CancellationToken cancellationToken)
    {
        var connection = _connection;
        while (true)
        {
            var body = stream.Body;
            if (body.Length > 0 && !connection.IsBeingCut && _listener.OutputBudget.Total > _listener.OutputBudget.Limit && _socketStream.AccountedPendingBytes > 0)
            {
                // All clients together hold more unsent output than the budget, and this one has some: add no more
                // until the slowest connection is cut (this one, maybe), so a burst cannot run far past the budget.
                _listener.OnOverBudget();
                await _listener.OutputBudget.WaitWithinLimitAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            int take;
            Task? wait = null;
            lock (connection.Sync)
            {
                if (connection.FailedLocked || stream.IsReset || stream.ResponseEnded)
                {
                    return false; // a late write after the call ended is dropped, never sent after END_STREAM
                }

                take = connection.FlowControl.TakeSendCredit(stream, body.Length);
                if (take == 0 && body.Length > 0)
                {
                    wait = connection.Capacity.WaitLocked();
                }
            }

            if (wait is not null)
            {
                await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            var last = take == body.Length;
            var ended = false;
            var closeAfter = false;
            lock (WriteLock)
            {
                if (stream.IsReset || stream.ResponseEnded)
                {
                    TaskCompletionSource? refunded;
                    lock (connection.Sync)
                    {
                        connection.FlowControl.RefundSendCredit(take); // the client never sees these bytes, so it never returns the credit
                        refunded = connection.Capacity.TakeLocked();
                    }

                    refunded?.TrySetResult();
                    return false;
                }

                if (!stream.HeadersSent && (take > 0 || !complete))
                {
                    _headerOut.ResetWrittenCount();
                    stream.WriteResponseHeaders(_headerOut);
                    WriteHeaderBlock(stream.Id, endStream: false);
                    stream.HeadersSent = true;
                }

                stream.SentWholeMessages = last;
                var chunk = body[..take];
                while (!chunk.IsEmpty)
                {
                    var length = Math.Min(chunk.Length, _peerMaxFrameSize);
                    Http2Frame.Write(_output, FrameType.Data, 0, stream.Id, chunk.Span[..length]);
                    chunk = chunk[length..];
                }

                if (complete && last)
                {
                    _headerOut.ResetWrittenCount();
                    if (!stream.HeadersSent)
                    {
                        stream.WriteResponseHeaders(_headerOut); // trailers-only: one HEADERS frame with both
                        stream.HeadersSent = true;
                    }

                    stream.WriteTrailers(_headerOut);
                    WriteHeaderBlock(stream.Id, endStream: true);

                    lock (connection.Sync)
                    {
                        var streams = connection.Streams;
                        if (!stream.RequestEnded)
                        {
                            // The call is over: tell the client to stop sending (RFC 9113 section 8.1).
                            Http2Frame.WriteRstStream(_output, stream.Id, Http2ErrorCode.NoError);
                            streams.RememberReset(stream.Id);
                        }

                        // The slot is free before the client can see END_STREAM: its next request is never refused for it.
                        stream.ResponseEnded = true;
                        ended = streams.Remove(stream.Id);
                        closeAfter = ended && streams.Count == 0 && connection.ShuttingDownLocked;
                    }
                }

                FlushLocked();
            }

            stream.ConsumeBody(take);
            if (closeAfter)
            {
                connection.Abort(new IOException("The connection closed after its last stream."), graceful: true);
            }

            if (ended || last)
            {
                return true;
            }
        }
    }

    /// <summary>
    /// Ends <paramref name="streams"/> of a connection being cut: each with RESOURCE_EXHAUSTED and
    /// <paramref name="reason"/> in its trailers, or, when its last DATA stopped inside a message, with RST_STREAM
    /// ENHANCE_YOUR_CALM (which gRPC clients read as RESOURCE_EXHAUSTED too); then a GOAWAY with the reason, sent now.
    /// </summary>
    public void WriteCut(List<Http2ServerStream> streams, int lastStreamId, string reason)
    {
        var connection = _connection;
        var status = ((int)GrpcStatusCode.ResourceExhausted).ToString(CultureInfo.InvariantCulture);
        var message = GrpcStatusMessage.Encode(reason);
        lock (WriteLock)
        {
            foreach (var stream in streams)
            {
                lock (connection.Sync)
                {
                    if (stream.IsReset || stream.ResponseEnded)
                    {
                        continue;
                    }

                    stream.ResponseEnded = true; // a send after this one is dropped; the abort below still cancels the call
                }

                if (stream.HeadersSent && !stream.SentWholeMessages)
                {
                    Http2Frame.WriteRstStream(_output, stream.Id, Http2ErrorCode.EnhanceYourCalm);
                    continue;
                }

                _headerOut.ResetWrittenCount();
                if (!stream.HeadersSent)
                {
                    stream.WriteResponseHeaders(_headerOut); // trailers-only
                    stream.HeadersSent = true;
                }

                HpackEncoder.Encode(_headerOut, "grpc-status", status);
                HpackEncoder.Encode(_headerOut, "grpc-message", message);
                WriteHeaderBlock(stream.Id, endStream: true);
            }

            Http2Frame.WriteGoAway(_output, lastStreamId, Http2ErrorCode.EnhanceYourCalm, reason);
            Corked = false;
            FlushLocked();
        }
    }

    /// <summary>
    /// Answers a request whose header list is over our SETTINGS_MAX_HEADER_LIST_SIZE with a trailers-only
    /// RESOURCE_EXHAUSTED response naming the limit (then RST_STREAM NO_ERROR if the client is still
    /// sending), instead of closing the connection: the block was decoded whole, so the connection is sound.
    /// </summary>
    public void WriteHeaderListTooLarge(int streamId, bool endStream, string reason)
    {
        lock (WriteLock)
        {
            _headerOut.ResetWrittenCount();
            HpackEncoder.Encode(_headerOut, ":status", "200");
            HpackEncoder.Encode(_headerOut, "content-type", "application/grpc");
            HpackEncoder.Encode(_headerOut, "grpc-status", ((int)GrpcStatusCode.ResourceExhausted).ToString(CultureInfo.InvariantCulture));
            HpackEncoder.Encode(_headerOut, "grpc-message", reason);
            WriteHeaderBlock(streamId, endStream: true);
            if (!endStream)
            {
                Http2Frame.WriteRstStream(_output, streamId, Http2ErrorCode.NoError);
            }

            FlushLocked();
        }
    }

    /// <summary>Writes one control frame now; writes never wait, so the reader thread may call this too.</summary>
    public void WriteControl(Action<PooledBufferWriter> write)
    {
        lock (WriteLock)
        {
            write(_output);
            FlushLocked();
        }
    }

    /// <summary>Sends what is buffered (a corked batch's output, or all of it with <paramref name="uncork"/>).</summary>
    public void Flush(bool uncork = false)
    {
        lock (WriteLock)
        {
            if (uncork)
            {
                Corked = false;
            }

            FlushLocked();
        }
    }

    /// <summary>A quiet connection's write buffer goes back to the pool; a writer (a subscription) rents it again when it next writes.</summary>
    public void ReleaseBuffer()
    {
        lock (WriteLock)
        {
            _output.ReleaseIfEmpty();
        }
    }

    /// <summary>Frames <see cref="_headerOut"/> as HEADERS (and CONTINUATION); the caller holds <see cref="WriteLock"/>.</summary>
    private void WriteHeaderBlock(int streamId, bool endStream) =>
        Http2Frame.WriteHeaders(_output, streamId, _headerOut.WrittenSpan, endStream, _peerMaxFrameSize);

    /// <summary>Hands <see cref="_output"/> to the socket; the caller holds <see cref="WriteLock"/>. A failure aborts the connection.</summary>
    private void FlushLocked()
    {
        if (_output.WrittenCount == 0 || (Corked && _output.WrittenCount < CorkedOutputLimit && _connection.OnReaderThread))
        {
            return; // the reader thread sends its batch's output when the batch ends
        }

        try
        {
            _transport.Write(_output.WrittenSpan);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
        {
            // Abort takes the state lock, never WriteLock: safe to call here.
            ThreadPool.UnsafeQueueUserWorkItem(static state => state.Connection.Abort(state.Error), (Connection: _connection, Error: ex), preferLocal: false);
        }
        finally
        {
            _output.ResetWrittenCount();
        }
    }
}
