namespace Sluice.Protocol.Http2;

/// <summary>
/// Wakes writers waiting for flow-control credit (or a stream slot): they await <see cref="WaitLocked"/>,
/// and whoever adds capacity takes the signal with <see cref="TakeLocked"/> and completes it after
/// leaving the connection's lock. Both run under that lock; continuations never run inline.
/// </summary>
internal sealed class Http2CapacitySignal
{
    private TaskCompletionSource? _signal;

    /// <summary>A task that completes at the next capacity change; the caller holds the connection's lock.</summary>
    public Task WaitLocked() => (_signal ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    /// <summary>The pending signal (or null) for the caller to complete after leaving the connection's lock.</summary>
    public TaskCompletionSource? TakeLocked()
    {
        var signal = _signal;
        _signal = null;
        return signal;
    }
}
