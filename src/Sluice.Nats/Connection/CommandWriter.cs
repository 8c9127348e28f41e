using System.Buffers;
using Sluice.Nats.Protocol;

namespace Sluice.Nats.Connection;

/// <summary>
/// The single path from callers to the socket. Callers serialise operations into the pending buffer
/// under a short lock; one writer loop swaps the buffer out and writes everything accumulated in one
/// call, so a burst of publishes costs one syscall, not one each. The buffer outlives connections:
/// while disconnected it is the reconnect buffer (bounded by <c>ReconnectBufferSize</c>), and a batch whose
/// write failed is written again first on the next connection.
/// PINGs remember their byte offset so that, on disconnect, flushes whose PING already went out on the
/// dead socket fail, while PINGs still buffered wait for their PONG from the next server.
/// </summary>
internal sealed class CommandWriter
{
    /// <summary>64 KiB holds a few hundred small publishes, enough for a full batch without growing.</summary>
    private const int InitialBufferSize = 64 * 1024;

    /// <summary>Buffers grown past 4 MiB (a reconnect backlog or a huge message) are released after use, not kept forever.</summary>
    private const int ShrinkAbove = 4 * 1024 * 1024;

    /// <summary>Publishers wait for the socket once 4 MiB is unsent, so a fast producer cannot grow memory without bound.</summary>
    private const long BackpressureThreshold = 4 * 1024 * 1024;

    private readonly Lock _lock = new();
    private readonly Queue<(long Offset, TaskCompletionSource? Waiter)> _pings = new();
    private readonly long _reconnectBufferSize;
    private ArrayBufferWriter<byte> _pending = new(InitialBufferSize);
    private ArrayBufferWriter<byte> _inflight = new(InitialBufferSize);
    private long _appended;
    private long _sent;
    private bool _connected;
    private Exception? _closed;
    private TaskCompletionSource? _dataSignal;
    private TaskCompletionSource? _drainSignal;

    public CommandWriter(long reconnectBufferSize) => _reconnectBufferSize = reconnectBufferSize;

    /// <summary>Bytes accepted but not yet written to a socket.</summary>
    public long Unsent
    {
        get
        {
            lock (_lock)
            {
                return _appended - _sent;
            }
        }
    }

    public ValueTask PublishAsync(string subject, string? replyTo, NatsHeaders? headers, int headerLength, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        Task? wait;
        lock (_lock)
        {
            ThrowIfClosed();
            if (!_connected)
            {
                var size = headerLength + payload.Length + subject.Length + (replyTo?.Length ?? 0) + 32;
                var unsent = _appended - _sent;
                if (unsent + size > _reconnectBufferSize)
                {
                    throw new NatsReconnectBufferFullException(unsent, _reconnectBufferSize);
                }
            }

            var before = _pending.WrittenCount;
            NatsProtocolWriter.WritePublish(_pending, subject, replyTo, headers, headerLength, payload.Span);
            Appended(before);
            wait = BackpressureTask();
        }

        return wait is null ? default : new ValueTask(wait.WaitAsync(cancellationToken));
    }

    public void Subscribe(long sid, string subject, string? queueGroup)
    {
        lock (_lock)
        {
            ThrowIfClosed();
            var before = _pending.WrittenCount;
            NatsProtocolWriter.WriteSubscribe(_pending, sid, subject, queueGroup);
            Appended(before);
        }
    }

    public void Unsubscribe(long sid, long? maxMsgs)
    {
        lock (_lock)
        {
            ThrowIfClosed();
            var before = _pending.WrittenCount;
            NatsProtocolWriter.WriteUnsubscribe(_pending, sid, maxMsgs);
            Appended(before);
        }
    }

    public void Pong()
    {
        lock (_lock)
        {
            if (_closed is not null)
            {
                return;
            }

            var before = _pending.WrittenCount;
            NatsProtocolWriter.WritePong(_pending);
            Appended(before);
        }
    }

    /// <summary>Queues a PING. The task completes on its PONG; keepalive pings pass <paramref name="track"/> false and get null.</summary>
    public Task? Ping(bool track)
    {
        lock (_lock)
        {
            ThrowIfClosed();
            var before = _pending.WrittenCount;
            NatsProtocolWriter.WritePing(_pending);
            Appended(before);
            var waiter = track ? new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) : null;
            _pings.Enqueue((_appended, waiter));
            return waiter?.Task;
        }
    }

    public void OnPong()
    {
        TaskCompletionSource? waiter = null;
        lock (_lock)
        {
            if (_pings.TryDequeue(out var entry))
            {
                waiter = entry.Waiter;
            }
        }

        waiter?.TrySetResult();
    }

    public void OnConnected()
    {
        lock (_lock)
        {
            _connected = true;
        }
    }

    public void OnDisconnected(Exception reason)
    {
        List<TaskCompletionSource> failed = [];
        TaskCompletionSource? drained;
        lock (_lock)
        {
            _connected = false;
            while (_pings.TryPeek(out var entry) && entry.Offset <= _sent)
            {
                _pings.Dequeue();
                if (entry.Waiter is not null)
                {
                    failed.Add(entry.Waiter);
                }
            }

            drained = _drainSignal;
            _drainSignal = null;
        }

        var error = new NatsConnectionException("The connection was lost before the server answered the PING.", reason);
        foreach (var waiter in failed)
        {
            waiter.TrySetException(error);
        }

        drained?.TrySetResult();
    }

    public void Close(Exception reason)
    {
        List<TaskCompletionSource> failed = [];
        TaskCompletionSource? drained;
        TaskCompletionSource? data;
        lock (_lock)
        {
            _closed ??= reason;
            _connected = false;
            while (_pings.TryDequeue(out var entry))
            {
                if (entry.Waiter is not null)
                {
                    failed.Add(entry.Waiter);
                }
            }

            (drained, _drainSignal) = (_drainSignal, null);
            (data, _dataSignal) = (_dataSignal, null);
        }

        foreach (var waiter in failed)
        {
            waiter.TrySetException(reason);
        }

        drained?.TrySetException(reason);
        data?.TrySetResult();
    }

    /// <summary>Writes until cancelled or the stream fails; the caller treats a failure as a lost connection.</summary>
    public async Task RunAsync(Stream stream, CancellationToken cancellationToken)
    {
        while (true)
        {
            ArrayBufferWriter<byte> batch;
            Task? wait = null;
            lock (_lock)
            {
                if (_closed is not null)
                {
                    return;
                }

                if (_inflight.WrittenCount == 0)
                {
                    if (_pending.WrittenCount == 0)
                    {
                        _dataSignal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        wait = _dataSignal.Task;
                    }
                    else
                    {
                        (_pending, _inflight) = (_inflight, _pending);
                    }
                }

                batch = _inflight;
            }

            if (wait is not null)
            {
                await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            await stream.WriteAsync(batch.WrittenMemory, cancellationToken).ConfigureAwait(false);
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);

            TaskCompletionSource? drained;
            lock (_lock)
            {
                _sent += batch.WrittenCount;
                if (batch.Capacity > ShrinkAbove)
                {
                    _inflight = new ArrayBufferWriter<byte>(InitialBufferSize);
                }
                else
                {
                    batch.ResetWrittenCount();
                }

                (drained, _drainSignal) = (_drainSignal, null);
            }

            drained?.TrySetResult();
        }
    }

    private void Appended(int before)
    {
        _appended += _pending.WrittenCount - before;
        if (_dataSignal is { } signal)
        {
            _dataSignal = null;
            signal.TrySetResult();
        }
    }

    private Task? BackpressureTask()
    {
        if (!_connected || _appended - _sent <= BackpressureThreshold)
        {
            return null;
        }

        _drainSignal ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return _drainSignal.Task;
    }

    private void ThrowIfClosed()
    {
        if (_closed is not null)
        {
            throw new NatsConnectionClosedException("The NATS connection is closed.");
        }
    }
}
