using System.Runtime.CompilerServices;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Sluice.Storage.Metadata;
using Rpc = Etcdserverpb;

namespace Sluice.Etcd;

public sealed partial class EtcdMetadataStore
{
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan LastRetryDelay = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A watch on its own etcd Watch stream, driven here: after any stream error, and when nothing (not even the
    /// progress notification it asks for every <see cref="EtcdMetadataStoreOptions.WatchProbeInterval"/>) arrives for
    /// <see cref="EtcdMetadataStoreOptions.WatchLivenessTimeout"/>, it reopens the stream at the last delivered
    /// revision + 1, retrying after 100 ms, doubling to 1 s. So events written while etcd was away arrive once, in
    /// order, when it is back. A start revision that was compacted ends the watch with <see cref="CompactedException"/>.
    /// </summary>
    /// <remarks>
    /// "From now" (no start revision) means after <see cref="Revision"/>, the last revision this store has seen, so a
    /// caller that wrote and then watches misses none of the changes after its write. Progress notifications reach the
    /// caller only after <see cref="RequestWatchProgress"/>, or with <see cref="WatchRequest.ProgressNotify"/> (etcd's
    /// interval, 10 minutes by default); the stream's own liveness probes are not passed on, and a probe's revision is
    /// never used to resume (etcd 3.4 can answer a progress request ahead of events still in flight).
    /// </remarks>
    public IAsyncEnumerable<WatchResponse> WatchAsync(WatchRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ValidateKey(request.Key, nameof(request));
        var end = HasEnd(request.RangeEnd) ? request.RangeEnd : null;
        if (end is not null && !(end is [0]) && request.Key.AsSpan().SequenceCompareTo(end) >= 0)
        {
            throw new ArgumentException("mvcc: watcher range is empty (key >= range end)", nameof(request));
        }

        ThrowIfDisposed();
        var fromNow = request.StartRevision <= 0;
        var next = fromNow ? Revision + 1 : request.StartRevision;
        return WatchCoreAsync(request, end, next, fromNow, cancellationToken);
    }

    /// <summary>Sends etcd's progress request on every open watch stream; each watcher passes the answer on.</summary>
    public void RequestWatchProgress()
    {
        foreach (var watch in _watches.Keys)
        {
            Interlocked.Exchange(ref watch.ProgressPending, 1);
            watch.Stream?.SendProgress();
        }
    }

    private async IAsyncEnumerable<WatchResponse> WatchCoreAsync(WatchRequest request, byte[]? end, long next, bool fromNow, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var registration = new WatchRegistration();
        _watches.TryAdd(registration, 0);
        try
        {
            var delay = FirstRetryDelay;
            var delivered = false;
            while (true)
            {
                ThrowIfStopped(cancellationToken);
                await using var stream = new WatchStream(this, cancellationToken);
                if (await stream.OpenAsync(CreateRequest(request, end, next)).ConfigureAwait(false))
                {
                    // Reachable by RequestWatchProgress only once the create request is written.
                    registration.Stream = stream;
                    while (await stream.ReadAsync().ConfigureAwait(false) is { } response)
                    {
                        delay = FirstRetryDelay;
                        Observe(response.Header);
                        if (response.Canceled)
                        {
                            if (response.CompactRevision > 0)
                            {
                                Max(ref _compactRevision, response.CompactRevision);
                                if (fromNow && !delivered)
                                {
                                    // "From now" started at a stale revision that is gone: the retained history from
                                    // the compaction on still covers etcd's "now", so start there.
                                    next = response.CompactRevision;
                                    break;
                                }

                                throw new CompactedException(next, response.CompactRevision);
                            }

                            throw new MetadataStoreException($"etcd cancelled the watch: {response.CancelReason}");
                        }

                        if (response.Created)
                        {
                            if (Volatile.Read(ref registration.ProgressPending) != 0)
                            {
                                stream.SendProgress();
                            }

                            continue;
                        }

                        if (response.Events.Count == 0)
                        {
                            var asked = Interlocked.Exchange(ref registration.ProgressPending, 0) != 0;
                            if (asked || (request.ProgressNotify && response.WatchId != -1))
                            {
                                yield return new WatchResponse(Header(response.Header), []);
                            }

                            continue;
                        }

                        foreach (var batch in ByRevision(response, next))
                        {
                            delivered = true;
                            next = batch.EventRevision + 1;
                            yield return batch;
                        }
                    }
                }

                registration.Stream = null;
                ThrowIfStopped(cancellationToken);
                _logger.LogInformation("etcd watch stream to {Endpoints} lost; resuming at revision {Next} in {Delay} ms", _endpoints, next, delay.TotalMilliseconds);
                try
                {
                    await Task.Delay(delay, stream.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    ThrowIfStopped(cancellationToken);
                }

                delay = delay * 2 < LastRetryDelay ? delay * 2 : LastRetryDelay;
            }
        }
        finally
        {
            _watches.TryRemove(registration, out _);
        }
    }

    private void ThrowIfStopped(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfDisposed();
    }

    private static Rpc.WatchRequest CreateRequest(WatchRequest request, byte[]? end, long next)
    {
        var create = new Rpc.WatchCreateRequest
        {
            Key = Wrap(request.Key),
            StartRevision = next,
            PrevKv = request.PrevKv,
            ProgressNotify = request.ProgressNotify,
        };
        if (end is not null)
        {
            create.RangeEnd = Wrap(end);
        }

        if (request.NoPut)
        {
            create.Filters.Add(Rpc.WatchCreateRequest.Types.FilterType.Noput);
        }

        if (request.NoDelete)
        {
            create.Filters.Add(Rpc.WatchCreateRequest.Types.FilterType.Nodelete);
        }

        return new Rpc.WatchRequest { CreateRequest = create };
    }

    /// <summary>Splits one etcd response (which may carry several revisions) into one response per revision, skipping any already delivered.</summary>
    private static List<WatchResponse> ByRevision(Rpc.WatchResponse response, long next)
    {
        var batches = new List<WatchResponse>();
        List<WatchEvent>? current = null;
        long revision = 0;
        foreach (var e in response.Events)
        {
            var kv = FromPb(e.Kv);
            if (kv.ModRevision < next)
            {
                continue;
            }

            if (current is null || kv.ModRevision != revision)
            {
                if (current is not null)
                {
                    batches.Add(new WatchResponse(Header(response.Header), current));
                }

                current = [];
                revision = kv.ModRevision;
            }

            var type = e.Type == Mvccpb.Event.Types.EventType.Delete ? WatchEventType.Delete : WatchEventType.Put;
            current.Add(new WatchEvent(type, kv, e.PrevKv is null ? null : FromPb(e.PrevKv)));
        }

        if (current is not null)
        {
            batches.Add(new WatchResponse(Header(response.Header), current));
        }

        return batches;
    }

    /// <summary>One active <see cref="WatchAsync"/>, so <see cref="RequestWatchProgress"/> can reach its stream.</summary>
    private sealed class WatchRegistration
    {
        public int ProgressPending;

        public volatile WatchStream? Stream;
    }

    /// <summary>One etcd Watch call: its writes (create, progress requests) are serialised; reads carry the liveness deadline.</summary>
    private sealed class WatchStream : IAsyncDisposable
    {
        private readonly EtcdMetadataStore _store;
        private readonly CancellationToken _caller;
        private readonly CancellationTokenSource _cts;
        private readonly SemaphoreSlim _writeLock = new(1, 1);
        private AsyncDuplexStreamingCall<Rpc.WatchRequest, Rpc.WatchResponse>? _call;
        private Task? _probe;
        private EtcdMembers.Member? _member;

        public WatchStream(EtcdMetadataStore store, CancellationToken caller)
        {
            _store = store;
            _caller = caller;
            _cts = CancellationTokenSource.CreateLinkedTokenSource(caller, store._disposing.Token);
        }

        /// <summary>Cancelled when the stream is given up (caller, store disposal or the stream's end).</summary>
        public CancellationToken Token => _cts.Token;

        public async Task<bool> OpenAsync(Rpc.WatchRequest create)
        {
            try
            {
                _member = _store._members.Current;
                _call = _member.Watch.Watch(new CallOptions(cancellationToken: _cts.Token));
                await WriteAsync(create).ConfigureAwait(false);
                _probe = ProbeAsync();
                return true;
            }
            catch (Exception e) when (IsStreamFailure(e))
            {
                _store._logger.LogDebug(e, "etcd watch stream could not be opened");
                _store._members.Failed(_member!);
                return false;
            }
            catch (Exception e) when (e is RpcException or IOException && _caller.IsCancellationRequested)
            {
                throw new OperationCanceledException("the watch was cancelled", e, _caller); // the contract: cancelling ends a watch with OperationCanceledException
            }
        }

        /// <summary>The next response, or null when the stream broke or went silent past the liveness timeout.</summary>
        public async Task<Rpc.WatchResponse?> ReadAsync()
        {
            try
            {
                _cts.CancelAfter(_store._options.WatchLivenessTimeout);
                var more = await _call!.ResponseStream.MoveNext(_cts.Token).ConfigureAwait(false);
                _cts.CancelAfter(Timeout.InfiniteTimeSpan);
                return more ? _call.ResponseStream.Current : null;
            }
            catch (Exception e) when (IsStreamFailure(e))
            {
                _store._logger.LogDebug(e, "etcd watch stream broke or went silent");
                _store._members.Failed(_member!);
                return null;
            }
            catch (Exception e) when (e is RpcException or IOException && _caller.IsCancellationRequested)
            {
                throw new OperationCanceledException("the watch was cancelled", e, _caller);
            }
        }

        public void SendProgress() => _ = SendProgressAsync();

        private async Task SendProgressAsync()
        {
            try
            {
                await WriteAsync(new Rpc.WatchRequest { ProgressRequest = new Rpc.WatchProgressRequest() }).ConfigureAwait(false);
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException or IOException or InvalidOperationException or ObjectDisposedException)
            {
                // Fire and forget: the reader sees a broken stream and reconnects, or the watch is ending.
            }
        }

        private async Task ProbeAsync()
        {
            try
            {
                while (true)
                {
                    await Task.Delay(_store._options.WatchProbeInterval, _cts.Token).ConfigureAwait(false);
                    await SendProgressAsync().ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                // The stream is done.
            }
        }

        private async Task WriteAsync(Rpc.WatchRequest request)
        {
            await _writeLock.WaitAsync(_cts.Token).ConfigureAwait(false);
            try
            {
                await _call!.RequestStream.WriteAsync(request, _cts.Token).ConfigureAwait(false);
            }
            finally
            {
                _writeLock.Release();
            }
        }

        // A caller's cancellation or the store's disposal is not a stream failure: it ends the watch.
        private bool IsStreamFailure(Exception e) =>
            e is RpcException or OperationCanceledException or IOException or InvalidOperationException
            && !_caller.IsCancellationRequested
            && !_store._disposing.IsCancellationRequested;

        public async ValueTask DisposeAsync()
        {
            await _cts.CancelAsync().ConfigureAwait(false);
            if (_probe is not null)
            {
                await _probe.ConfigureAwait(false);
            }

            _call?.Dispose();
            _cts.Dispose();
            _writeLock.Dispose();
        }
    }
}
