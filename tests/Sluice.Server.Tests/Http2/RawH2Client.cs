using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Sluice.Protocol.Http2;

namespace Sluice.Server.Tests.Http2;

/// <summary>One frame as the raw client received it from the server.</summary>
internal sealed record H2Frame(FrameType Type, byte Flags, int StreamId, byte[] Payload)
{
    public bool HasFlag(byte flag) => (Flags & flag) != 0;

    public bool IsAck => HasFlag(Http2Frame.Ack);

    public bool EndStream => HasFlag(Http2Frame.EndStream);

    /// <summary>The error code of an RST_STREAM or GOAWAY frame.</summary>
    public Http2ErrorCode ErrorCode => Type switch
    {
        FrameType.RstStream => (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(Payload),
        FrameType.GoAway => (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(Payload.AsSpan(4)),
        _ => throw new InvalidOperationException($"a {Type} frame has no error code"),
    };

    /// <summary>The last stream id of a GOAWAY frame.</summary>
    public int LastStreamId => BinaryPrimitives.ReadInt32BigEndian(Payload) & int.MaxValue;

    /// <summary>The increment of a WINDOW_UPDATE frame.</summary>
    public int WindowIncrement => BinaryPrimitives.ReadInt32BigEndian(Payload) & int.MaxValue;

    /// <summary>The (identifier, value) pairs of a SETTINGS frame.</summary>
    public Dictionary<ushort, uint> Settings()
    {
        var settings = new Dictionary<ushort, uint>();
        for (var i = 0; i + 6 <= Payload.Length; i += 6)
        {
            settings[BinaryPrimitives.ReadUInt16BigEndian(Payload.AsSpan(i))] = BinaryPrimitives.ReadUInt32BigEndian(Payload.AsSpan(i + 2));
        }

        return settings;
    }

    public override string ToString() => Type is FrameType.RstStream or FrameType.GoAway && Payload.Length >= 4
        ? $"{Type}({ErrorCode}) flags=0x{Flags:x2} stream={StreamId}"
        : $"{Type} flags=0x{Flags:x2} stream={StreamId} length={Payload.Length}";
}

/// <summary>A decoded header block from the server (HEADERS plus any CONTINUATION frames).</summary>
internal sealed record ReceivedHeaders(int StreamId, List<KeyValuePair<string, string>> Fields, bool EndStream, int FrameCount)
{
    public string? this[string name] => Fields.Where(f => f.Key == name).Select(f => f.Value).FirstOrDefault();
}

/// <summary>A whole response as the raw client read it: headers, body and trailers (null for trailers-only).</summary>
internal sealed record ReceivedResponse(ReceivedHeaders Headers, byte[] Body, ReceivedHeaders? Trailers, int DataFrames)
{
    /// <summary>A trailer, or for a trailers-only response a header.</summary>
    public string? Trailer(string name) => Trailers is null ? Headers[name] : Trailers[name];
}

/// <summary>
/// A scripted raw HTTP/2 client for testing the server: it connects to 127.0.0.1, sends exactly the bytes a
/// test asks for, and records every frame the server sends (read on a background loop), which a test takes
/// with a timeout so that it never hangs. Header blocks are decoded with <see cref="HpackDecoder"/>.
/// </summary>
internal sealed class RawH2Client : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    /// <summary>How long a test waits to conclude that a frame does not come.</summary>
    public static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Lock _sync = new();
    private readonly List<H2Frame> _unconsumed = [];
    private readonly List<H2Frame> _history = [];
    private readonly HpackDecoder _decoder = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _reader = Task.CompletedTask;

    private RawH2Client(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    /// <summary>Completes when the server closed the connection (end of stream or a reset).</summary>
    public Task Closed => _closed.Task;

    /// <summary>Every frame received so far, in order.</summary>
    public IReadOnlyList<H2Frame> History
    {
        get
        {
            lock (_sync)
            {
                return [.. _history];
            }
        }
    }

    /// <summary>
    /// Opens a TCP connection to 127.0.0.1:<paramref name="port"/> (from <paramref name="from"/>, another loopback
    /// address, when given) and starts reading frames; sends nothing.
    /// </summary>
    public static async Task<RawH2Client> ConnectAsync(int port, IPAddress? from = null, int? receiveBufferSize = null, bool read = true)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (receiveBufferSize is { } size)
            {
                socket.ReceiveBufferSize = size; // before connecting, so the window it advertises stays small
            }

            if (from is not null)
            {
                socket.Bind(new IPEndPoint(from, 0));
            }

            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port)).WaitAsync(Timeout);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var client = new RawH2Client(socket);
        if (read)
        {
            client.StartReading();
        }

        return client;
    }

    /// <summary>Starts reading frames (after a <see cref="ConnectAsync"/> with <c>read: false</c>: a client that did not read till now).</summary>
    public void StartReading() => _reader = Task.Run(ReadLoopAsync);

    /// <summary>Connects, sends the preface and SETTINGS, and waits until the server has acknowledged them.</summary>
    public static Task<RawH2Client> ConnectAndHandshakeAsync(int port, params (ushort Id, uint Value)[] settings) =>
        ConnectAndHandshakeAsync(port, null, settings);

    /// <summary>As <see cref="ConnectAndHandshakeAsync(int, ValueTuple{ushort, uint}[])"/>, from another loopback address.</summary>
    public static async Task<RawH2Client> ConnectAndHandshakeAsync(int port, IPAddress? from, params (ushort Id, uint Value)[] settings)
    {
        var client = await ConnectAsync(port, from);
        try
        {
            await client.HandshakeAsync(settings);
            return client;
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    /// <summary>Sends the preface and a SETTINGS frame, then waits for the server's SETTINGS and the ACK of ours (both taken).</summary>
    public async Task<H2Frame> HandshakeAsync(params (ushort Id, uint Value)[] settings)
    {
        var output = new ArrayBufferWriter<byte>();
        output.Write(Http2Frame.Preface);
        Http2Frame.WriteSettings(output, settings);
        await SendRawAsync(output.WrittenMemory.ToArray());
        var serverSettings = await WaitForFrameAsync(f => f.Type == FrameType.Settings && !f.IsAck, what: "the server's SETTINGS");
        await WaitForFrameAsync(f => f.Type == FrameType.Settings && f.IsAck, what: "the SETTINGS ACK");
        return serverSettings;
    }

    // ---------------------------------------------------------------- sending

    /// <summary>Sends bytes as they are (several frames, or a malformed one).</summary>
    public async Task SendRawAsync(ReadOnlyMemory<byte> bytes)
    {
        await _writeLock.WaitAsync(Timeout);
        try
        {
            await _stream.WriteAsync(bytes).AsTask().WaitAsync(Timeout);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Sends one frame with exactly these fields.</summary>
    public Task SendAsync(FrameType type, byte flags, int streamId, ReadOnlySpan<byte> payload) =>
        SendRawAsync(Frame(type, flags, streamId, payload));

    public Task SendSettingsAsync(params (ushort Id, uint Value)[] settings)
    {
        var output = new ArrayBufferWriter<byte>();
        Http2Frame.WriteSettings(output, settings);
        return SendRawAsync(output.WrittenMemory);
    }

    /// <summary>Sends a header block (built with <see cref="Block(ValueTuple{string, string}[])"/>) in one HEADERS frame with END_HEADERS.</summary>
    public Task SendHeaderBlockAsync(int streamId, ReadOnlySpan<byte> block, bool endStream) =>
        SendAsync(FrameType.Headers, (byte)(Http2Frame.EndHeaders | (endStream ? Http2Frame.EndStream : 0)), streamId, block);

    /// <summary>Sends a request's headers: <see cref="RequestFields"/> for <paramref name="path"/> plus <paramref name="extra"/>.</summary>
    public Task SendRequestAsync(int streamId, bool endStream, string path = "/test.Service/Echo", params (string Name, string Value)[] extra) =>
        SendHeaderBlockAsync(streamId, Block([.. RequestFields(path), .. extra]), endStream);

    public Task SendDataAsync(int streamId, ReadOnlySpan<byte> data, bool endStream) =>
        SendAsync(FrameType.Data, endStream ? Http2Frame.EndStream : (byte)0, streamId, data);

    /// <summary>Sends <paramref name="data"/> as DATA frames of at most 16384 bytes, in one write.</summary>
    public Task SendDataChunkedAsync(int streamId, ReadOnlySpan<byte> data, bool endStream)
    {
        var output = new ArrayBufferWriter<byte>(data.Length + (((data.Length / Http2Frame.DefaultMaxFrameSize) + 1) * Http2Frame.HeaderSize));
        do
        {
            var length = Math.Min(data.Length, Http2Frame.DefaultMaxFrameSize);
            var last = length == data.Length;
            Http2Frame.Write(output, FrameType.Data, last && endStream ? Http2Frame.EndStream : (byte)0, streamId, data[..length]);
            data = data[length..];
        }
        while (!data.IsEmpty);

        return SendRawAsync(output.WrittenMemory);
    }

    public Task SendRstStreamAsync(int streamId, Http2ErrorCode code)
    {
        var output = new ArrayBufferWriter<byte>();
        Http2Frame.WriteRstStream(output, streamId, code);
        return SendRawAsync(output.WrittenMemory);
    }

    public Task SendGoAwayAsync(int lastStreamId, Http2ErrorCode code)
    {
        var output = new ArrayBufferWriter<byte>();
        Http2Frame.WriteGoAway(output, lastStreamId, code);
        return SendRawAsync(output.WrittenMemory);
    }

    public Task SendWindowUpdateAsync(int streamId, int increment)
    {
        var output = new ArrayBufferWriter<byte>();
        Http2Frame.WriteWindowUpdate(output, streamId, increment);
        return SendRawAsync(output.WrittenMemory);
    }

    public Task SendPingAsync(long data, bool ack = false)
    {
        var output = new ArrayBufferWriter<byte>();
        Http2Frame.WritePing(output, data, ack);
        return SendRawAsync(output.WrittenMemory);
    }

    /// <summary>Closes the sending side (FIN) and keeps reading.</summary>
    public void ShutdownSend() => _socket.Shutdown(SocketShutdown.Send);

    /// <summary>Closes the socket at once with a reset (RST).</summary>
    public void Abort() => _socket.Close(0);

    // ---------------------------------------------------------------- building frames and header blocks

    /// <summary>One frame's bytes.</summary>
    public static byte[] Frame(FrameType type, byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        var output = new ArrayBufferWriter<byte>(Http2Frame.HeaderSize + payload.Length);
        Http2Frame.Write(output, type, flags, streamId, payload);
        return output.WrittenMemory.ToArray();
    }

    /// <summary>The pseudo-headers and headers of a well-formed gRPC request.</summary>
    public static (string Name, string Value)[] RequestFields(string path = "/test.Service/Echo") =>
    [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ];

    /// <summary>A header block encoded with <see cref="HpackEncoder"/> (static table and literals without indexing).</summary>
    public static byte[] Block(params (string Name, string Value)[] fields)
    {
        var block = new ArrayBufferWriter<byte>();
        foreach (var (name, value) in fields)
        {
            HpackEncoder.Encode(block, name, value);
        }

        return block.WrittenMemory.ToArray();
    }

    /// <summary>A literal field without indexing and with a literal name, sent as is (the encoder refuses upper case).</summary>
    public static byte[] LiteralField(string name, string value)
    {
        var output = new List<byte> { 0x00 };
        AppendString(output, name);
        AppendString(output, value);
        return [.. output];
    }

    /// <summary>A literal field with incremental indexing and a literal name: it joins the decoder's dynamic table at index 62.</summary>
    public static byte[] IndexedLiteralField(string name, string value)
    {
        var output = new List<byte> { 0x40 };
        AppendString(output, name);
        AppendString(output, value);
        return [.. output];
    }

    /// <summary>An indexed field (RFC 7541 6.1) referring to a static (1-61) or dynamic (62+) table entry.</summary>
    public static byte[] IndexedField(int index)
    {
        var output = new List<byte>();
        AppendInteger(output, 0x80, 7, index);
        return [.. output];
    }

    /// <summary><paramref name="data"/> with a pad length byte in front and <paramref name="padding"/> zero bytes behind.</summary>
    public static byte[] Padded(ReadOnlySpan<byte> data, int padding) => [(byte)padding, .. data, .. new byte[padding]];

    private static void AppendString(List<byte> output, string value)
    {
        var bytes = Encoding.Latin1.GetBytes(value);
        AppendInteger(output, 0x00, 7, bytes.Length);
        output.AddRange(bytes);
    }

    private static void AppendInteger(List<byte> output, byte firstBits, int prefixBits, int value)
    {
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            output.Add((byte)(firstBits | value));
            return;
        }

        output.Add((byte)(firstBits | max));
        value -= max;
        while (value >= 0x80)
        {
            output.Add((byte)((value & 0x7F) | 0x80));
            value >>= 7;
        }

        output.Add((byte)value);
    }

    // ---------------------------------------------------------------- receiving

    /// <summary>Takes the first not yet taken frame that matches, waiting for it (at most <paramref name="timeout"/>).</summary>
    public async Task<H2Frame> WaitForFrameAsync(Func<H2Frame, bool> match, TimeSpan? timeout = null, string? what = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        while (true)
        {
            Task changed;
            lock (_sync)
            {
                var index = _unconsumed.FindIndex(f => match(f));
                if (index >= 0)
                {
                    var frame = _unconsumed[index];
                    _unconsumed.RemoveAt(index);
                    return frame;
                }

                if (_closed.Task.IsCompleted)
                {
                    throw new IOException($"the server closed the connection before {what ?? "the expected frame"} arrived; received: {string.Join(", ", _history)}");
                }

                changed = _changed.Task;
            }

            try
            {
                await changed.WaitAsync(cts.Token);
            }
            catch (OperationCanceledException) when (cts.IsCancellationRequested)
            {
                throw new TimeoutException($"{what ?? "the expected frame"} did not arrive within {(timeout ?? Timeout).TotalSeconds} s; received: {string.Join(", ", History)}");
            }
        }
    }

    /// <summary>Whether a matching frame arrives (or is already there, not taken) within <paramref name="wait"/>; the frame is not taken.</summary>
    public async Task<bool> SeesWithinAsync(Func<H2Frame, bool> match, TimeSpan? wait = null)
    {
        using var cts = new CancellationTokenSource(wait ?? Quiet);
        while (true)
        {
            Task changed;
            lock (_sync)
            {
                if (_unconsumed.Exists(f => match(f)))
                {
                    return true;
                }

                if (_closed.Task.IsCompleted)
                {
                    return false;
                }

                changed = _changed.Task;
            }

            try
            {
                await changed.WaitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }
    }

    /// <summary>Takes every frame already received that matches, without waiting.</summary>
    public List<H2Frame> TakeAll(Func<H2Frame, bool> match)
    {
        lock (_sync)
        {
            var taken = _unconsumed.FindAll(f => match(f));
            _unconsumed.RemoveAll(f => match(f));
            return taken;
        }
    }

    /// <summary>Takes the next frame on <paramref name="streamId"/> other than a WINDOW_UPDATE (flow control, not part of a response).</summary>
    public Task<H2Frame> NextOnStreamAsync(int streamId) =>
        WaitForFrameAsync(f => f.StreamId == streamId && f.Type != FrameType.WindowUpdate, what: $"a frame on stream {streamId}");

    /// <summary>Takes the next header block on <paramref name="streamId"/> (HEADERS and the CONTINUATIONs right after it) and decodes it.</summary>
    public async Task<ReceivedHeaders> ReadHeadersAsync(int streamId)
    {
        var first = await NextOnStreamAsync(streamId);
        if (first.Type != FrameType.Headers)
        {
            throw new InvalidOperationException($"expected HEADERS on stream {streamId}, got {first}; received: {string.Join(", ", History)}");
        }

        return await ReadHeaderBlockAsync(first);
    }

    /// <summary>
    /// Reads one response on <paramref name="streamId"/> in order: HEADERS, DATA frames, then trailers with
    /// END_STREAM (or a single HEADERS with END_STREAM: trailers-only). Anything else on the stream fails.
    /// </summary>
    public async Task<ReceivedResponse> ReadResponseAsync(int streamId)
    {
        var headers = await ReadHeadersAsync(streamId);
        if (headers.EndStream)
        {
            return new ReceivedResponse(headers, [], null, 0);
        }

        var body = new List<byte>();
        var dataFrames = 0;
        while (true)
        {
            var frame = await NextOnStreamAsync(streamId);
            switch (frame.Type)
            {
                case FrameType.Data:
                    body.AddRange(frame.Payload);
                    dataFrames++;
                    if (frame.EndStream)
                    {
                        return new ReceivedResponse(headers, [.. body], null, dataFrames);
                    }

                    break;
                case FrameType.Headers:
                    var trailers = await ReadHeaderBlockAsync(frame);
                    if (!trailers.EndStream)
                    {
                        throw new InvalidOperationException($"trailers without END_STREAM on stream {streamId}");
                    }

                    return new ReceivedResponse(headers, [.. body], trailers, dataFrames);
                default:
                    throw new InvalidOperationException($"unexpected {frame} in the response on stream {streamId}; received: {string.Join(", ", History)}");
            }
        }
    }

    /// <summary>Takes the GOAWAY frame.</summary>
    public Task<H2Frame> WaitForGoAwayAsync() => WaitForFrameAsync(f => f.Type == FrameType.GoAway, what: "GOAWAY");

    /// <summary>Takes the RST_STREAM frame for <paramref name="streamId"/>.</summary>
    public Task<H2Frame> WaitForRstStreamAsync(int streamId) =>
        WaitForFrameAsync(f => f.Type == FrameType.RstStream && f.StreamId == streamId, what: $"RST_STREAM on stream {streamId}");

    /// <summary>Waits for a GOAWAY with <paramref name="code"/> and then for the server to close the connection.</summary>
    public async Task<H2Frame> ExpectConnectionErrorAsync(Http2ErrorCode code)
    {
        var goAway = await WaitForGoAwayAsync();
        Assert.Equal(code, goAway.ErrorCode);
        await WaitForCloseAsync();
        return goAway;
    }

    /// <summary>Waits (at most <see cref="Timeout"/>) for the server to close the connection.</summary>
    public async Task WaitForCloseAsync()
    {
        try
        {
            await Closed.WaitAsync(Timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"the server did not close the connection; received: {string.Join(", ", History)}");
        }
    }

    /// <summary>Sends a PING and waits for its ACK: the server has processed everything sent before it.</summary>
    public async Task PingPongAsync(long data = 0x5EED_F00D)
    {
        await SendPingAsync(data);
        var ack = await WaitForFrameAsync(f => f.Type == FrameType.Ping && f.IsAck && BinaryPrimitives.ReadInt64BigEndian(f.Payload) == data, what: "the PING ACK");
        Assert.Equal(0, ack.StreamId);
    }

    public async ValueTask DisposeAsync()
    {
        _socket.Close(0);
        try
        {
            await _reader.WaitAsync(Timeout);
        }
        catch (TimeoutException)
        {
        }

        await _stream.DisposeAsync();
        _writeLock.Dispose();
    }

    private async Task<ReceivedHeaders> ReadHeaderBlockAsync(H2Frame first)
    {
        var block = new List<byte>(first.Payload);
        var last = first;
        var frames = 1;
        while (!last.HasFlag(Http2Frame.EndHeaders))
        {
            last = await NextOnStreamAsync(first.StreamId);
            if (last.Type != FrameType.Continuation)
            {
                throw new InvalidOperationException($"expected CONTINUATION on stream {first.StreamId}, got {last}");
            }

            block.AddRange(last.Payload);
            frames++;
        }

        var fields = new List<KeyValuePair<string, string>>();
        _decoder.Decode(block.ToArray(), fields);
        return new ReceivedHeaders(first.StreamId, fields, first.EndStream, frames);
    }

    private async Task ReadLoopAsync()
    {
        var header = new byte[Http2Frame.HeaderSize];
        try
        {
            while (true)
            {
                await _stream.ReadExactlyAsync(header);
                var length = (header[0] << 16) | (header[1] << 8) | header[2];
                var payload = new byte[length];
                await _stream.ReadExactlyAsync(payload);
                var frame = new H2Frame((FrameType)header[3], header[4], BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & int.MaxValue, payload);
                TaskCompletionSource changed;
                lock (_sync)
                {
                    _history.Add(frame);
                    _unconsumed.Add(frame);
                    changed = _changed;
                    _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }

                changed.TrySetResult();
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or EndOfStreamException)
        {
        }
        finally
        {
            TaskCompletionSource changed;
            lock (_sync)
            {
                _closed.TrySetResult();
                changed = _changed;
            }

            changed.TrySetResult();
        }
    }
}
