using Sluice.Protocol.Http2;

namespace Sluice.Server.Http2;

/// <summary>
/// A connection's open streams: which ids the client opened, which are open now, which this server reset
/// (so late frames on them are ignored), and since when none has been open. Not thread-safe: every member
/// is used under the connection's state lock (<see cref="Http2ServerConnection.Sync"/>).
/// </summary>
internal sealed class Http2ServerStreamTable
{
    private const int MaxRememberedResets = 1024;

    private readonly Dictionary<int, Http2ServerStream> _streams = [];
    private readonly HashSet<int> _resetIds = []; // streams this server reset or refused
    private readonly Queue<int> _resetOrder = new();
    private long _idleSinceTicks; // when the last open stream ended (0 while one is open)

    /// <summary>The highest stream id the client opened (or tried to).</summary>
    public int LastStreamId { get; private set; }

    /// <summary>Streams open now.</summary>
    public int Count => _streams.Count;

    /// <summary>The open streams, for iteration under the lock (no copy).</summary>
    public Dictionary<int, Http2ServerStream>.ValueCollection Open => _streams.Values;

    /// <summary>When the last open stream ended, or 0 while one is open.</summary>
    public long IdleSinceTicks => _idleSinceTicks;

    /// <summary>The connection is ready: it counts as idle from now until its first stream.</summary>
    public void StartIdle(long now) => _idleSinceTicks = now;

    public bool TryGet(int streamId, out Http2ServerStream stream) => _streams.TryGetValue(streamId, out stream!);

    /// <summary>The open stream, or null for one already closed; a stream never opened is a connection error.</summary>
    public Http2ServerStream? Find(int streamId, string frame)
    {
        if (_streams.TryGetValue(streamId, out var stream))
        {
            return stream;
        }

        if (streamId > LastStreamId)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"{frame} for stream {streamId}, which the client never opened");
        }

        return null; // closed or reset: frames in flight are dropped
    }

    /// <summary>
    /// Notes that the client opens <paramref name="streamId"/> (a new HEADERS); throws when a client may not open it
    /// now (an even id, or one not above the last).
    /// </summary>
    public void OnOpening(int streamId)
    {
        if ((streamId & 1) == 0 || streamId <= LastStreamId)
        {
            throw new Http2ConnectionException(
                (streamId & 1) == 0 ? Http2ErrorCode.ProtocolError : Http2ErrorCode.StreamClosed,
                $"HEADERS for stream {streamId}, which a client may not open now (last opened: {LastStreamId})");
        }

        LastStreamId = streamId;
    }

    public void Add(Http2ServerStream stream)
    {
        _streams.Add(stream.Id, stream);
        _idleSinceTicks = 0;
    }

    /// <summary>Forgets a stream; true when it was open. The last one to go starts the idle clock.</summary>
    public bool Remove(int streamId)
    {
        var removed = _streams.Remove(streamId);
        if (_streams.Count == 0 && _idleSinceTicks == 0)
        {
            _idleSinceTicks = Environment.TickCount64;
        }

        return removed;
    }

    /// <summary>Takes every open stream out (the connection is closing).</summary>
    public List<Http2ServerStream> TakeAll()
    {
        List<Http2ServerStream> streams = [.. _streams.Values];
        _streams.Clear();
        return streams;
    }

    /// <summary>A copy of the open streams.</summary>
    public List<Http2ServerStream> Snapshot() => [.. _streams.Values];

    /// <summary>
    /// Notes a stream this server reset or refused: frames the client sent before it saw the reset
    /// (trailers among them) are then ignored, as RFC 9113 section 5.1 asks, instead of failing the connection.
    /// </summary>
    public void RememberReset(int streamId)
    {
        if (_resetIds.Add(streamId))
        {
            _resetOrder.Enqueue(streamId);
            if (_resetOrder.Count > MaxRememberedResets)
            {
                _resetIds.Remove(_resetOrder.Dequeue());
            }
        }
    }

    /// <summary>This server reset or refused the stream (among the last <see cref="MaxRememberedResets"/>).</summary>
    public bool WasReset(int streamId) => _resetIds.Contains(streamId);
}
