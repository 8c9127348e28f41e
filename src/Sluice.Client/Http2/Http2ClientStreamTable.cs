using Sluice.Protocol.Http2;

namespace Sluice.Client.Http2;

/// <summary>
/// A client connection's streams: the slots reserved for requests about to be sent (bounded by the server's
/// SETTINGS_MAX_CONCURRENT_STREAMS), the ids handed out, and the streams open now. Not thread-safe: every member
/// is used under the connection's lock (<see cref="Http2Connection.Sync"/>).
/// </summary>
internal sealed class Http2ClientStreamTable
{
    private readonly Dictionary<int, Http2Stream> _streams = [];
    private int _reserved;
    private int _nextStreamId = 1;
    private long _peerMaxConcurrentStreams = uint.MaxValue;

    /// <summary>Streams open now.</summary>
    public int Count => _streams.Count;

    /// <summary>The open streams, for iteration under the lock (no copy).</summary>
    public Dictionary<int, Http2Stream>.ValueCollection Open => _streams.Values;

    /// <summary>False while the server's SETTINGS_MAX_CONCURRENT_STREAMS is 0.</summary>
    public bool AllowsStreams => _peerMaxConcurrentStreams > 0;

    /// <summary>The server's SETTINGS_MAX_CONCURRENT_STREAMS.</summary>
    public void SetPeerMaxConcurrentStreams(uint value) => _peerMaxConcurrentStreams = value;

    /// <summary>Reserves a slot for one more stream; false when the server's limit is reached or the ids run out.</summary>
    public bool TryReserve()
    {
        if (_reserved >= _peerMaxConcurrentStreams || _nextStreamId > int.MaxValue - (2 * _reserved) - 2)
        {
            return false;
        }

        _reserved++;
        return true;
    }

    /// <summary>Gives back a slot (a reservation that did not become a stream, or a stream that closed).</summary>
    public void Release() => _reserved--;

    /// <summary>Gives a reserved stream its id and opens it.</summary>
    public void Add(Http2Stream stream, int sendWindow)
    {
        stream.Id = _nextStreamId;
        stream.SendWindow = sendWindow;
        _nextStreamId += 2;
        _streams.Add(stream.Id, stream);
    }

    /// <summary>Forgets a stream and frees its slot; false when it was not open (never sent, or already gone).</summary>
    public bool Close(Http2Stream stream)
    {
        if (stream.Id == 0 || !_streams.Remove(stream.Id))
        {
            return false;
        }

        _reserved--;
        return true;
    }

    public bool TryGet(int streamId, out Http2Stream stream) => _streams.TryGetValue(streamId, out stream!);

    /// <summary>The open stream, or null for one this client already closed; a stream never opened is a connection error.</summary>
    public Http2Stream? Find(int streamId)
    {
        if (_streams.TryGetValue(streamId, out var stream))
        {
            return stream;
        }

        if (streamId >= _nextStreamId || (streamId & 1) == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"a frame for stream {streamId}, which this client never opened");
        }

        return null; // a stream this client already closed or reset: late frames are dropped
    }

    /// <summary>A copy of the open streams.</summary>
    public Http2Stream[] Snapshot() => [.. _streams.Values];
}
