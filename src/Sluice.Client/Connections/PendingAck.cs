using System.Diagnostics;

namespace Sluice.Client.Connections;

/// <summary>
/// A message waiting for its ack. Completes exactly once, from whichever comes first: the ack
/// dispatcher, the timeout scan, the caller's cancellation, or the session failing.
/// </summary>
internal sealed class PendingAck
{
    private readonly TaskCompletionSource<SluiceAck?>? _completion;
    private readonly AckHandler? _handler;
    private readonly Action<Exception>? _onHandlerError;
    private int _done;

    private PendingAck(string correlationId, long deadline, TaskCompletionSource<SluiceAck?>? completion, AckHandler? handler, Action<Exception>? onHandlerError)
    {
        CorrelationId = correlationId;
        Deadline = deadline;
        _completion = completion;
        _handler = handler;
        _onHandlerError = onHandlerError;
    }

    public string CorrelationId { get; }

    /// <summary><see cref="Stopwatch.GetTimestamp"/> after which the ack is late.</summary>
    public long Deadline { get; }

    public bool IsCompleted => Volatile.Read(ref _done) != 0;

    public Task<SluiceAck?> Task => _completion?.Task ?? throw new InvalidOperationException("A callback ack has no task.");

    public static PendingAck ForTask(string correlationId, TimeSpan timeout) =>
        new(correlationId, DeadlineAfter(timeout), new TaskCompletionSource<SluiceAck?>(TaskCreationOptions.RunContinuationsAsynchronously), null, null);

    public static PendingAck ForCallback(string correlationId, TimeSpan timeout, AckHandler handler, Action<Exception> onHandlerError) =>
        new(correlationId, DeadlineAfter(timeout), null, handler, onHandlerError);

    public void Complete(SluiceAck? ack, Exception? error)
    {
        if (Interlocked.Exchange(ref _done, 1) != 0)
        {
            return;
        }

        if (_completion is not null)
        {
            if (error is null)
            {
                _completion.TrySetResult(ack);
            }
            else if (error is OperationCanceledException oce)
            {
                _completion.TrySetCanceled(oce.CancellationToken);
            }
            else
            {
                _completion.TrySetException(error);
            }

            return;
        }

        try
        {
            _handler!(ack, error);
        }
        catch (Exception ex)
        {
            _onHandlerError!(ex); // a throwing user callback must not stop the ack dispatcher
        }
    }

    private static long DeadlineAfter(TimeSpan timeout)
    {
        var ticks = (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        return Stopwatch.GetTimestamp() + Math.Max(ticks, 0);
    }
}
