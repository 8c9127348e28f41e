using System.Runtime.CompilerServices;

namespace Sluice.Storage.Metadata.Embedded;

public sealed partial class EmbeddedMetadataStore
{
    // Revisions copied per read-lock hold while a watcher catches up: bounds lock time, not memory.
    private const int WatchCatchUpBatch = 64;

    // Completed and replaced whenever watchers may have something new: a durable revision, a progress request
    // or shutdown. Watchers are pull-based: each reads the in-memory history at its own pace, so a slow one
    // is back-pressured rather than buffered, and only a compaction that overtakes it can end it.
    private TaskCompletionSource _watchSignal = NewCompletion();
    private long _progressEpoch;

    /// <inheritdoc />
    public IAsyncEnumerable<WatchResponse> WatchAsync(WatchRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ValidateKey(request.Key, nameof(request.Key));
        var end = NormalizeEnd(request.RangeEnd);
        if (end is not null && !KeyRanges.IsFromKey(end) && request.Key.AsSpan().SequenceCompareTo(end) >= 0)
        {
            throw new ArgumentException("mvcc: watcher range is empty (key >= range end)", nameof(request));
        }

        ObjectDisposedException.ThrowIf(_disposed, this);

        // Fixed now, not at first MoveNext, so changes made between this call and enumeration are delivered.
        var next = request.StartRevision > 0 ? request.StartRevision : Volatile.Read(ref _visibleRevision) + 1;
        return WatchCoreAsync(request, end, next, Volatile.Read(ref _progressEpoch), cancellationToken);
    }

    /// <inheritdoc />
    public void RequestWatchProgress()
    {
        Interlocked.Increment(ref _progressEpoch);
        NotifyWatchers();
    }

    private void NotifyWatchers() => Interlocked.Exchange(ref _watchSignal, NewCompletion()).TrySetResult();

    private async IAsyncEnumerable<WatchResponse> WatchCoreAsync(WatchRequest request, byte[]? end, long next, long seenEpoch, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var batch = new List<RevisionEvents>(WatchCatchUpBatch);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var signal = Volatile.Read(ref _watchSignal).Task; // taken before reading state, so no wake-up is missed
            ObjectDisposedException.ThrowIf(_disposed, this);
            long visible;
            batch.Clear();
            _rw.EnterReadLock();
            try
            {
                visible = Volatile.Read(ref _visibleRevision);
                var compacted = Volatile.Read(ref _compactRevision);
                if (next <= compacted)
                {
                    throw new CompactedException(next, compacted);
                }

                if (next <= visible)
                {
                    _events.Collect(next, visible, WatchCatchUpBatch, batch);
                }
            }
            finally
            {
                _rw.ExitReadLock();
            }

            if (next <= visible)
            {
                foreach (var revision in batch)
                {
                    var events = Filter(revision.Events, request, end);
                    if (events is not null)
                    {
                        yield return new WatchResponse(new ResponseHeader(visible), events);
                    }
                }

                next = batch.Count == WatchCatchUpBatch ? batch[^1].Revision + 1 : visible + 1;
                continue;
            }

            var epoch = Volatile.Read(ref _progressEpoch);
            if (epoch != seenEpoch)
            {
                seenEpoch = epoch;
                yield return new WatchResponse(new ResponseHeader(visible), []);
                continue;
            }

            var idle = false;
            if (request.ProgressNotify)
            {
                try
                {
                    await signal.WaitAsync(_options.WatchProgressInterval, _time, cancellationToken).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    idle = true;
                }
            }
            else
            {
                await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            if (idle)
            {
                yield return new WatchResponse(new ResponseHeader(Volatile.Read(ref _visibleRevision)), []);
            }
        }
    }

    private static WatchEvent[]? Filter(WatchEvent[] events, WatchRequest request, byte[]? end)
    {
        List<WatchEvent>? kept = null;
        foreach (var e in events)
        {
            if ((e.Type == WatchEventType.Put && request.NoPut)
                || (e.Type == WatchEventType.Delete && request.NoDelete)
                || !KeyRanges.Contains(request.Key, end, e.Kv.Key))
            {
                continue;
            }

            (kept ??= []).Add(request.PrevKv || e.PrevKv is null ? e : e with { PrevKv = null });
        }

        return kept?.ToArray();
    }
}
