using System.Buffers;
using System.Runtime.CompilerServices;
using Sluice.Protocol.Http2;

namespace Sluice.Client.Http2;

/// <summary>
/// The output side of one <see cref="Http2Connection"/>. A caller's write goes to the socket on the caller's thread,
/// serialized by a write lock; frames that the reader must send (SETTINGS and PING acknowledgements, window updates,
/// resets) are queued and sent by whoever holds or next takes the write lock, so the reader never waits for a writer.
/// The socket is blocking (see <see cref="Http2Connection"/>): on loopback or with room in the socket buffer a write
/// returns at once; when the server stops reading, it holds the one writer, and other writers wait for the write lock
/// without a thread.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "The write lock's semaphore never creates a wait handle, and writers may still hold or wait for it after the connection closed.")]
internal sealed class Http2ClientOutput
{
    private readonly Http2Connection _connection;
    private readonly Stream _transport;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ArrayBufferWriter<byte> _output = new(64 * 1024); // 64 KiB: a batch of publishes in one write
    private readonly ArrayBufferWriter<byte> _control = new(256); // a few control frames between writes

    public Http2ClientOutput(Http2Connection connection, Stream transport)
    {
        _connection = connection;
        _transport = transport;
    }

    /// <summary>The server's SETTINGS_MAX_FRAME_SIZE (under the connection's lock).</summary>
    public int PeerMaxFrameSize { get; set; } = Http2Frame.DefaultMaxFrameSize;

    /// <summary>Writes the connection preface and our first frames (before the reader starts).</summary>
    public void WritePreface(ReadOnlySpan<(ushort Id, uint Value)> settings, int connectionWindowIncrement)
    {
        _output.Write(Http2Frame.Preface);
        Http2Frame.WriteSettings(_output, settings);
        Http2Frame.WriteWindowUpdate(_output, 0, connectionWindowIncrement);
        _transport.Write(_output.WrittenSpan);
        _output.ResetWrittenCount();
    }

    /// <summary>Takes the write lock; <see cref="Exit"/> gives it back.</summary>
    public Task EnterAsync(CancellationToken cancellationToken) => _writeLock.WaitAsync(cancellationToken);

    /// <summary>Writes a request's HEADERS block and sends it; the caller holds the write lock. Throws when the write fails.</summary>
    public void WriteHeadersLocked(int streamId, ReadOnlySpan<byte> block, bool endStream)
    {
        Http2Frame.WriteHeaders(_output, streamId, block, endStream, PeerMaxFrameSize);
        FlushLocked();
    }

    /// <summary>
    /// Sends <paramref name="data"/> as DATA frames on <paramref name="stream"/>, waiting for flow-control
    /// credit when there is none; with <paramref name="endStream"/> the last frame ends the request.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))] // once per request write: the box is reused
    public async ValueTask WriteDataAsync(Http2Stream stream, ReadOnlyMemory<byte> data, bool endStream, CancellationToken cancellationToken)
    {
        var connection = _connection;
        while (true)
        {
            int take;
            Task? wait = null;
            lock (connection.Sync)
            {
                connection.ThrowIfFailed();
                stream.ThrowIfCannotSend();
                // An empty END_STREAM frame needs no credit (RFC 9113 section 6.9.1).
                take = connection.FlowControl.TakeSendCredit(stream, data.Length);
                if (take <= 0 && !data.IsEmpty)
                {
                    wait = connection.Capacity.WaitLocked();
                }
            }

            if (wait is not null)
            {
                await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            var last = take == data.Length;
            await _writeLock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                RefundIfReset(stream, take); // reset meanwhile: no frame may follow RST_STREAM

                var chunk = data[..take];
                do
                {
                    var length = Math.Min(chunk.Length, PeerMaxFrameSize);
                    var flags = last && endStream && length == chunk.Length ? Http2Frame.EndStream : (byte)0;
                    Http2Frame.Write(_output, FrameType.Data, flags, stream.Id, chunk.Span[..length]);
                    chunk = chunk[length..];
                }
                while (!chunk.IsEmpty);
                FlushLocked();
            }
            finally
            {
                Exit();
            }

            if (last)
            {
                if (endStream)
                {
                    stream.OnEndStreamWritten();
                }

                return;
            }

            data = data[take..];
        }
    }

    /// <summary>
    /// Throws if <paramref name="stream"/> was reset after it took <paramref name="credit"/> from the
    /// connection's send window, giving that credit back first: the server never sees those bytes, so it
    /// never returns them, and the connection's window would otherwise shrink for good.
    /// </summary>
    private void RefundIfReset(Http2Stream stream, int credit)
    {
        TaskCompletionSource? signal;
        Exception failure;
        lock (_connection.Sync)
        {
            if (stream.Failure is null)
            {
                return;
            }

            failure = stream.Failure;
            _connection.FlowControl.RefundSendCredit(credit);
            signal = _connection.Capacity.TakeLocked();
        }

        signal?.TrySetResult();
        throw Http2Connection.AsIOException(failure);
    }

    /// <summary>Queues a control frame and sends it now if no writer holds the lock (from the reader: on a pool thread).</summary>
    public void QueueControl(Action<ArrayBufferWriter<byte>> write)
    {
        lock (_control)
        {
            write(_control);
        }

        if (_connection.OnReaderThread)
        {
            // The reader must never block on the socket's send buffer (a server that waits for us to
            // read before it reads would deadlock with it): a pool thread sends the frame.
            ThreadPool.UnsafeQueueUserWorkItem(static output => output.TrySendControl(), this, preferLocal: false);
            return;
        }

        TrySendControl();
    }

    /// <summary>
    /// The connection is closing: queues a GOAWAY with <paramref name="goAway"/> (if any) and sends what is queued if no
    /// writer holds the lock, then closes the transport. The GOAWAY is not sent through <see cref="QueueControl"/>:
    /// from the reader that hands it to a pool thread, which could then hold the lock while the socket closes under it.
    /// </summary>
    public void FlushAndClose(Http2ErrorCode? goAway)
    {
        if (goAway is { } code)
        {
            lock (_control)
            {
                Http2Frame.WriteGoAway(_control, 0, code);
            }
        }

        if (_writeLock.Wait(0, CancellationToken.None))
        {
            TryFlushLocked();
            _writeLock.Release();
        }

        _transport.Dispose();
    }

    /// <summary>Releases the write lock, then sends control frames queued meanwhile if nobody else took it.</summary>
    public void Exit()
    {
        while (true)
        {
            _writeLock.Release();
            lock (_control)
            {
                if (_control.WrittenCount == 0)
                {
                    return;
                }
            }

            if (!_writeLock.Wait(0, CancellationToken.None))
            {
                return; // the holder sends them
            }

            TryFlushLocked();
        }
    }

    /// <summary>Sends the output plus queued control frames; the caller holds the write lock. A failed write aborts the connection and throws.</summary>
    private void FlushLocked()
    {
        if (TryFlushLocked() is { } error)
        {
            throw new IOException($"Writing to the HTTP/2 connection failed: {error.Message}", error);
        }
    }

    /// <summary>Like <see cref="FlushLocked"/>, but returns the failure (the connection is then aborted) instead of throwing.</summary>
    private Exception? TryFlushLocked()
    {
        lock (_control)
        {
            _output.Write(_control.WrittenSpan);
            _control.ResetWrittenCount();
        }

        if (_output.WrittenCount == 0)
        {
            return null;
        }

        try
        {
            _transport.Write(_output.WrittenSpan);
            return null;
        }
        catch (Exception ex)
        {
            _connection.Abort(ex); // on a timer or reader thread nothing may escape
            return ex;
        }
        finally
        {
            _output.ResetWrittenCount();
        }
    }

    /// <summary>Sends queued control frames now if no writer holds the lock (the holder sends them otherwise).</summary>
    private void TrySendControl()
    {
        if (_writeLock.Wait(0, CancellationToken.None))
        {
            TryFlushLocked();
            Exit();
        }
    }
}
