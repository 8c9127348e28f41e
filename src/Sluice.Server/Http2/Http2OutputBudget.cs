namespace Sluice.Server.Http2;

/// <summary>
/// Unsent response bytes all of a listener's connections hold together (<see cref="Http2ListenerOptions.MaxBufferedOutputBytes"/>):
/// what their clients have not read yet, queued because socket writes never wait. Each connection's
/// <see cref="ServerSocketStream"/> adds what it queues and takes off what the kernel accepts; past the limit
/// the listener cuts the connection holding the most.
/// </summary>
internal sealed class Http2OutputBudget(long limit)
{
    private readonly Lock _sync = new();
    private long _total;
    private int _cutting;
    private TaskCompletionSource? _below; // completes when the total drops to the limit, under _sync

    public long Limit { get; } = limit;

    /// <summary>Bytes queued on all connections that are not cut yet.</summary>
    public long Total => Interlocked.Read(ref _total);

    /// <summary>Adds (or with a negative delta, takes off) queued bytes; true when the total is now over the limit.</summary>
    public bool Add(long delta)
    {
        var total = Interlocked.Add(ref _total, delta);
        if (delta < 0 && total <= Limit && Volatile.Read(ref _below) is not null)
        {
            TaskCompletionSource? below;
            lock (_sync)
            {
                below = Total <= Limit ? _below : null;
                if (below is not null)
                {
                    _below = null;
                }
            }

            below?.TrySetResult();
        }

        return total > Limit;
    }

    /// <summary>Completes once the total is within the limit (at once when it is).</summary>
    public Task WaitWithinLimitAsync()
    {
        lock (_sync)
        {
            return Total <= Limit ? Task.CompletedTask : (_below ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
    }

    /// <summary>One cut runs at a time: true for the caller that gets to run it.</summary>
    public bool TryBeginCut() => Interlocked.CompareExchange(ref _cutting, 1, 0) == 0;

    public void EndCut() => Volatile.Write(ref _cutting, 0);
}
