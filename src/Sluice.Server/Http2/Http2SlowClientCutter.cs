using System.Net;
using Microsoft.Extensions.Logging;

namespace Sluice.Server.Http2;

/// <summary>
/// Keeps a listener's connections within their output budget (<see cref="Http2OutputBudget"/>): when all clients
/// together hold more unsent output than the limit, the connection holding the most is cut
/// (<see cref="Http2ServerConnection.CutSlowClient"/>), then the next, until the rest fit. Runs on the thread pool,
/// one pass at a time; it reads the listener's connection table under the listener's lock.
/// </summary>
internal sealed partial class Http2SlowClientCutter
{
    /// <summary>How long a connection cut for reading too slowly gets to read its last frames before its socket closes.</summary>
    internal const int DrainMilliseconds = 5000;

    private readonly Http2OutputBudget _budget;
    private readonly Lock _sync;
    private readonly Dictionary<Http2ServerConnection, IPAddress>.KeyCollection _connections;
    private readonly ILogger _logger;
    private readonly HashSet<Http2ServerConnection> _draining = []; // cut for reading too slowly, bytes not yet gone, under _sync
    private readonly Action _cutSlowest;
    private long _cut;

    /// <param name="budget">The listener's output budget.</param>
    /// <param name="sync">The listener's lock, which guards <paramref name="connections"/>.</param>
    /// <param name="connections">The listener's open connections (a live view).</param>
    /// <param name="logger">Where cuts are logged.</param>
    public Http2SlowClientCutter(Http2OutputBudget budget, Lock sync, Dictionary<Http2ServerConnection, IPAddress>.KeyCollection connections, ILogger logger)
    {
        _budget = budget;
        _sync = sync;
        _connections = connections;
        _logger = logger;
        _cutSlowest = CutSlowest;
    }

    /// <summary>Connections cut so far because the output budget ran out.</summary>
    public long Cut => Interlocked.Read(ref _cut);

    /// <summary>A connection's queued output took the budget over its limit: cut the slowest, off this (writing) thread.</summary>
    public void OnOverBudget()
    {
        if (_budget.TryBeginCut())
        {
            ThreadPool.UnsafeQueueUserWorkItem(static cut => cut(), _cutSlowest, preferLocal: false);
        }
    }

    /// <summary>
    /// Cuts the connections holding the most unsent output until what the others hold is within the budget. The
    /// bytes of a cut connection still count until they drain or are dropped, so connections that wait for the
    /// budget wait for that, rather than filling it again while the cut ones still hold their memory.
    /// </summary>
    private void CutSlowest()
    {
        while (true)
        {
            while (true)
            {
                Http2ServerConnection? slowest = null;
                long most = 0;
                long leaving = 0;
                lock (_sync)
                {
                    leaving = LeavingBytesLocked();
                    foreach (var connection in _connections)
                    {
                        var pending = connection.PendingOutputBytes;
                        if (!connection.IsBeingCut && pending > most)
                        {
                            most = pending;
                            slowest = connection;
                        }
                    }

                    if (slowest is null || _budget.Total - leaving <= _budget.Limit)
                    {
                        break;
                    }

                    _draining.Add(slowest);
                }

                var reason = $"subscriber too slow: the server held {most} unsent bytes for this connection, the most of any, when all clients together passed {_budget.Limit} (subscriptions.max.buffered.bytes)";
                Interlocked.Increment(ref _cut);
                LogSlowClientCut(_logger, slowest.Peer, most, _budget.Limit);
                slowest.CutSlowClient(reason, DrainMilliseconds);
            }

            _budget.EndCut();
            if (!OverBudgetBeyondCuts() || !_budget.TryBeginCut())
            {
                return;
            }
        }
    }

    /// <summary>Whether the connections not being cut hold more than the budget (a trigger may have come during a pass).</summary>
    private bool OverBudgetBeyondCuts()
    {
        lock (_sync)
        {
            return _budget.Total - LeavingBytesLocked() > _budget.Limit;
        }
    }

    /// <summary>What cut connections still hold (they leave the connection table at once, their bytes a little later).</summary>
    private long LeavingBytesLocked()
    {
        _draining.RemoveWhere(static c => c.PendingOutputBytes == 0);
        long leaving = 0;
        foreach (var connection in _draining)
        {
            leaving += connection.PendingOutputBytes;
        }

        return leaving;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cut the connection from {Peer}: it held {Bytes} unsent bytes, the most of any, when all clients together passed subscriptions.max.buffered.bytes ({Limit})")]
    private static partial void LogSlowClientCut(ILogger logger, string peer, long bytes, long limit);
}
