using System.Runtime.CompilerServices;
using Sluice.Client.Grpc;
using Sluice.Client.Internal;
using Sluice.Protocol.Grpc;

namespace Sluice.Client;

/// <summary>
/// An active subscription to a stream partition. Enumerate it (once) with <c>await foreach</c> or
/// <see cref="ReadAllAsync"/>; dispose it to end it. When its broker goes away (UNAVAILABLE, or
/// INTERNAL as servers answer when shutting down) it
/// re-establishes itself, on the current leader, from the offset after the last message it
/// delivered, so nothing delivered is repeated and nothing is skipped; it gives up after
/// <see cref="SluiceClientOptions.ResubscribeWaitTime"/>.
/// </summary>
/// <remarks>
/// The enumeration ends normally at the stop position. It fails with
/// <see cref="StreamDeletedException"/>, <see cref="PartitionPausedException"/>,
/// <see cref="ReadonlyPartitionException"/> (a readonly partition read to its end, without a stop
/// position) or the last connection error.
/// </remarks>
public sealed class SluiceSubscription : IAsyncEnumerable<SluiceMessage>, IAsyncDisposable
{
    private readonly SluiceClient _client;
    private readonly SubscribeOptions _options;
    private readonly CancellationTokenSource _cts;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private GrpcStreamingCall<SluiceMessage>? _call;
    private SluiceMessage? _pendingFirst;
    private long _lastOffset = -1;
    private int _reading;
    private int _disposed;
    private Task? _handlerLoop;

    internal SluiceSubscription(SluiceClient client, string stream, SubscribeOptions options)
    {
        _client = client;
        Stream = stream;
        _options = options;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(client.ClosingToken);
    }

    /// <summary>The stream read.</summary>
    public string Stream { get; }

    /// <summary>The partition read.</summary>
    public int Partition => _options.Partition;

    /// <summary>The options the subscription was made with.</summary>
    public SubscribeOptions Options => _options;

    /// <summary>The offset of the last message delivered, -1 before the first.</summary>
    public long LastOffset => Volatile.Read(ref _lastOffset);

    /// <summary>Times the subscription re-established itself after losing its broker.</summary>
    public int ResubscribeCount { get; private set; }

    /// <summary>
    /// Completes when the subscription ends: successfully at the stop position or on disposal,
    /// faulted with the terminal error (including an exception thrown by a message handler).
    /// </summary>
    public Task Completion => _completion.Task;

    /// <summary>
    /// The messages, in offset order. Only one enumeration at a time; cancelling
    /// <paramref name="cancellationToken"/> ends the subscription.
    /// </summary>
    /// <param name="cancellationToken">Ends the enumeration and the subscription.</param>
    public async IAsyncEnumerable<SluiceMessage> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _reading, 1) != 0)
        {
            throw new InvalidOperationException("A subscription can be enumerated only once.");
        }

        using var registration = cancellationToken.Register(static s => ((SluiceSubscription)s!).Cancel(), this);
        while (true)
        {
            SluiceMessage? next;
            try
            {
                next = await NextAsync().ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                _completion.TrySetCanceled(cancellationToken);
                throw;
            }
            catch (Exception ex)
            {
                if (ex is OperationCanceledException && _cts.IsCancellationRequested)
                {
                    _completion.TrySetResult(); // disposed or the client closed
                    yield break;
                }

                _completion.TrySetException(ex);
                throw;
            }

            if (next is null)
            {
                _completion.TrySetResult();
                yield break;
            }

            Volatile.Write(ref _lastOffset, next.Offset);
            yield return next;
        }
    }

    /// <inheritdoc/>
    public IAsyncEnumerator<SluiceMessage> GetAsyncEnumerator(CancellationToken cancellationToken = default) =>
        ReadAllAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);

    /// <summary>Ends the subscription (the server sees the call cancelled).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Cancel();
        if (_handlerLoop is { } loop)
        {
            await loop.ConfigureAwait(false);
        }

        if (_call is { } call)
        {
            await call.DisposeAsync().ConfigureAwait(false);
        }

        _completion.TrySetResult();
        _cts.Dispose();
    }

    internal async Task StartAsync(CancellationToken cancellationToken)
    {
        using var registration = cancellationToken.Register(static s => ((SluiceSubscription)s!).Cancel(), this);
        try
        {
            (_call, _pendingFirst) = await _client.OpenSubscriptionAsync(Stream, _options, _cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
    }

    internal void RunHandler(Func<SluiceMessage, CancellationToken, ValueTask> handler, CancellationToken cancellationToken)
    {
        _handlerLoop = Task.Run(
            async () =>
            {
                try
                {
                    await foreach (var message in ReadAllAsync(cancellationToken).ConfigureAwait(false))
                    {
                        try
                        {
                            await handler(message, _cts.Token).ConfigureAwait(false);
                        }
                        catch (Exception ex) when (ex is not OperationCanceledException || !_cts.IsCancellationRequested)
                        {
                            _client.Logger.LogHandlerFailed(ex, Stream, Partition);
                            _completion.TrySetException(ex);
                            Cancel();
                            return;
                        }
                    }
                }
                catch (Exception)
                {
                    // ReadAllAsync already put the error (or the cancellation) on Completion.
                }
            },
            CancellationToken.None);
    }

    /// <summary>The next message, or null at the end of the subscription.</summary>
    private ValueTask<SluiceMessage?> NextAsync()
    {
        if (_pendingFirst is not null || _call is not { } call)
        {
            return NextSlowAsync(move: null);
        }

        // A message the call has already read ahead: no async state machine for it.
        var move = call.MoveNextAsync();
        if (!move.IsCompletedSuccessfully)
        {
            return NextSlowAsync(move);
        }

        return move.Result ? new ValueTask<SluiceMessage?>(call.Current) : NextSlowAsync(new ValueTask<bool>(false));
    }

    /// <param name="move">The current call's MoveNextAsync, already started, or null to start one.</param>
    private async ValueTask<SluiceMessage?> NextSlowAsync(ValueTask<bool>? move)
    {
        while (true)
        {
            if (_pendingFirst is { } first)
            {
                _pendingFirst = null;
                return first;
            }

            if (_call is not { } call)
            {
                return null;
            }

            try
            {
                var started = move;
                move = null; // used once, even when it fails: after a resubscribe the new call is read
                var moved = started is { } pending ? await pending.ConfigureAwait(false) : await call.MoveNextAsync().ConfigureAwait(false);
                if (moved)
                {
                    return call.Current;
                }

                return null; // the server ended the stream with OK
            }
            catch (GrpcException ex) when (ex.StatusCode is GrpcStatusCode.Unavailable or GrpcStatusCode.Internal && !_cts.IsCancellationRequested)
            {
                // UNAVAILABLE: the connection broke. INTERNAL: Liftbridge and Sluice end subscriptions
                // with it when the server shuts down gracefully (go-liftbridge only retries UNAVAILABLE,
                // so it gives up on a clean restart; a persistent INTERNAL still fails after the wait time).
                await ResubscribeAsync(ex).ConfigureAwait(false);
            }
            catch (GrpcException ex) when (ex.StatusCode == GrpcStatusCode.ResourceExhausted && _options.StopPosition != StopPosition.OnCancel)
            {
                return null; // the stop position was reached
            }
            catch (GrpcException ex) when (_options.Reverse && ex.StatusCode == GrpcStatusCode.Unknown && ex.Detail == "EOF")
            {
                return null; // Liftbridge ends a reverse subscription at offset 0 with Unknown "EOF"; Sluice with OK
            }
            catch (GrpcException ex)
            {
                throw SluiceErrors.FromStatus(ex, RpcKind.SubscribeStream);
            }
        }
    }

    /// <summary>Re-opens the subscription after the last delivered offset, until it works or the wait time is over (go-liftbridge's resubscribe).</summary>
    private async Task ResubscribeAsync(GrpcException cause)
    {
        var old = _call;
        _call = null;
        if (old is not null)
        {
            await old.DisposeAsync().ConfigureAwait(false);
        }

        var lastOffset = LastOffset;
        var options = lastOffset >= 0 ? _options.StartAtOffset(lastOffset + 1) : _options;
        var logger = _client.Logger;
        logger.LogResubscribing(Stream, Partition, cause.Detail, lastOffset + 1);

        var waitTime = _client.Options.ResubscribeWaitTime;
        var deadline = DateTime.UtcNow + waitTime;
        // go-liftbridge waits 1 s (+ jitter) between attempts; a short wait time shortens the pause.
        var pause = TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(1).Ticks, Math.Max(waitTime.Ticks / 10, TimeSpan.FromMilliseconds(10).Ticks)));
        Exception last = SluiceErrors.FromStatus(cause, RpcKind.SubscribeStream);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                (_call, _pendingFirst) = await _client.OpenSubscriptionAsync(Stream, options, _cts.Token).ConfigureAwait(false);
                ResubscribeCount++;
                logger.LogResubscribed(Stream, Partition, attempt);
                return;
            }
            catch (ConsumerFencedException)
            {
                throw; // the group moved on (a new epoch after a coordinator change): its member resubscribes itself
            }
            catch (SluiceException ex)
            {
                logger.LogResubscribeAttemptFailed(ex, Stream, Partition);
                last = ex;
            }

            if (DateTime.UtcNow >= deadline)
            {
                throw last;
            }

            var jitter = TimeSpan.FromTicks(Random.Shared.NextInt64(pause.Ticks / 2 + 1));
            await Task.Delay(pause + jitter, _cts.Token).ConfigureAwait(false);
        }
    }

    private void Cancel()
    {
        try
        {
            _cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Already disposed.
        }
    }
}
