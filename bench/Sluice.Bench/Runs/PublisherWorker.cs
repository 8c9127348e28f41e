using System.Diagnostics;
using Sluice.Bench.Histograms;
using Sluice.Bench.Targets;

namespace Sluice.Bench.Runs;

/// <summary>
/// Drives one publisher over its share of the workload, synchronously (one publish, wait for its
/// ack, next) or with a sliding window of publishes in flight, and records each ack's latency
/// from the moment the publish was issued.
/// </summary>
internal sealed class PublisherWorker : IAckSink
{
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource _allAcked = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SemaphoreSlim? _window;
    private long _outstanding;
    private long _errors;

    public LatencyHistogram Histogram { get; } = new();

    public long Errors => Interlocked.Read(ref _errors);

    public Exception? FirstError { get; private set; }

    /// <summary>Stopwatch ticks to whole microseconds, rounded.</summary>
    public static long ElapsedMicroseconds(long startTimestamp) =>
        ((Stopwatch.GetTimestamp() - startTimestamp) * 1_000_000 + (Stopwatch.Frequency / 2)) / Stopwatch.Frequency;

    public async Task RunSyncAsync(IBenchPublisher publisher, Workload workload, long from, long to, bool acks, CancellationToken cancellationToken)
    {
        for (var i = from; i < to; i++)
        {
            var start = Stopwatch.GetTimestamp();
            try
            {
                await publisher.PublishAndWaitAsync(workload[i], cancellationToken).ConfigureAwait(false);
                if (acks)
                {
                    Histogram.Record(ElapsedMicroseconds(start));
                }
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                RecordError(ex);
            }
        }

        if (!acks)
        {
            await publisher.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task RunWindowedAsync(IBenchPublisher publisher, Workload workload, long from, long to, int window, bool acks, CancellationToken cancellationToken)
    {
        if (!acks)
        {
            for (var i = from; i < to; i++)
            {
                try
                {
                    await publisher.PublishAsync(workload[i], this, 0, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    RecordError(ex);
                }
            }

            await publisher.FlushAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        using var slots = new SemaphoreSlim(window, window);
        _window = slots;
        _outstanding = 1; // the loop's own reference, dropped after the last publish
        for (var i = from; i < to; i++)
        {
            await slots.WaitAsync(cancellationToken).ConfigureAwait(false);
            Interlocked.Increment(ref _outstanding);
            try
            {
                await publisher.PublishAsync(workload[i], this, Stopwatch.GetTimestamp(), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                RecordError(ex);
                Settle();
            }
        }

        if (Interlocked.Decrement(ref _outstanding) == 0)
        {
            _allAcked.TrySetResult();
        }

        await _allAcked.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public void OnAck(long state, Exception? error)
    {
        if (error is null)
        {
            var latency = ElapsedMicroseconds(state);
            lock (_lock)
            {
                Histogram.Record(latency);
            }
        }
        else
        {
            RecordError(error);
        }

        Settle();
    }

    private void Settle()
    {
        _window?.Release();
        if (Interlocked.Decrement(ref _outstanding) == 0)
        {
            _allAcked.TrySetResult();
        }
    }

    private void RecordError(Exception error)
    {
        if (Interlocked.Increment(ref _errors) == 1)
        {
            FirstError = error;
        }
    }
}
