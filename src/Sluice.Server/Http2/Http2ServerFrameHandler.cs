using System.Buffers.Binary;
using Sluice.Protocol.Http2;

namespace Sluice.Server.Http2;

/// <summary>
/// What one <see cref="Http2ServerConnection"/> does with each frame its client sends (reader thread only): opens
/// streams from header blocks, hands request DATA to them (made visible to the handlers at the end of each read's
/// batch), applies SETTINGS, WINDOW_UPDATE, RST_STREAM, PING and GOAWAY, and turns protocol violations into
/// <see cref="Http2ConnectionException"/>s that end the connection.
/// </summary>
internal sealed class Http2ServerFrameHandler
{
    /// <summary>Our SETTINGS_MAX_HEADER_LIST_SIZE: 64 KiB, far above gRPC metadata, a bound on what a header block costs.</summary>
    internal const int MaxHeaderListSize = 64 << 10;

    private readonly Http2ServerConnection _connection;
    private readonly Http2Listener _listener;
    private readonly Http2ServerOutput _output;
    private readonly HpackDecoder _decoder = new(maxHeaderListSize: MaxHeaderListSize);
    private readonly List<KeyValuePair<string, string>> _headerFields = [];
    private readonly Http2HeaderBlock _headerBlock = new(MaxHeaderListSize * 2);
    private readonly List<Http2ServerStream> _unflushedBodies = [];
    private long _resetWindowStart = Environment.TickCount64;
    private int _resetsInWindow;

    public Http2ServerFrameHandler(Http2ServerConnection connection, Http2Listener listener, Http2ServerOutput output)
    {
        _connection = connection;
        _listener = listener;
        _output = output;
    }

    /// <summary>A quiet connection gives the header block's buffer back.</summary>
    public void ReleaseBuffers() => _headerBlock.ReleaseIfIdle();

    public void OnFrame(FrameType type, byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (_headerBlock.InProgress && type != FrameType.Continuation)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"a {type} frame arrived inside a header block");
        }

        switch (type)
        {
            case FrameType.Data:
                OnData(flags, streamId, payload);
                break;
            case FrameType.Headers:
                if (_headerBlock.OnHeaders(flags, streamId, payload))
                {
                    OnHeaderBlock(streamId, _headerBlock.EndStream);
                }

                break;
            case FrameType.Continuation:
                if (_headerBlock.OnContinuation(flags, streamId, payload))
                {
                    OnHeaderBlock(streamId, _headerBlock.EndStream);
                }

                break;
            case FrameType.RstStream:
                OnRstStream(streamId, payload);
                break;
            case FrameType.Settings:
                OnSettings(flags, streamId, payload);
                break;
            case FrameType.Ping:
                OnPing(flags, streamId, payload);
                break;
            case FrameType.GoAway:
                Http2Frame.ReadGoAway(streamId, payload); // checked; a client's last stream id and code change nothing here
                _connection.OnClientGoingAway();
                break;
            case FrameType.WindowUpdate:
                OnWindowUpdate(streamId, payload);
                break;
            case FrameType.Priority:
                Http2Frame.ValidatePriority(streamId, payload);
                break;
            case FrameType.PushPromise:
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "PUSH_PROMISE from a client");
            default:
                break; // unknown frame types are ignored (RFC 9113 section 4.1)
        }
    }

    /// <summary>Makes the batch's request bytes visible to their handlers (which may run here, inline).</summary>
    public void FlushRequestBodies()
    {
        for (var i = 0; i < _unflushedBodies.Count; i++)
        {
            var stream = _unflushedBodies[i];
            stream.FlushPending = false;
            stream.FlushRequestData();
        }

        _unflushedBodies.Clear();
    }

    private void OnData(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (streamId == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "DATA on stream 0");
        }

        var flowLength = payload.Length;
        var data = Http2Frame.RemovePadding(flags, payload);
        var endStream = (flags & Http2Frame.EndStream) != 0;
        int connectionIncrement;
        int streamIncrement;
        Http2ServerStream? stream;
        Http2ServerStream? halfClosed = null;
        lock (_connection.Sync)
        {
            var flow = _connection.FlowControl;
            flow.OnConnectionData(flowLength);
            stream = _connection.Streams.Find(streamId, "DATA");
            if (stream is { RequestEnded: true })
            {
                halfClosed = stream; // a stream error (RFC 9113 section 5.1), handled outside the lock
                stream = null;
            }

            connectionIncrement = flow.OnData(stream, streamId, flowLength, data.Length, endStream, out streamIncrement);
        }

        if (halfClosed is not null)
        {
            halfClosed.OnAborted(new IOException($"The client sent DATA on stream {streamId} after ending its request."));
            _connection.ResetStream(halfClosed, Http2ErrorCode.StreamClosed);
        }

        if (connectionIncrement > 0)
        {
            _output.WriteControl(output => Http2Frame.WriteWindowUpdate(output, 0, connectionIncrement));
        }

        if (streamIncrement > 0)
        {
            _output.WriteControl(output => Http2Frame.WriteWindowUpdate(output, streamId, streamIncrement));
        }

        if (stream is null)
        {
            return;
        }

        if (!data.IsEmpty)
        {
            stream.AppendRequestData(data);
        }

        if (endStream)
        {
            stream.EndRequest(); // may run the handler inline: no lock held
        }
        else if (!data.IsEmpty && !stream.FlushPending)
        {
            stream.FlushPending = true;
            _unflushedBodies.Add(stream);
        }
    }

    private void OnHeaderBlock(int streamId, bool endStream)
    {
        _headerFields.Clear();
        var fits = _decoder.Decode(_headerBlock.Block, _headerFields); // always: the decoder's table must follow the client's
        var tooLarge = false;

        Http2ServerStream? stream;
        string? refusal = null;
        var refusalCode = Http2ErrorCode.RefusedStream;
        lock (_connection.Sync)
        {
            var streams = _connection.Streams;
            if (streams.TryGet(streamId, out var existing))
            {
                // Request trailers: they must end the request.
                if (existing.RequestEnded || !endStream)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"a second header block on stream {streamId} that does not end its request");
                }

                existing.RequestEnded = true;
                stream = existing;
                if (!fits)
                {
                    refusal = $"request trailers larger than {_decoder.MaxHeaderListSize} bytes";
                    refusalCode = Http2ErrorCode.ProtocolError;
                }
            }
            else if (streams.WasReset(streamId))
            {
                return; // sent before the client saw our reset: ignored (its block was decoded above)
            }
            else
            {
                streams.OnOpening(streamId);
                stream = null;
                if (_connection.FailedLocked)
                {
                    return; // the connection is closing: frames still buffered start nothing
                }

                if (_connection.RefusesStreamLocked(streamId))
                {
                    refusal = "the server is shutting down";
                }
                else if (Math.Max(streams.Count, _connection.RunningCalls) >= _listener.MaxConcurrentStreams)
                {
                    // Calls still running after their stream was reset count too: resetting streams as fast as
                    // they open (the "rapid reset" attack) cannot start more handlers than the limit.
                    refusal = $"more than {_listener.MaxConcurrentStreams} concurrent streams";
                }
                else if (!fits)
                {
                    tooLarge = true; // answered below with a gRPC status the caller can read
                }
                else if (Http2ServerStream.ValidateRequestHeaders(_headerFields) is { } malformed)
                {
                    refusal = malformed;
                    refusalCode = Http2ErrorCode.ProtocolError;
                }
                else
                {
                    stream = new Http2ServerStream(_connection, streamId, _headerFields, _connection.FlowControl.PeerInitialWindow, Http2ServerFlowControl.StreamReceiveWindow, endStream);
                    streams.Add(stream);
                }

                if (stream is null)
                {
                    streams.RememberReset(streamId);
                }
            }
        }

        if (tooLarge)
        {
            var reason = $"request headers larger than {_decoder.MaxHeaderListSize} bytes";
            _connection.LogStreamRefused(streamId, reason);
            _output.WriteHeaderListTooLarge(streamId, endStream, reason);
            return;
        }

        if (refusal is not null)
        {
            _connection.LogStreamRefused(streamId, refusal);
            if (stream is not null)
            {
                stream.OnAborted(new IOException($"The client sent {refusal}."));
                _connection.ResetStream(stream, refusalCode);
            }
            else
            {
                _output.WriteControl(output => Http2Frame.WriteRstStream(output, streamId, refusalCode));
            }

            return;
        }

        if (stream!.Started)
        {
            stream.EndRequest();
        }
        else
        {
            stream.Started = true;
            _connection.StartCall(stream);
        }
    }

    private void OnRstStream(int streamId, ReadOnlySpan<byte> payload)
    {
        var code = Http2Frame.ReadRstStream(streamId, payload);
        Http2ServerStream? stream;
        lock (_connection.Sync)
        {
            stream = _connection.Streams.Find(streamId, "RST_STREAM");
        }

        if (stream is not null)
        {
            CountClientReset();
            stream.OnAborted(new IOException($"The client reset the stream ({code})."));
            _connection.CloseStream(stream);
        }
    }

    /// <summary>
    /// Counts a client reset of an open stream. Opening and resetting streams in a loop ("rapid reset") cannot run
    /// more handlers than the stream limit, since running calls count against it, but each one still starts and
    /// cancels a call: more than <see cref="Http2Listener.MaxResetsPerWindow"/> resets in
    /// <see cref="Http2Listener.ResetWindow"/> end the connection with ENHANCE_YOUR_CALM.
    /// </summary>
    private void CountClientReset()
    {
        var now = Environment.TickCount64;
        if (now - _resetWindowStart >= (long)Http2Listener.ResetWindow.TotalMilliseconds)
        {
            _resetWindowStart = now;
            _resetsInWindow = 0;
        }

        if (++_resetsInWindow > _listener.MaxResetsPerWindow)
        {
            throw new Http2ConnectionException(
                Http2ErrorCode.EnhanceYourCalm,
                $"the client reset more than {_listener.MaxResetsPerWindow} streams within {Http2Listener.ResetWindow.TotalSeconds:0} s");
        }
    }

    private void OnSettings(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (Http2Frame.ReadSettingsIsAck(flags, streamId, payload))
        {
            return;
        }

        TaskCompletionSource? signal;
        lock (_connection.Sync)
        {
            for (var i = 0; i < payload.Length; i += 6)
            {
                var id = BinaryPrimitives.ReadUInt16BigEndian(payload[i..]);
                var value = BinaryPrimitives.ReadUInt32BigEndian(payload[(i + 2)..]);
                Http2Frame.ValidateSetting(id, value);
                switch (id)
                {
                    case Http2Frame.SettingsInitialWindowSize:
                        _connection.FlowControl.OnInitialWindowSize(value, _connection.Streams.Open);
                        break;
                    case Http2Frame.SettingsMaxFrameSize:
                        _output.PeerMaxFrameSize = (int)value;
                        break;
                    default:
                        break; // header table size (our encoder never indexes), concurrent streams (we never push), header list size, unknown ids
                }
            }

            signal = _connection.Capacity.TakeLocked();
        }

        _output.WriteControl(static output => Http2Frame.Write(output, FrameType.Settings, Http2Frame.Ack, 0, []));
        signal?.TrySetResult();
    }

    private void OnPing(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        var data = Http2Frame.ReadPing(streamId, payload);
        if ((flags & Http2Frame.Ack) != 0)
        {
            _connection.OnPingAck();
            return;
        }

        _output.WriteControl(output => Http2Frame.WritePing(output, data, ack: true));
    }

    private void OnWindowUpdate(int streamId, ReadOnlySpan<byte> payload)
    {
        var increment = Http2Frame.ReadWindowIncrement(payload);
        TaskCompletionSource? signal;
        Http2ServerStream? broken = null;
        var brokenCode = Http2ErrorCode.FlowControlError;
        lock (_connection.Sync)
        {
            if (streamId == 0)
            {
                _connection.FlowControl.OnConnectionWindowUpdate(increment);
            }
            else if (_connection.Streams.Find(streamId, "WINDOW_UPDATE") is { } stream
                && Http2ServerFlowControl.OnStreamWindowUpdate(stream, increment) is { } code)
            {
                broken = stream;
                brokenCode = code;
            }

            signal = _connection.Capacity.TakeLocked();
        }

        if (broken is not null)
        {
            broken.OnAborted(new IOException($"The client sent an invalid WINDOW_UPDATE for the stream ({brokenCode})."));
            _connection.ResetStream(broken, brokenCode);
        }

        signal?.TrySetResult();
    }
}
