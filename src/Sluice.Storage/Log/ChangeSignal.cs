namespace Sluice.Storage.Log;

/// <summary>
/// Wakes waiters when the log changes, without polling and without allocating when nobody
/// waits: a waiter marks the signal observed before it checks its condition, and the writer
/// swaps in a fresh task only when the current one was observed.
/// </summary>
internal sealed class ChangeSignal
{
    private TaskCompletionSource _current = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _observed;

    /// <summary>A task completed by the next <see cref="Pulse"/>; call it before checking the condition.</summary>
    public Task Observe()
    {
        Interlocked.Exchange(ref _observed, 1);
        return Volatile.Read(ref _current).Task;
    }

    /// <summary>Call after publishing a change.</summary>
    public void Pulse()
    {
        if (Interlocked.Exchange(ref _observed, 0) == 0)
        {
            return;
        }

        var old = Interlocked.Exchange(ref _current, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        old.TrySetResult();
    }
}
