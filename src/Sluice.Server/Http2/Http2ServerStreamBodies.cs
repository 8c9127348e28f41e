using System.Buffers;
using System.IO.Pipelines;

namespace Sluice.Server.Http2;

/// <summary>The request body: a pipe the reader thread fills; consumption returns flow-control credit to the client.</summary>
internal sealed class Http2RequestBodyReader(Http2ServerStream stream, PipeReader inner) : PipeReader
{
    private ReadOnlySequence<byte> _last;
    private long _consumedTotal;
    private long _creditedTotal;

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        var read = inner.ReadAsync(cancellationToken);
        if (read.IsCompletedSuccessfully)
        {
            var result = read.Result;
            _last = result.Buffer;
            return new ValueTask<ReadResult>(result);
        }

        return Remember(read);
    }

    public override bool TryRead(out ReadResult result)
    {
        if (inner.TryRead(out result))
        {
            _last = result.Buffer;
            return true;
        }

        return false;
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        // Credit follows what the handler has looked at, not only what it consumed: a message larger
        // than the stream window is examined whole before any of it is consumed.
        var examinedTotal = _consumedTotal + _last.Slice(_last.Start, examined).Length;
        _consumedTotal += _last.Slice(_last.Start, consumed).Length;
        _last = default;
        inner.AdvanceTo(consumed, examined);
        if (examinedTotal > _creditedTotal)
        {
            var bytes = (int)(examinedTotal - _creditedTotal);
            _creditedTotal = examinedTotal;
            stream.Connection.OnBodyExamined(stream, bytes);
        }
    }

    public override void CancelPendingRead() => inner.CancelPendingRead();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ReadResult> Remember(ValueTask<ReadResult> read)
    {
        var result = await read.ConfigureAwait(false);
        _last = result.Buffer;
        return result;
    }
}

/// <summary>The response body: a growing buffer that the connection sends from on a flush.</summary>
internal sealed class Http2ResponseBodyWriter(Http2ServerStream stream) : PipeWriter
{
    private const int InitialSize = 4096;
    private byte[] _buffer = [];
    private int _start;
    private int _end;

    public ReadOnlyMemory<byte> Buffered => _buffer.AsMemory(_start, _end - _start);

    public override bool CanGetUnflushedBytes => true;

    public override long UnflushedBytes => _end - _start;

    public override void Advance(int bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (_end + bytes > _buffer.Length)
        {
            throw new InvalidOperationException("Advanced past the end of the buffer.");
        }

        _end += bytes;
    }

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(_end);
    }

    public override Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(_end);
    }

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        var send = stream.Connection.Output.SendAsync(stream, complete: false, cancellationToken);
        return send.IsCompletedSuccessfully ? new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: !send.Result)) : AwaitSend(send);
    }

    public override void CancelPendingFlush()
    {
        // A flush waits only for flow-control credit, and the call's token cancels that.
    }

    public override void Complete(Exception? exception = null)
    {
        // The stream ends when the call returns (Http2ServerStream.RunAsync), with its status.
    }

    public void Consume(int count)
    {
        _start += count;
        if (_start == _end)
        {
            _start = _end = 0;
        }
    }

    public void Release()
    {
        _buffer = [];
        _start = _end = 0;
    }

    private static async ValueTask<FlushResult> AwaitSend(ValueTask<bool> send) =>
        new(isCanceled: false, isCompleted: !await send.ConfigureAwait(false));

    private void Ensure(int sizeHint)
    {
        sizeHint = Math.Max(sizeHint, 1);
        if (_buffer.Length - _end >= sizeHint)
        {
            return;
        }

        var used = _end - _start;
        if (_start > 0 && _buffer.Length - used >= sizeHint)
        {
            _buffer.AsSpan(_start, used).CopyTo(_buffer);
            _start = 0;
            _end = used;
            return;
        }

        // Not pooled: a late write after the call ended (a partition loop posting an ack) may still
        // hold a span of this array, so it must never be handed to anyone else.
        var bigger = GC.AllocateUninitializedArray<byte>(Math.Max(InitialSize, Math.Max(used + sizeHint, _buffer.Length * 2)));
        _buffer.AsSpan(_start, used).CopyTo(bigger);

        _buffer = bigger;
        _start = 0;
        _end = used;
    }
}
