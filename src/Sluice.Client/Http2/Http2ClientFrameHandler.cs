using System.Buffers.Binary;
using Sluice.Protocol.Http2;

namespace Sluice.Client.Http2;

/// <summary>
/// What one <see cref="Http2Connection"/> does with each frame the server sends (reader thread only): hands response
/// headers and DATA to the streams, applies SETTINGS, WINDOW_UPDATE, RST_STREAM, PING and GOAWAY, resets a stream
/// on a stream error and turns connection errors into <see cref="Http2ConnectionException"/>s that end the connection.
/// </summary>
internal sealed class Http2ClientFrameHandler
{
    /// <summary>Our SETTINGS_MAX_HEADER_LIST_SIZE: 64 KiB, far above gRPC metadata, a bound on what a header block costs.</summary>
    public const int MaxHeaderListSize = 64 << 10;

    private readonly Http2Connection _connection;
    private readonly Http2ClientOutput _output;
    private readonly HpackDecoder _decoder = new(maxHeaderListSize: MaxHeaderListSize);
    private readonly List<KeyValuePair<string, string>> _headerFields = [];
    private readonly Http2HeaderBlock _headerBlock = new(MaxHeaderListSize * 2);

    public Http2ClientFrameHandler(Http2Connection connection, Http2ClientOutput output)
    {
        _connection = connection;
        _output = output;
    }

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
                OnGoAway(streamId, payload);
                break;
            case FrameType.WindowUpdate:
                OnWindowUpdate(streamId, payload);
                break;
            case FrameType.Priority:
                Http2Frame.ValidatePriority(streamId, payload);
                break;
            case FrameType.PushPromise:
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "PUSH_PROMISE although this client disabled push");
            default:
                break; // unknown frame types are ignored (RFC 9113 section 4.1)
        }
    }

    private void OnData(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (streamId == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "DATA on stream 0");
        }

        var flowLength = payload.Length;
        var data = Http2Frame.RemovePadding(flags, payload);
        if (_connection.FlowControl.OnDataReceived(flowLength) is var increment and > 0)
        {
            _connection.SendWindowUpdate(0, increment); // each stream's own window bounds what it buffers
        }

        if (FindStream(streamId) is { } stream)
        {
            try
            {
                stream.OnData(data, flowLength, (flags & Http2Frame.EndStream) != 0);
            }
            catch (Http2StreamException ex)
            {
                ResetForStreamError(stream, ex);
            }
        }
    }

    private void OnHeaderBlock(int streamId, bool endStream)
    {
        _headerFields.Clear();
        var fits = _decoder.Decode(_headerBlock.Block, _headerFields); // always: the decoder's table must follow the server's
        if (FindStream(streamId) is { } stream)
        {
            try
            {
                if (!fits)
                {
                    throw new Http2StreamException(Http2ErrorCode.ProtocolError, $"The server sent a header list larger than {_decoder.MaxHeaderListSize} bytes.");
                }

                stream.OnHeaders(_headerFields, endStream);
            }
            catch (Http2StreamException ex)
            {
                ResetForStreamError(stream, ex);
            }
        }
    }

    private void OnRstStream(int streamId, ReadOnlySpan<byte> payload)
    {
        var code = (uint)Http2Frame.ReadRstStream(streamId, payload);
        if (FindStream(streamId) is { } stream)
        {
            stream.Fail(new HttpProtocolException(code, $"The server reset the stream ({(Http2ErrorCode)code}).", null));
        }
    }

    private void OnSettings(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (Http2Frame.ReadSettingsIsAck(flags, streamId, payload))
        {
            return;
        }

        TaskCompletionSource? signal = null;
        lock (_connection.Sync)
        {
            for (var i = 0; i < payload.Length; i += 6)
            {
                var id = BinaryPrimitives.ReadUInt16BigEndian(payload[i..]);
                var value = BinaryPrimitives.ReadUInt32BigEndian(payload[(i + 2)..]);
                Http2Frame.ValidateSetting(id, value);
                switch (id)
                {
                    case Http2Frame.SettingsMaxConcurrentStreams:
                        _connection.Streams.SetPeerMaxConcurrentStreams(value);
                        break;
                    case Http2Frame.SettingsInitialWindowSize:
                        _connection.FlowControl.OnInitialWindowSize(value, _connection.Streams.Open);
                        break;
                    case Http2Frame.SettingsMaxFrameSize:
                        _output.PeerMaxFrameSize = (int)value;
                        break;
                    default:
                        break; // header table size (our encoder never indexes), push, header list size, unknown ids
                }
            }

            signal = _connection.Capacity.TakeLocked();
        }

        _output.QueueControl(static output => Http2Frame.Write(output, FrameType.Settings, Http2Frame.Ack, 0, []));
        signal?.TrySetResult();
        _connection.OnSettingsReceived();
    }

    private void OnPing(byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        var data = Http2Frame.ReadPing(streamId, payload);
        if ((flags & Http2Frame.Ack) != 0)
        {
            _connection.OnPingAck();
            return;
        }

        _output.QueueControl(output => Http2Frame.WritePing(output, data, ack: true));
    }

    private void OnGoAway(int streamId, ReadOnlySpan<byte> payload)
    {
        var (lastStreamId, code) = Http2Frame.ReadGoAway(streamId, payload);
        var debug = System.Text.Encoding.UTF8.GetString(payload[8..]);
        _connection.OnGoAway(lastStreamId, $"The server is closing the connection (GOAWAY {code}{(debug.Length > 0 ? ": " + debug : string.Empty)}).");
    }

    private void OnWindowUpdate(int streamId, ReadOnlySpan<byte> payload)
    {
        var increment = Http2Frame.ReadWindowIncrement(payload);
        TaskCompletionSource? signal;
        Http2Stream? broken = null;
        var brokenCode = Http2ErrorCode.FlowControlError;
        lock (_connection.Sync)
        {
            if (streamId == 0)
            {
                _connection.FlowControl.OnConnectionWindowUpdate(increment);
            }
            else if (_connection.Streams.TryGet(streamId, out var stream) && Http2ClientFlowControl.OnStreamWindowUpdate(stream, increment) is { } code)
            {
                broken = stream;
                brokenCode = code;
            }

            signal = _connection.Capacity.TakeLocked();
        }

        broken?.Reset(brokenCode, new IOException("The server sent an invalid WINDOW_UPDATE for the stream."));
        signal?.TrySetResult();
    }

    private static void ResetForStreamError(Http2Stream stream, Http2StreamException error) =>
        stream.Reset(error.Code, new IOException($"HTTP/2 stream error from the server ({error.Code}): {error.Message}", error));

    private Http2Stream? FindStream(int streamId)
    {
        lock (_connection.Sync)
        {
            return _connection.Streams.Find(streamId);
        }
    }
}
