using System.Text;
using Microsoft.Extensions.Logging;
using Sluice.Client.Grpc;
using Sluice.Client.Internal;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Wire;

namespace Sluice.Client.Connections;

/// <summary>
/// One long-lived PublishAsync stream to a broker. Requests are pipelined (the duplex call batches
/// writes); responses are matched to waiting messages by correlation id, since acks of different
/// partitions can arrive out of order. Ack timeouts are found by a periodic scan instead of a
/// timer per message: a timer per message would cost more than the message itself.
/// When the stream breaks every waiting message fails at once, except those the client may resend
/// (they carry a message id and the broker went away): those go to the resend callback with the
/// failure. The next publish opens a new stream.
/// </summary>
internal sealed class PublishSession : IAsyncDisposable
{
    private const string Method = "/proto.API/PublishAsync";

    private readonly GrpcDuplexCall<PublishFrame, WirePublishResponse> _call;
    // Guarded by _pendingLock. A plain dictionary under a lock costs no node per message, and
    // publishers and the ack reader hold the lock only for one add or remove.
    private readonly Dictionary<string, PendingAck> _pending = new(StringComparer.Ordinal);
    private readonly Dictionary<string, PendingAck>.AlternateLookup<ReadOnlySpan<char>> _pendingByChars;
    private readonly Lock _pendingLock = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly ILogger _logger;
    private readonly string _address;
    private readonly Action<List<PendingAck>, Exception>? _resend;
    private readonly Action<PublishSession, List<(string Stream, int Partition)>>? _silent;
    private readonly long _ackWaitMs;
    private readonly Task _reader;
    private readonly Task _timeouts;
    private volatile Exception? _failure;
    private long _lastAnswerAt = PendingAck.Now;
    private volatile bool _answered;
    private long _lastSilenceReport;

    /// <summary>
    /// How long the broker may answer nothing while messages wait before the client checks whether it still leads
    /// their partitions: a stopped or paused process keeps its connections open, and only the metadata shows that
    /// the cluster has moved on (the broker lease is 3 s by default).
    /// </summary>
    internal static readonly TimeSpan SilenceCheck = TimeSpan.FromSeconds(1);

    public PublishSession(GrpcChannel channel, string address, TimeSpan ackWaitTime, ILogger logger, Action<List<PendingAck>, Exception>? resend = null,
        Action<PublishSession, List<(string Stream, int Partition)>>? silent = null)
    {
        _address = address;
        _logger = logger;
        _resend = resend;
        _silent = silent;
        _ackWaitMs = (long)ackWaitTime.TotalMilliseconds;
        _pendingByChars = _pending.GetAlternateLookup<ReadOnlySpan<char>>();
        _call = channel.DuplexStreaming<PublishFrame, WirePublishResponse>(Method, WirePublishResponse.Decode, timeout: null, inlineResponses: true, _stop.Token);
        _reader = Task.Run(ReadAcksAsync, CancellationToken.None);
        _timeouts = Task.Run(() => ScanTimeoutsAsync(ackWaitTime), CancellationToken.None);
    }

    /// <summary>"host:port" of the broker.</summary>
    public string Address => _address;

    /// <summary>
    /// Gives the stream up: what waits on it fails with <paramref name="failure"/> (resent when it is a
    /// <see cref="BrokerUnavailableException"/> and the message can be), and the stream is cancelled.
    /// </summary>
    public void Abandon(Exception failure)
    {
        Fail(failure);
        try
        {
            _stop.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Disposed meanwhile.
        }
    }

    /// <summary>The broker answered on this stream at least once (it worked before it broke, if it broke).</summary>
    public bool Answered => _answered;

    /// <summary>The stream broke or was closed; a new session is needed.</summary>
    public bool IsBroken => _failure is not null;

    /// <summary>Messages sent and not yet acked.</summary>
    public int PendingCount
    {
        get
        {
            lock (_pendingLock)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Queues <paramref name="request"/>; <paramref name="pending"/> (null for AckPolicy NONE) receives its outcome.</summary>
    public async ValueTask SendAsync(PublishFrame request, PendingAck? pending, CancellationToken cancellationToken)
    {
        if (_failure is { } failure)
        {
            throw new SessionBrokenException(failure);
        }

        // Nothing else in flight: a synchronous publisher, which gains from sending on this thread.
        // Otherwise a pipelining one, whose requests are better left to one writer that batches them.
        bool lone;
        lock (_pendingLock)
        {
            lone = _pending.Count == 0;
            if (pending is not null && !_pending.TryAdd(pending.CorrelationId, pending))
            {
                throw new ArgumentException($"a message with correlation id '{pending.CorrelationId}' is already waiting for its ack", nameof(request));
            }
        }

        try
        {
            await _call.WriteAsync(request, inline: lone, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // When the stream's failure took the message first, that failure owns it (it resends or completes it):
            // telling the caller to send it again would put it in flight twice.
            if (pending is null || Forget(pending.CorrelationId))
            {
                throw new SessionBrokenException(_failure ?? ex);
            }
        }
        catch (OperationCanceledException)
        {
            if (pending is not null)
            {
                Forget(pending.CorrelationId);
            }

            throw;
        }

        // The stream may have broken between the check and the write; then nobody would complete pending.
        if (_failure is not null && pending is not null && Forget(pending.CorrelationId))
        {
            throw new SessionBrokenException(_failure);
        }
    }

    /// <summary>Stops waiting for <paramref name="correlationId"/> (its caller gave up).</summary>
    public bool Forget(string correlationId) => TryTake(correlationId, out _);

    /// <summary>Half-closes the stream, lets in-flight acks arrive for up to <paramref name="drainTimeout"/>, then closes it.</summary>
    public async ValueTask CloseAsync(TimeSpan drainTimeout)
    {
        if (_failure is null && PendingCount > 0)
        {
            try
            {
                await _call.CompleteRequestsAsync().WaitAsync(drainTimeout).ConfigureAwait(false);
                await _reader.WaitAsync(drainTimeout).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is TimeoutException or GrpcException or OperationCanceledException or IOException)
            {
                // Whatever is still pending fails below with "client closed".
            }
        }

        await DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        Fail(new ObjectDisposedException(nameof(SluiceClient), "the client was closed before the ack arrived"));
        await _stop.CancelAsync().ConfigureAwait(false);
        await _call.DisposeAsync().ConfigureAwait(false);
        await Task.WhenAll(_reader, _timeouts).ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task ReadAcksAsync()
    {
        Exception? failure = null;
        try
        {
            while (await _call.MoveNextAsync().ConfigureAwait(false))
            {
                Dispatch(_call.Current);
            }

            failure = new BrokerUnavailableException($"the publish stream to {_address} was closed by the server");
        }
        catch (Exception ex)
        {
            failure = ex switch
            {
                // A status a publish maps to a typed error (e.g. FAILED_PRECONDITION: readonly) keeps it;
                // any other end of the stream means the connection is gone.
                GrpcException g when g.StatusCode is GrpcStatusCode.FailedPrecondition or GrpcStatusCode.NotFound or GrpcStatusCode.DeadlineExceeded => SluiceErrors.FromStatus(g, RpcKind.PublishSend),
                GrpcException g => new BrokerUnavailableException($"the publish stream to {_address} broke: {g.Detail}", g),
                HttpRequestException or IOException => new BrokerUnavailableException($"the publish stream to {_address} broke: {ex.Message}", ex),
                _ => ex,
            };
            if (ex is not OperationCanceledException)
            {
                _logger.LogDebug(ex, "Publish stream to {Address} broke", _address);
            }
        }
        finally
        {
            Fail(failure ?? new BrokerUnavailableException($"the publish stream to {_address} ended"));
        }
    }

    private bool TryTake(string correlationId, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out PendingAck? pending)
    {
        lock (_pendingLock)
        {
            return _pending.Remove(correlationId, out pending);
        }
    }

    private void Dispatch(WirePublishResponse response)
    {
        Volatile.Write(ref _lastAnswerAt, PendingAck.Now);
        if (!_answered)
        {
            _answered = true;
        }
        if (!response.IsSimple)
        {
            Dispatch(response.ToResponse());
            return;
        }

        // The common case: find the waiting message without building the ack or its strings.
        var id = response.CorrelationId;
        PendingAck? pending;
        if (id.Length <= 256)
        {
            Span<char> chars = stackalloc char[id.Length];
            var count = Encoding.UTF8.GetChars(id, chars);
            if (count == 0)
            {
                return; // an ack of AckPolicy NONE
            }

            lock (_pendingLock)
            {
                if (!_pendingByChars.Remove(chars[..count], out _, out pending))
                {
                    return; // timed out or cancelled already
                }
            }
        }
        else if (!TryTake(Encoding.UTF8.GetString(id), out pending))
        {
            return;
        }

        pending.Complete(response.HasAck ? new SluiceAck(response) : null, null);
    }

    private void Dispatch(PublishResponse response)
    {
        var error = response.AsyncError;
        var correlationId = error is not null || string.IsNullOrEmpty(response.Ack?.CorrelationId)
            ? response.CorrelationId
            : response.Ack!.CorrelationId;
        if (string.IsNullOrEmpty(correlationId) || !TryTake(correlationId, out var pending))
        {
            return; // timed out or cancelled already, or an ack of AckPolicy NONE
        }

        if (error is not null && error.Code == PublishAsyncError.Types.Code.Internal && PublishErrors.AllowsResend(error.Message)
            && pending.Resendable is not null && _resend is not null)
        {
            // Appended by a leader that lost its leadership before the ISR had it (the next leader may or may not
            // have it, and the message id makes a resend to it safe), or refused before any append by a fenced or
            // stopping leader: sent again to whoever leads once the metadata says so.
            _resend([pending], new BrokerUnavailableException(error.Message));
        }
        else if (error is not null)
        {
            pending.Complete(null, SluiceErrors.FromAsyncError(error));
        }
        else
        {
            pending.Complete(response.Ack is null ? null : new SluiceAck(response.Ack), null);
        }
    }

    private async Task ScanTimeoutsAsync(TimeSpan ackWaitTime)
    {
        // A quarter of the wait bounds how late a timeout fires; 5 ms keeps tiny waits from spinning.
        var period = TimeSpan.FromTicks(Math.Clamp(ackWaitTime.Ticks / 4, TimeSpan.FromMilliseconds(5).Ticks, TimeSpan.FromMilliseconds(250).Ticks));
        using var timer = new PeriodicTimer(period);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                List<PendingAck>? late = null;
                var now = PendingAck.Now;
                lock (_pendingLock)
                {
                    foreach (var (correlationId, pending) in _pending)
                    {
                        if (pending.Deadline <= now)
                        {
                            _pending.Remove(correlationId); // allowed while enumerating a Dictionary
                            (late ??= []).Add(pending);
                        }
                    }
                }

                ReportSilence(now);

                // Completed outside the lock: a callback may publish again.
                if (late is not null)
                {
                    foreach (var pending in late)
                    {
                        pending.Complete(null, new AckTimeoutException(SluiceErrors.AckTimeout));
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The session closed.
        }
    }

    /// <summary>
    /// When messages have waited longer than <see cref="SilenceCheck"/> and the broker has answered nothing for as
    /// long, tells the owner which partitions they are for (at most once per <see cref="SilenceCheck"/>).
    /// </summary>
    private void ReportSilence(long now)
    {
        var check = (long)SilenceCheck.TotalMilliseconds;
        if (_silent is null || _failure is not null || now - Volatile.Read(ref _lastAnswerAt) < check || now - _lastSilenceReport < check)
        {
            return;
        }

        List<(string Stream, int Partition)>? partitions = null;
        lock (_pendingLock)
        {
            foreach (var pending in _pending.Values)
            {
                if (pending.Resendable is { } frame && now - (pending.Deadline - _ackWaitMs) >= check)
                {
                    partitions ??= [];
                    if (!partitions.Contains((frame.Stream, frame.Partition)))
                    {
                        partitions.Add((frame.Stream, frame.Partition));
                    }
                }
            }
        }

        if (partitions is not null)
        {
            _lastSilenceReport = now;
            _silent(this, partitions);
        }
    }

    private void Fail(Exception failure)
    {
        _failure ??= failure;
        PendingAck[] waiting;
        lock (_pendingLock)
        {
            waiting = [.. _pending.Values];
            _pending.Clear();
        }

        List<PendingAck>? resendable = null;
        foreach (var pending in waiting)
        {
            // Only a broker gone away: the message may or may not be stored, and its id makes a resend safe.
            if (failure is BrokerUnavailableException && pending.Resendable is not null && _resend is not null)
            {
                (resendable ??= []).Add(pending);
            }
            else
            {
                pending.Complete(null, failure);
            }
        }

        if (resendable is not null)
        {
            resendable.Sort(static (a, b) => a.Sequence.CompareTo(b.Sequence));
            _resend!(resendable, failure);
        }
    }
}

/// <summary>The session's stream was already broken: the message was not sent and can be sent on a new session.</summary>
internal sealed class SessionBrokenException(Exception cause)
    : Exception("the publish stream is broken", cause);
