using System.Threading.Tasks.Sources;
using Sluice.Storage.Log;

namespace Sluice.Server.Cluster.Replication;

/// <summary>
/// A follower's fetch parked on the leader until there is something to answer: records past its fetch offset, a
/// high watermark past the one it was last told, the idle wait (a heartbeat), leadership ending or the call ending.
/// One per fetch stream, reused for every wait.
/// </summary>
/// <remarks>
/// Why not <see cref="CommitLog.WaitForOffsetAsync"/>: a synchronous publish with replication factor 3 parks each
/// follower's fetch twice per message, and that wait resumes on the thread pool (a context switch each way on a
/// 2-core machine) and, waiting for records and the high watermark at once, cancels one of the two waits each time.
/// Here the thread that makes the change (the publisher's append, a follower's fetch moving the high watermark)
/// resumes the parked fetch itself, which reads the log and writes the answer without blocking (socket writes never
/// wait), so an answer costs no thread hop and no allocation.
/// </remarks>
internal sealed class FetchWaiter : IValueTaskSource, IDisposable
{
    private const int Idle = 0;
    private const int Waiting = 1;

    private readonly Timer _timer;
    private readonly CancellationTokenRegistration _cancellation;
    private ManualResetValueTaskSourceCore<bool> _core; // continuations run on the waking thread
    private LeaderReplication? _owner;
    private CommitLog? _log;
    private long _fetchOffset;
    private long _lastHighWatermark;
    private int _state;

    public FetchWaiter(CancellationToken callToken)
    {
        _timer = new Timer(static w => ((FetchWaiter)w!).Wake(), this, Timeout.Infinite, Timeout.Infinite);
        _cancellation = callToken.UnsafeRegister(static w => ((FetchWaiter)w!).Wake(), this);
    }

    /// <summary>
    /// Completes when <paramref name="log"/> has a record at or past <paramref name="fetchOffset"/> or a high
    /// watermark above <paramref name="lastHighWatermark"/>, after <paramref name="idle"/>, or when woken for any
    /// other reason (the caller checks again what it answers). One wait at a time.
    /// </summary>
    public ValueTask WaitAsync(LeaderReplication replication, CommitLog log, long fetchOffset, long lastHighWatermark, TimeSpan idle)
    {
        _core.Reset();
        _log = log;
        _fetchOffset = fetchOffset;
        _lastHighWatermark = lastHighWatermark;
        Interlocked.Exchange(ref _state, Waiting); // a full fence: published before the condition is read below
        if (!ReferenceEquals(_owner, replication))
        {
            _owner?.RemoveFetchWaiter(this);
            _owner = replication;
            replication.AddFetchWaiter(this); // wakes it at once if that leadership is already over
        }

        _timer.Change(idle, Timeout.InfiniteTimeSpan);
        if (Ready())
        {
            Wake(); // the change came before the wait was published: nobody else will wake it
        }

        return new ValueTask(this, _core.Version);
    }

    /// <summary>Wakes the parked fetch if what it waits for has come (callers fence after their change).</summary>
    public void WakeIfReady()
    {
        if (Volatile.Read(ref _state) == Waiting && Ready())
        {
            Wake();
        }
    }

    /// <summary>Wakes the parked fetch, if any, whatever it waits for.</summary>
    public void Wake()
    {
        if (Interlocked.CompareExchange(ref _state, Idle, Waiting) != Waiting)
        {
            return;
        }

        _timer.Change(Timeout.Infinite, Timeout.Infinite);
        _core.SetResult(true);
    }

    private bool Ready() => _log is { } log && (log.NextOffset > _fetchOffset || log.HighWatermark > _lastHighWatermark);

    public void Dispose()
    {
        _owner?.RemoveFetchWaiter(this);
        _owner = null;
        _cancellation.Dispose();
        _timer.Dispose();
        Wake();
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
