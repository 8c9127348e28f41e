using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Sluice.Protocol.Http2;

namespace Sluice.Client.Tests.Http2;

/// <summary>One frame as the scripted server received it from the client.</summary>
internal sealed record H2Frame(FrameType Type, byte Flags, int StreamId, byte[] Payload)
{
    public bool HasFlag(byte flag) => (Flags & flag) != 0;

    public bool IsAck => HasFlag(Http2Frame.Ack);

    public bool EndStream => HasFlag(Http2Frame.EndStream);

    /// <summary>The error code of an RST_STREAM or GOAWAY frame.</summary>
    public uint ErrorCode => Type switch
    {
        FrameType.RstStream => BinaryPrimitives.ReadUInt32BigEndian(Payload),
        FrameType.GoAway => BinaryPrimitives.ReadUInt32BigEndian(Payload.AsSpan(4)),
        _ => throw new InvalidOperationException($"a {Type} frame has no error code"),
    };

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

    public override string ToString() => $"{Type} flags=0x{Flags:x2} stream={StreamId} length={Payload.Length}";
}

/// <summary>A decoded request header block (HEADERS plus any CONTINUATION frames).</summary>
internal sealed record ReceivedHeaders(int StreamId, List<KeyValuePair<string, string>> Fields, bool EndStream)
{
    public string? this[string name] => Fields.Where(f => f.Key == name).Select(f => f.Value).FirstOrDefault();
}

/// <summary>
/// A scripted HTTP/2 server for tests: it listens on 127.0.0.1 (an ephemeral port), accepts connections,
/// checks the client preface, records every frame the client sends, and lets the test write exact frames.
/// </summary>
internal sealed class ScriptedH2Server : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Channel<ScriptedH2Connection> _accepted = Channel.CreateUnbounded<ScriptedH2Connection>();
    private readonly List<ScriptedH2Connection> _connections = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;

    /// <param name="receiveBufferSize">SO_RCVBUF of accepted sockets (0: the system's default), to make a client's writes block sooner.</param>
    public ScriptedH2Server(int receiveBufferSize = 0)
    {
        if (receiveBufferSize > 0)
        {
            _listener.Server.ReceiveBufferSize = receiveBufferSize;
        }

        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _acceptLoop = AcceptLoopAsync();
    }

    public int Port { get; }

    public Uri Address => new($"http://127.0.0.1:{Port}");

    /// <summary>How many connections were accepted so far.</summary>
    public int AcceptedCount
    {
        get
        {
            lock (_connections)
            {
                return _connections.Count;
            }
        }
    }

    /// <summary>The next accepted connection, after its client preface was read.</summary>
    public async Task<ScriptedH2Connection> AcceptAsync()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        try
        {
            return await _accepted.Reader.ReadAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            throw new TimeoutException("the client opened no (further) connection");
        }
    }

    /// <summary>Accepts a connection and runs the usual handshake: client SETTINGS, then the server's SETTINGS and ACK.</summary>
    public async Task<ScriptedH2Connection> AcceptAndHandshakeAsync(params (ushort Id, uint Value)[] settings)
    {
        var connection = await AcceptAsync();
        await connection.HandshakeAsync(settings);
        return connection;
    }

    /// <summary>Whether another connection arrives within <paramref name="wait"/> (keep it short).</summary>
    public async Task<bool> AcceptsWithinAsync(TimeSpan wait)
    {
        using var timeout = new CancellationTokenSource(wait);
        try
        {
            return await _accepted.Reader.WaitToReadAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _acceptLoop.WaitAsync(Timeout);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        ScriptedH2Connection[] connections;
        lock (_connections)
        {
            connections = [.. _connections];
        }

        foreach (var connection in connections)
        {
            await connection.DisposeAsync();
        }

        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var socket = await _listener.AcceptSocketAsync(_stop.Token);
                socket.NoDelay = true;
                var connection = new ScriptedH2Connection(socket);
                lock (_connections)
                {
                    _connections.Add(connection);
                }

                try
                {
                    await connection.ReadPrefaceAsync().WaitAsync(Timeout, _stop.Token);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    continue; // not an HTTP/2 client: the test waiting for a connection times out
                }

                connection.StartReading();
                _accepted.Writer.TryWrite(connection);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }
}

/// <summary>One accepted connection of <see cref="ScriptedH2Server"/>.</summary>
internal sealed class ScriptedH2Connection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Lock _sync = new();
    private readonly List<H2Frame> _unconsumed = [];
    private readonly List<H2Frame> _history = [];
    private readonly HpackDecoder _decoder = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _readGate = CreateOpenGate();
    private Task _reader = Task.CompletedTask;

    public ScriptedH2Connection(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    /// <summary>Completes when the client closed the connection (the server read end-of-stream or an error).</summary>
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

    public async Task ReadPrefaceAsync()
    {
        var preface = new byte[Http2Frame.Preface.Length];
        await _stream.ReadExactlyAsync(preface);
        if (!preface.AsSpan().SequenceEqual(Http2Frame.Preface))
        {
            throw new IOException("the client did not send the HTTP/2 preface");
        }
    }

    public void StartReading() => _reader = Task.Run(ReadLoopAsync);

    /// <summary>Waits for the client's SETTINGS, sends the server's SETTINGS, and ACKs the client's.</summary>
    public async Task HandshakeAsync(params (ushort Id, uint Value)[] settings)
    {
        await WaitForFrameAsync(f => f.Type == FrameType.Settings && !f.IsAck);
        await SendSettingsAsync(settings);
        await SendAsync(FrameType.Settings, Http2Frame.Ack, 0, []);
    }

    /// <summary>Takes the first not yet taken frame that matches, waiting for it (at most <paramref name="timeout"/>).</summary>
    public async Task<H2Frame> WaitForFrameAsync(Func<H2Frame, bool> match, TimeSpan? timeout = null, string? what = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? ScriptedH2Server.Timeout);
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
                    throw new IOException($"the client closed the connection before {what ?? "the expected frame"} arrived; received: {string.Join(", ", _history)}");
                }

                changed = _changed.Task;
            }

            try
            {
                await changed.WaitAsync(cts.Token);
            }
            catch (OperationCanceledException) when (cts.IsCancellationRequested)
            {
                throw new TimeoutException($"{what ?? "the expected frame"} did not arrive; received: {string.Join(", ", History)}");
            }
        }
    }

    /// <summary>Whether a matching frame arrives within <paramref name="wait"/> (keep it short); the frame is not taken.</summary>
    public async Task<bool> SeesWithinAsync(Func<H2Frame, bool> match, TimeSpan wait)
    {
        using var cts = new CancellationTokenSource(wait);
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

    /// <summary>Reads one request header block (HEADERS and its CONTINUATIONs) and decodes it.</summary>
    public async Task<ReceivedHeaders> ReadHeadersAsync(int? streamId = null)
    {
        var first = await WaitForFrameAsync(f => f.Type == FrameType.Headers && (streamId is null || f.StreamId == streamId), what: "HEADERS");
        var block = new List<byte>(first.Payload);
        var last = first;
        while (!last.HasFlag(Http2Frame.EndHeaders))
        {
            last = await WaitForFrameAsync(f => f.Type == FrameType.Continuation && f.StreamId == first.StreamId, what: "CONTINUATION");
            block.AddRange(last.Payload);
        }

        var fields = new List<KeyValuePair<string, string>>();
        _decoder.Decode(block.ToArray(), fields);
        return new ReceivedHeaders(first.StreamId, fields, first.EndStream);
    }

    /// <summary>Collects a stream's DATA frames up to END_STREAM.</summary>
    public async Task<byte[]> ReadBodyAsync(int streamId)
    {
        var body = new List<byte>();
        while (true)
        {
            var frame = await WaitForFrameAsync(f => f.Type == FrameType.Data && f.StreamId == streamId, what: $"DATA on stream {streamId}");
            body.AddRange(frame.Payload);
            if (frame.EndStream)
            {
                return [.. body];
            }
        }
    }

    /// <summary>Sends one frame with exactly these fields.</summary>
    public Task SendAsync(FrameType type, byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        var output = new ArrayBufferWriter<byte>(Http2Frame.HeaderSize + payload.Length);
        Http2Frame.Write(output, type, flags, streamId, payload);
        return SendRawAsync(output.WrittenMemory.ToArray());
    }

    /// <summary>Sends bytes as they are (several frames, or a malformed one).</summary>
    public async Task SendRawAsync(byte[] bytes)
    {
        await _writeLock.WaitAsync(ScriptedH2Server.Timeout);
        try
        {
            await _stream.WriteAsync(bytes).AsTask().WaitAsync(ScriptedH2Server.Timeout);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public Task SendSettingsAsync(params (ushort Id, uint Value)[] settings)
    {
        var output = new ArrayBufferWriter<byte>();
        Http2Frame.WriteSettings(output, settings);
        return SendRawAsync(output.WrittenMemory.ToArray());
    }

    /// <summary>Sends a header block built with <see cref="HpackEncoder"/> (static table and literals without indexing).</summary>
    public Task SendHeadersAsync(int streamId, bool endStream, params (string Name, string Value)[] fields)
    {
        var block = new ArrayBufferWriter<byte>();
        foreach (var (name, value) in fields)
        {
            HpackEncoder.Encode(block, name, value);
        }

        return SendHeaderBlockAsync(streamId, block.WrittenSpan, endStream);
    }

    /// <summary>Ends a stream with a trailers-only OK response (:status 200, grpc-status 0).</summary>
    public Task SendOkAsync(int streamId) => SendHeadersAsync(streamId, endStream: true, (":status", "200"), ("grpc-status", "0"));

    /// <summary>Sends a prepared header block in one HEADERS frame.</summary>
    public Task SendHeaderBlockAsync(int streamId, ReadOnlySpan<byte> block, bool endStream) =>
        SendAsync(FrameType.Headers, (byte)(Http2Frame.EndHeaders | (endStream ? Http2Frame.EndStream : 0)), streamId, block);

    public Task SendDataAsync(int streamId, ReadOnlySpan<byte> data, bool endStream) =>
        SendAsync(FrameType.Data, endStream ? Http2Frame.EndStream : (byte)0, streamId, data);

    public Task SendRstStreamAsync(int streamId, Http2ErrorCode code)
    {
        var output = new ArrayBufferWriter<byte>();
        Http2Frame.WriteRstStream(output, streamId, code);
        return SendRawAsync(output.WrittenMemory.ToArray());
    }

    public Task SendGoAwayAsync(int lastStreamId, Http2ErrorCode code)
    {
        var output = new ArrayBufferWriter<byte>();
        Http2Frame.WriteGoAway(output, lastStreamId, code);
        return SendRawAsync(output.WrittenMemory.ToArray());
    }

    public Task SendWindowUpdateAsync(int streamId, int increment)
    {
        var output = new ArrayBufferWriter<byte>();
        Http2Frame.WriteWindowUpdate(output, streamId, increment);
        return SendRawAsync(output.WrittenMemory.ToArray());
    }

    /// <summary>Bytes received but not read yet (the server's socket buffer).</summary>
    public int Available => _socket.Available;

    /// <summary>Stops reading frames (after the frame being read, if any), so that the client's writes eventually block.</summary>
    public void PauseReading()
    {
        lock (_sync)
        {
            if (_readGate.Task.IsCompleted)
            {
                _readGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    public void ResumeReading()
    {
        lock (_sync)
        {
            _readGate.TrySetResult();
        }
    }

    /// <summary>Closes the socket from the server's side.</summary>
    public void Abort() => _socket.Close(0);

    public async ValueTask DisposeAsync()
    {
        _socket.Close(0);
        ResumeReading();
        try
        {
            await _reader.WaitAsync(ScriptedH2Server.Timeout);
        }
        catch (TimeoutException)
        {
        }

        await _stream.DisposeAsync();
        _writeLock.Dispose();
    }

    private static TaskCompletionSource CreateOpenGate()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        gate.SetResult();
        return gate;
    }

    private async Task ReadLoopAsync()
    {
        var header = new byte[Http2Frame.HeaderSize];
        try
        {
            while (true)
            {
                Task gate;
                lock (_sync)
                {
                    gate = _readGate.Task;
                }

                await gate;
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
