namespace Sluice.Server.Http2;

/// <summary>
/// Unsent response bytes all of a listener's connections hold together (<see cref="Grpc.GrpcServerOptions.MaxBufferedOutputBytes"/>):
/// what their clients have not read yet, queued because socket writes never wait. Each connection's
/// <see cref="ServerSocketStream"/> adds what it queues and takes off what the kernel accepts; past the limit
/// the listener cuts the connection holding the most.
/// </summary>
internal sealed class Http2OutputBudget(long limit)
{
    private long _total;
    private int _cutting;

    public long Limit { get; } = limit;

    /// <summary>Bytes queued on all connections that are not cut yet.</summary>
    public long Total => Interlocked.Read(ref _total);

    /// <summary>Adds (or with a negative delta, takes off) queued bytes; true when the total is now over the limit.</summary>
    public bool Add(long delta) => Interlocked.Add(ref _total, delta) > Limit;

    /// <summary>One cut runs at a time: true for the caller that gets to run it.</summary>
    public bool TryBeginCut() => Interlocked.CompareExchange(ref _cutting, 1, 0) == 0;

    public void EndCut() => Volatile.Write(ref _cutting, 0);
}
