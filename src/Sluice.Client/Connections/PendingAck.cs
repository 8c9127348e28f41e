namespace Sluice.Client.Connections;

/// <summary>
/// A message waiting for its ack. Completes exactly once, from whichever comes first: the ack
/// dispatcher, the timeout scan, the caller's cancellation, or the session failing.
/// </summary>
internal abstract class PendingAck : Http2.IDeferredCompletion
{
    private static long _sequences;
    private int _done;

    protected PendingAck(string correlationId, TimeSpan timeout)
    {
        CorrelationId = correlationId;
        Deadline = DeadlineAfter(timeout);
    }

    /// <summary>Creation order, so messages resent after a broken stream go out in the order they were published.</summary>
    public long Sequence { get; } = Interlocked.Increment(ref _sequences);

    public string CorrelationId { get; }

    /// <summary>
    /// Set when the message may be sent again after its broker went away (it carries a message id, so the
    /// broker drops a second copy): the session hands it to the client's resend instead of failing it.
    /// </summary>
    public PublishFrame? Resendable { get; set; }

    /// <summary>Whether <see cref="Complete"/> was called.</summary>
    public bool IsCompleted => Volatile.Read(ref _done) != 0;

    /// <summary><see cref="Environment.TickCount64"/> after which the ack is late.</summary>
    public long Deadline { get; }

    /// <summary>The clock of <see cref="Deadline"/>: milliseconds, and cheaper to read than a Stopwatch.</summary>
    public static long Now => Environment.TickCount64;

    /// <summary>
    /// Completes the message. On a native connection's reader thread (an ack as it is read) the caller's
    /// continuation or callback runs there, after the frames in hand; anywhere else a task's
    /// continuation goes to the thread pool and a callback runs at once.
    /// </summary>
    public void Complete(SluiceAck? ack, Exception? error)
    {
        if (Interlocked.Exchange(ref _done, 1) != 0)
        {
            return;
        }

        Ack = ack;
        Error = error;
        if (!Http2.Http2ClientReader.TryDefer(this))
        {
            OnCompleted(onReader: false);
        }
    }

    /// <summary>The outcome given to <see cref="Complete"/>.</summary>
    protected SluiceAck? Ack { get; private set; }

    /// <summary>The error given to <see cref="Complete"/>.</summary>
    protected Exception? Error { get; private set; }

    void Http2.IDeferredCompletion.Run() => OnCompleted(onReader: true);

    /// <summary>Delivers <see cref="Ack"/> or <see cref="Error"/>; <paramref name="onReader"/> when running deferred on a reader thread.</summary>
    protected abstract void OnCompleted(bool onReader);

    private static long DeadlineAfter(TimeSpan timeout)
    {
        // Rounded up, so a wait is never shorter than asked; a wait beyond ~290 million years never ends.
        var milliseconds = Math.Ceiling(Math.Max(timeout.TotalMilliseconds, 0));
        return milliseconds >= long.MaxValue / 2 ? long.MaxValue : Now + (long)milliseconds;
    }
}

/// <summary>An awaited publish: the ack completes a task.</summary>
internal sealed class TaskPendingAck(string correlationId, TimeSpan timeout) : PendingAck(correlationId, timeout)
{
    // Continuations run where the task completes: inline only on a reader thread (see Complete); elsewhere
    // the completion itself is queued to the thread pool, so no other code runs user continuations.
    private readonly TaskCompletionSource<SluiceAck?> _completion = new(TaskCreationOptions.None);

    public Task<SluiceAck?> Task => _completion.Task;

    /// <summary>Where it was sent (last, after a resend): a cancelled caller stops waiting there.</summary>
    public volatile PublishSession? Session;

    protected override void OnCompleted(bool onReader)
    {
        if (onReader)
        {
            Set();
        }
        else
        {
            ThreadPool.UnsafeQueueUserWorkItem(static self => self.Set(), this, preferLocal: true);
        }
    }

    private void Set()
    {
        if (Error is null)
        {
            _completion.TrySetResult(Ack);
        }
        else if (Error is OperationCanceledException oce)
        {
            _completion.TrySetCanceled(oce.CancellationToken);
        }
        else
        {
            _completion.TrySetException(Error);
        }
    }
}

/// <summary>A publish with a callback, and the caller's state for it (no closure to allocate).</summary>
internal sealed class CallbackPendingAck<TState>(string correlationId, TimeSpan timeout, AckHandler<TState> handler, TState state, Action<Exception> onHandlerError)
    : PendingAck(correlationId, timeout)
{
    protected override void OnCompleted(bool onReader)
    {
        try
        {
            handler(Ack, Error, state);
        }
        catch (Exception ex)
        {
            onHandlerError(ex); // a throwing user callback must not stop the ack dispatcher
        }
    }
}
