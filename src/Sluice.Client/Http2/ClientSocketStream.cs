using System.Net.Sockets;

namespace Sluice.Client.Http2;

/// <summary>
/// A connected socket as a <see cref="Stream"/> that waits in poll(2) itself. Blocking while the connection is set up
/// (connect and TLS handshake, which the connect timeout ends by closing the socket); then <see cref="StartNonBlocking"/>:
/// from there reads and writes are direct non-blocking calls that wait in poll(2) on the caller's thread, so the
/// reader can also wait for data asynchronously (<see cref="WaitReadableAsync"/>) without the runtime turning every
/// later synchronous read into a trip through its event loop, which it does for a blocking socket that ever ran an
/// asynchronous operation.
/// </summary>
internal sealed class ClientSocketStream(Socket socket) : Stream
{
    public Socket Socket => socket;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>The connection is set up: from here calls never block inside the kernel, they wait in poll(2).</summary>
    public void StartNonBlocking() => socket.Blocking = false;

    /// <summary>What has arrived, without waiting: -1 when nothing has, 0 at end of stream.</summary>
    public int TryRead(Span<byte> buffer)
    {
        while (true)
        {
            var read = socket.Receive(buffer, SocketFlags.None, out var error);
            switch (error)
            {
                case SocketError.Success:
                    return read;
                case SocketError.WouldBlock:
                    return -1;
                case SocketError.Interrupted:
                    continue;
                default:
                    throw new IOException($"Reading from the server failed: {error}", new SocketException((int)error));
            }
        }
    }

    /// <summary>Waits in poll(2), on this thread, up to <paramref name="milliseconds"/> for data or the end of the stream.</summary>
    public bool WaitReadable(int milliseconds) => socket.Poll(TimeSpan.FromMilliseconds(milliseconds), SelectMode.SelectRead);

    /// <summary>Completes when data (or the end of the stream) arrives, holding no thread and no buffer meanwhile (a zero-byte receive).</summary>
    public ValueTask<int> WaitReadableAsync() => socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None);

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (socket.Blocking)
        {
            return socket.Receive(buffer, SocketFlags.None);
        }

        while (true)
        {
            var read = TryRead(buffer);
            if (read >= 0)
            {
                return read;
            }

            socket.Poll(Timeout.InfiniteTimeSpan, SelectMode.SelectRead);
        }
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!socket.Blocking)
        {
            var read = TryRead(buffer.Span);
            if (read >= 0)
            {
                return ValueTask.FromResult(read);
            }
        }

        return socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <summary>Sends all of <paramref name="buffer"/>, waiting in poll(2) while the kernel's send buffer is full.</summary>
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            var sent = socket.Send(buffer, SocketFlags.None, out var error);
            switch (error)
            {
                case SocketError.Success:
                    buffer = buffer[sent..];
                    break;
                case SocketError.WouldBlock:
                    socket.Poll(Timeout.InfiniteTimeSpan, SelectMode.SelectWrite);
                    break;
                case SocketError.Interrupted:
                    break;
                default:
                    throw new IOException($"Writing to the server failed: {error}", new SocketException((int)error));
            }
        }
    }

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

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            socket.Dispose();
        }

        base.Dispose(disposing);
    }
}
