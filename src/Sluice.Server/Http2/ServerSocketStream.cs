using System.Net.Sockets;

namespace Sluice.Server.Http2;

/// <summary>
/// The socket of one accepted HTTP/2 connection as a <see cref="Stream"/> whose writes never block.
/// The socket is non-blocking: reads wait in poll(2) on the connection's reader thread (one syscall
/// more than a blocking read, and no hop through the runtime's event loop); a write sends what the
/// kernel takes at once and queues the rest, which an asynchronous loop sends as the client reads.
/// So a handler thread or a partition's writer loop that answers a client never waits for that
/// client, and the reader thread can send control frames itself.
/// </summary>
internal sealed class ServerSocketStream : Stream
{
    private readonly Socket _socket;
    private readonly long _maxPendingBytes;
    private readonly Http2OutputBudget? _budget;
    private readonly Action? _overBudget;
    private bool _accounted; // the queued bytes count against _budget (under _sendSync)
    private readonly Lock _sendSync = new();
    private readonly Queue<byte[]> _pending = new();
    private long _pendingBytes;
    private int _pendingOffset; // bytes of the first queued chunk already sent
    private bool _draining;
    private Exception? _sendFailure;
    private volatile bool _disposed;

    /// <param name="socket">The accepted socket; switched to non-blocking here.</param>
    /// <param name="maxPendingBytes">How much unsent output may queue before the connection is failed (a client that stopped reading).</param>
    /// <param name="budget">Where queued bytes are counted with every other connection's, if anywhere.</param>
    /// <param name="overBudget">Called (outside this stream's locks) when queueing took <paramref name="budget"/> over its limit.</param>
    public ServerSocketStream(Socket socket, long maxPendingBytes, Http2OutputBudget? budget = null, Action? overBudget = null)
    {
        _socket = socket;
        _maxPendingBytes = maxPendingBytes;
        _budget = budget;
        _overBudget = overBudget;
        _accounted = budget is not null;
        socket.Blocking = false;
    }

    /// <summary>Milliseconds a read waits for data before it fails; -1 waits forever (the default).</summary>
    public int ReadTimeoutMilliseconds { get; set; } = -1;

    /// <summary>Bytes written but not yet taken by the kernel.</summary>
    public long PendingBytes
    {
        get
        {
            lock (_sendSync)
            {
                return _pendingBytes;
            }
        }
    }

    /// <summary>Queued bytes that count against the budget: none once <see cref="WriteOff"/> was called.</summary>
    public long AccountedPendingBytes
    {
        get
        {
            lock (_sendSync)
            {
                return _accounted ? _pendingBytes : 0;
            }
        }
    }

    /// <summary>Takes this stream's queued bytes off the budget for good: the connection is being closed, or is a broker's.</summary>
    public void WriteOff()
    {
        lock (_sendSync)
        {
            if (_accounted)
            {
                _accounted = false;
                _budget!.Add(-_pendingBytes);
            }
        }
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <summary>Waits (in poll) until data or end of stream arrives; returns 0 at end of stream.</summary>
    public override int Read(Span<byte> buffer)
    {
        while (true)
        {
            var read = TryRead(buffer);
            if (read >= 0)
            {
                return read;
            }

            if (!_socket.Poll(ReadTimeoutMilliseconds == -1 ? Timeout.InfiniteTimeSpan : TimeSpan.FromMilliseconds(ReadTimeoutMilliseconds), SelectMode.SelectRead))
            {
                throw new IOException($"No data from the client within {ReadTimeoutMilliseconds} ms.");
            }
        }
    }

    /// <summary>What the kernel has for us now, without waiting: -1 when nothing has arrived, 0 at end of stream.</summary>
    public int TryRead(Span<byte> buffer)
    {
        while (true)
        {
            var read = _socket.Receive(buffer, SocketFlags.None, out var error);
            switch (error)
            {
                case SocketError.Success:
                    return read;
                case SocketError.WouldBlock:
                    return -1;
                case SocketError.Interrupted:
                    continue;
                default:
                    throw new IOException($"Reading from the client failed: {error}", new SocketException((int)error));
            }
        }
    }

    /// <summary>Waits in poll(2), on the calling thread, up to <paramref name="milliseconds"/> for data (or the end of the stream).</summary>
    public bool WaitReadable(int milliseconds) => _socket.Poll(TimeSpan.FromMilliseconds(milliseconds), SelectMode.SelectRead);

    /// <summary>
    /// Completes when data (or the end of the stream) arrives, without holding a thread or a buffer meanwhile: a
    /// zero-byte receive, which the runtime's event loop completes when the socket turns readable.
    /// </summary>
    public ValueTask<int> WaitReadableAsync() => _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None);

    /// <summary>What has arrived, or waits for it without holding a thread (TLS reads through this).</summary>
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = TryRead(buffer.Span);
        return read >= 0 ? ValueTask.FromResult(read) : _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>Writes never wait (see <see cref="Write(ReadOnlySpan{byte})"/>), so this completes at once.</summary>
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        Write(buffer.AsSpan(offset, count));
        return Task.CompletedTask;
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <summary>Sends what the kernel takes now and queues the rest; never waits for the client.</summary>
    /// <exception cref="IOException">The connection failed, or the client let too much output queue up.</exception>
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (buffer.IsEmpty)
        {
            return;
        }

        var over = false;
        lock (_sendSync)
        {
            if (_sendFailure is { } failure)
            {
                throw new IOException(failure.Message, failure); // a new exception per caller, the cause inside
            }

            if (_pending.Count == 0)
            {
                var sent = SendNow(buffer);
                if (sent == buffer.Length)
                {
                    return;
                }

                buffer = buffer[sent..];
            }

            if (_pendingBytes + buffer.Length > _maxPendingBytes)
            {
                _sendFailure = new IOException(
                    $"The client stopped reading: more than {_maxPendingBytes} bytes of output are waiting for it.");
                throw new IOException(_sendFailure.Message, _sendFailure);
            }

            _pending.Enqueue(buffer.ToArray());
            _pendingBytes += buffer.Length;
            over = _accounted && _budget!.Add(buffer.Length);
            if (!_draining)
            {
                _draining = true;
                _ = DrainAsync();
            }
        }

        if (over)
        {
            _overBudget?.Invoke();
        }
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>Resets the connection (RST) instead of closing it gracefully.</summary>
    public void Abort()
    {
        try
        {
            _socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already closed.
        }

        Dispose();
    }

    /// <summary>
    /// Closes after the queued output is sent (at most <paramref name="drainMilliseconds"/>, 1 s by default, and no longer
    /// than 1 s without the client taking any) with a FIN, then waits briefly before
    /// closing the socket: closing with unread input would send a reset that can overtake the last
    /// frames, a GOAWAY among them.
    /// </summary>
    public async Task CloseGracefullyAsync(int drainMilliseconds = 1000)
    {
        try
        {
            // A client that takes nothing for a second will not take the rest either: its bytes are dropped then.
            var now = Environment.TickCount64;
            var deadline = now + drainMilliseconds;
            var lastProgress = now;
            var pending = PendingBytes;
            while (pending > 0 && now < deadline && now - lastProgress < 1000 && !_disposed)
            {
                await Task.Delay(10).ConfigureAwait(false);
                now = Environment.TickCount64;
                var left = PendingBytes;
                if (left < pending)
                {
                    lastProgress = now;
                }

                pending = left;
            }

            if (!_disposed)
            {
                _socket.Shutdown(SocketShutdown.Send);
                await Task.Delay(100).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already gone.
        }
        finally
        {
            Dispose();
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            WriteOff();
            lock (_sendSync)
            {
                _sendFailure ??= new IOException("The connection is closed.");
            }

            _socket.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>One non-blocking send; the caller holds <see cref="_sendSync"/>. Returns the bytes the kernel took.</summary>
    private int SendNow(ReadOnlySpan<byte> buffer)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var sent = _socket.Send(buffer[total..], SocketFlags.None, out var error);
            switch (error)
            {
                case SocketError.Success:
                    total += sent;
                    continue;
                case SocketError.WouldBlock:
                    return total;
                case SocketError.Interrupted:
                    continue;
                default:
                    _sendFailure = new IOException($"Writing to the client failed: {error}", new SocketException((int)error));
                    throw new IOException(_sendFailure.Message, _sendFailure);
            }
        }

        return total;
    }

    /// <summary>Sends the queued output as the client reads it, then ends; a later overflow starts it again.</summary>
    private async Task DrainAsync()
    {
        try
        {
            while (true)
            {
                byte[] chunk;
                int offset;
                lock (_sendSync)
                {
                    if (_pending.Count == 0)
                    {
                        _draining = false;
                        return;
                    }

                    chunk = _pending.Peek();
                    offset = _pendingOffset;
                }

                var sent = await _socket.SendAsync(chunk.AsMemory(offset), SocketFlags.None).ConfigureAwait(false);
                lock (_sendSync)
                {
                    _pendingBytes -= sent;
                    if (_accounted)
                    {
                        _budget!.Add(-sent);
                    }

                    _pendingOffset += sent;
                    if (_pendingOffset == chunk.Length)
                    {
                        _pending.Dequeue();
                        _pendingOffset = 0;
                    }
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            lock (_sendSync)
            {
                _sendFailure ??= new IOException($"Writing to the client failed: {ex.Message}", ex);
                if (_accounted)
                {
                    _budget!.Add(-_pendingBytes);
                }

                _pending.Clear();
                _pendingBytes = 0;
                _pendingOffset = 0;
                _draining = false;
            }
        }
    }
}
