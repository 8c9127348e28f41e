namespace Sluice.Server.Monitoring;

/// <summary>
/// A partition's traffic since this process opened it: the hot paths add once per batch, and the metrics read the
/// totals when scraped (observable counters), so a publish pays two atomic adds per batch and no tag lookups.
/// </summary>
internal sealed class PartitionTraffic
{
    private long _messagesIn;
    private long _bytesIn;
    private long _messagesOut;
    private long _bytesOut;
    private long _lastActive;

    public long MessagesIn => Interlocked.Read(ref _messagesIn);

    public long BytesIn => Interlocked.Read(ref _bytesIn);

    public long MessagesOut => Interlocked.Read(ref _messagesOut);

    public long BytesOut => Interlocked.Read(ref _bytesOut);

    /// <summary><see cref="Environment.TickCount64"/> of the last batch in or out; 0 = none since the process started.</summary>
    public long LastActive => Interlocked.Read(ref _lastActive);

    public void AddIn(long messages, long bytes)
    {
        if (messages == 0)
        {
            return;
        }

        Interlocked.Add(ref _messagesIn, messages);
        Interlocked.Add(ref _bytesIn, bytes);
        Volatile.Write(ref _lastActive, Environment.TickCount64);
    }

    public void AddOut(long messages, long bytes)
    {
        if (messages == 0)
        {
            return;
        }

        Interlocked.Add(ref _messagesOut, messages);
        Interlocked.Add(ref _bytesOut, bytes);
        Volatile.Write(ref _lastActive, Environment.TickCount64);
    }
}
