using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace Sluice.Protocol.Grpc;

/// <summary>
/// Serializes writers of one stream without a pump task. Callers queue messages. Whoever finds the
/// writer role free takes it and writes every queued message on its own thread, including those
/// that others queued meanwhile; the others only queue. Each thread hop costs a context switch,
/// which on a 2-core machine is most of the price of a small message, and one writer still batches
/// a burst into one flush. The server's response writer and the client's duplex request writer
/// both build on this; each decides in its pass how to write and when to flush.
/// </summary>
/// <typeparam name="T">The queued message type.</typeparam>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The SemaphoreSlim's wait handle is never created, so it holds nothing to dispose.")]
public abstract class SingleWriter<T>
{
    private readonly SemaphoreSlim _role = new(1, 1);

    /// <summary>Messages waiting for the writer.</summary>
    protected ConcurrentQueue<T> Queue { get; } = new();

    /// <summary>Work that arrived after a pass looked: queued messages (and whatever else a derived writer counts).</summary>
    protected virtual bool HasWork => !Queue.IsEmpty;

    /// <summary>Takes the writer role if it is free.</summary>
    protected bool TryEnter() => _role.Wait(0, CancellationToken.None);

    /// <summary>Waits for the writer role.</summary>
    protected Task EnterAsync(CancellationToken cancellationToken) => _role.WaitAsync(cancellationToken);

    /// <summary>One pass, holding the role: write what is queued and flush as the writer's policy says.</summary>
    protected abstract ValueTask WritePassAsync();

    /// <summary>A pass failed: record the failure for later writers and return the exception to throw.</summary>
    protected abstract Exception OnFailed(Exception exception);

    /// <summary>
    /// Runs holding the role and releases it, unless <paramref name="keepRole"/> (the stream is about to
    /// end). After releasing it takes the role back for work that came in the meantime from a caller that
    /// found it taken, which would otherwise wait for the next writer. On failure the role is released
    /// too, so writers waiting for it get the failure instead of waiting forever.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))] // awaited once per message: the box is reused
    protected async ValueTask DrainAsync(bool keepRole = false)
    {
        try
        {
            while (true)
            {
                await WritePassAsync().ConfigureAwait(false);
                if (keepRole)
                {
                    return;
                }

                _role.Release();
                if (!HasWork || !_role.Wait(0, CancellationToken.None))
                {
                    return;
                }
            }
        }
        catch (Exception ex)
        {
            var failure = OnFailed(ex);
            _role.Release();
            if (ReferenceEquals(failure, ex))
            {
                throw;
            }

            throw failure;
        }
    }

    /// <summary>Waits for a drain that the caller does not await; its failure was recorded by <see cref="OnFailed"/>.</summary>
    protected static async Task ObserveAsync(ValueTask drain)
    {
        try
        {
            await drain.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Kept by OnFailed; the next write (or completion) reports it.
        }
    }
}
