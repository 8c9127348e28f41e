namespace Sluice.Client.Http2;

/// <summary>Work that a connection's reader thread runs after the frames in hand (see <see cref="Http2ClientReader.TryDefer"/>).</summary>
internal interface IDeferredCompletion
{
    /// <summary>Runs the completion; must not throw.</summary>
    void Run();
}

/// <summary>
/// One background thread for the whole process that checks, every <see cref="Period"/>, whether a
/// deferred completion has held a connection's reader thread for longer than <see cref="StuckAfter"/>,
/// and if so has a new reader take over (<see cref="Http2ClientReader.TakeOverIfStuck"/>). It runs only
/// while native connections exist.
/// </summary>
internal static class ReaderWatchdog
{
    /// <summary>How long user code may hold a reader thread before another reader takes over.</summary>
    public static readonly TimeSpan StuckAfter = TimeSpan.FromMilliseconds(50);

    private static readonly TimeSpan Period = TimeSpan.FromMilliseconds(25);
    private static readonly Lock Sync = new();
    private static readonly List<Http2ClientReader> Readers = [];
    private static Thread? _thread;

    public static void Register(Http2ClientReader reader)
    {
        lock (Sync)
        {
            Readers.Add(reader);
            if (_thread is null)
            {
                _thread = new Thread(Run) { IsBackground = true, Name = "sluice h2 watchdog" };
                _thread.Start();
            }
        }
    }

    public static void Unregister(Http2ClientReader reader)
    {
        lock (Sync)
        {
            Readers.Remove(reader);
        }
    }

    private static void Run()
    {
        var snapshot = new List<Http2ClientReader>();
        while (true)
        {
            Thread.Sleep(Period);
            lock (Sync)
            {
                if (Readers.Count == 0)
                {
                    _thread = null; // the next Register starts a new one
                    return;
                }

                snapshot.Clear();
                snapshot.AddRange(Readers);
            }

            var now = Environment.TickCount64;
            foreach (var reader in snapshot)
            {
                reader.TakeOverIfStuck(now);
            }
        }
    }
}
