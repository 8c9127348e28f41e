using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Http2;
using Sluice.Server.Grpc;
using Sluice.Server.Http2;

namespace Sluice.Server.Tests.Http2;

/// <summary>
/// <see cref="Http2Listener"/> and <see cref="Http2ServerConnection"/> against <see cref="RawH2Client"/>, a loopback
/// client whose every frame the test writes: the settings exchange, request and response framing, trailers-only
/// responses, connection errors (GOAWAY) and stream errors (RST_STREAM), the concurrency limit, flow control in both
/// directions, CONTINUATION and padding, HPACK state, cancellation, and shutdown.
/// </summary>
public sealed class Http2ServerConnectionTests
{
    private const string EchoPath = "/test.Service/Echo";
    private const string HoldPath = "/test.Service/Hold";
    private static readonly TimeSpan Timeout = RawH2Client.Timeout;
    private static readonly TimeSpan Quiet = RawH2Client.Quiet;

    // ---- 1. Settings exchange and the happy path ----

    [Fact]
    public async Task Server_opens_with_settings_and_a_connection_window_update_and_acks_the_client_settings()
    {
        using var listener = Start(Echo, maxStreams: 7);
        await using var client = await RawH2Client.ConnectAsync(listener.Port);
        var output = new ArrayBufferWriter<byte>();
        output.Write(Http2Frame.Preface);
        Http2Frame.WriteSettings(output, [(Http2Frame.SettingsInitialWindowSize, 1000)]);
        await client.SendRawAsync(output.WrittenMemory);

        var ack = await client.WaitForFrameAsync(f => f.Type == FrameType.Settings && f.IsAck, what: "the SETTINGS ACK");
        Assert.Empty(ack.Payload);
        Assert.Equal(0, ack.StreamId);
        await client.PingPongAsync();

        var history = client.History;
        var settings = history[0];
        Assert.Equal(FrameType.Settings, settings.Type);
        Assert.False(settings.IsAck);
        Assert.Equal(0, settings.StreamId);
        var values = settings.Settings();
        Assert.Equal(7u, values[Http2Frame.SettingsMaxConcurrentStreams]);
        Assert.Equal((uint)Http2ServerFlowControl.StreamReceiveWindow, values[Http2Frame.SettingsInitialWindowSize]);

        var update = history[1];
        Assert.Equal(FrameType.WindowUpdate, update.Type);
        Assert.Equal(0, update.StreamId);
        Assert.Equal(Http2ServerFlowControl.ConnectionReceiveWindow - Http2Frame.DefaultWindowSize, update.WindowIncrement);

        Assert.Single(history, f => f.Type == FrameType.Settings && f.IsAck);
        Assert.DoesNotContain(history, f => f.Type == FrameType.GoAway);
    }

    [Theory]
    [InlineData(50)]
    [InlineData(0)]
    public async Task Quiet_connections_hold_no_reader_thread_and_a_request_split_by_pauses_is_served(int lingerMilliseconds)
    {
        using var listener = Http2Listener.Start(
            (GrpcServerOptions.Default with { Host = "127.0.0.1", Port = 0, ReaderLinger = TimeSpan.FromMilliseconds(lingerMilliseconds) }).ToHttp2ListenerOptions(),
            Echo,
            NullLoggerFactory.Instance);
        var clients = new List<RawH2Client>();
        try
        {
            for (var i = 0; i < 50; i++)
            {
                clients.Add(await ConnectAsync(listener));
            }

            await WaitUntilAsync(() => listener.ReaderThreads == 0, "50 quiet connections give their reader threads back");

            // A request whose parts arrive after the connection went quiet each time: each part wakes it.
            var client = clients[17];
            await client.SendRequestAsync(1, endStream: false, EchoPath);
            await Task.Delay(200);
            await client.SendDataAsync(1, "hello "u8, endStream: false);
            await Task.Delay(200);
            await client.SendDataAsync(1, "world"u8, endStream: true);
            var response = await client.ReadResponseAsync(1);
            Assert.Equal("hello world", Encoding.ASCII.GetString(response.Body));
            Assert.Equal("0", response.Trailer("grpc-status"));

            // Every connection at once, then quiet again.
            await Task.WhenAll(clients.Select(async (c, i) =>
            {
                var id = c == client ? 3 : 1;
                await c.SendRequestAsync(id, endStream: false, EchoPath);
                await c.SendDataAsync(id, Encoding.ASCII.GetBytes("n" + i), endStream: true);
                Assert.Equal("n" + i, Encoding.ASCII.GetString((await c.ReadResponseAsync(id)).Body));
            }));
            await WaitUntilAsync(() => listener.ReaderThreads == 0, "the connections go quiet again");
            Assert.Equal(50, listener.ConnectionCount);
        }
        finally
        {
            foreach (var c in clients)
            {
                await c.DisposeAsync();
            }
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Echo_request_gets_headers_data_and_trailers_with_end_stream(bool inlineIo)
    {
        using var listener = Start(Echo, inlineIo: inlineIo);
        await using var client = await ConnectAsync(listener);

        await client.SendRequestAsync(1, endStream: false, EchoPath, ("x-custom", "abc"));
        await client.SendDataAsync(1, "hello "u8, endStream: false);
        await client.SendDataAsync(1, "world"u8, endStream: true);

        var response = await client.ReadResponseAsync(1);
        Assert.False(response.Headers.EndStream);
        Assert.Equal("200", response.Headers[":status"]);
        Assert.Equal(":status", response.Headers.Fields[0].Key); // the pseudo-header comes first
        Assert.Equal("application/grpc", response.Headers["content-type"]);
        Assert.Equal(EchoPath, response.Headers["x-path"]);
        Assert.Equal("POST", response.Headers["x-method"]);
        Assert.Equal("abc", response.Headers["x-custom"]);
        Assert.Equal("hello world", Encoding.ASCII.GetString(response.Body));
        Assert.NotNull(response.Trailers);
        Assert.True(response.Trailers.EndStream);
        Assert.Equal("0", response.Trailers["grpc-status"]);
        Assert.Equal("11", response.Trailers["x-received"]);

        // The request ended before the response: nothing to reset.
        Assert.False(await client.SeesWithinAsync(f => f.StreamId == 1), "a frame followed the trailers on stream 1");

        // The connection serves the next stream too.
        await client.SendRequestAsync(3, endStream: false);
        await client.SendDataAsync(3, "again"u8, endStream: true);
        var second = await client.ReadResponseAsync(3);
        Assert.Equal("again", Encoding.ASCII.GetString(second.Body));
        Assert.Equal("0", second.Trailer("grpc-status"));
        Assert.DoesNotContain(client.History, f => f.Type is FrameType.GoAway or FrameType.RstStream);
    }

    [Fact]
    public async Task Handler_writing_no_body_sends_a_trailers_only_response_in_one_headers_frame()
    {
        using var listener = Start(exchange =>
        {
            exchange.SetResponseHeader("content-type", "application/grpc");
            exchange.AppendTrailer("grpc-status", "5");
            exchange.AppendTrailer("grpc-message", "not found");
            return Task.CompletedTask;
        });
        await using var client = await ConnectAsync(listener);
        await client.SendRequestAsync(1, endStream: true);

        var frame = await client.WaitForFrameAsync(f => f.StreamId == 1, what: "the response");
        Assert.Equal(FrameType.Headers, frame.Type);
        Assert.True(frame.EndStream);
        Assert.True(frame.HasFlag(Http2Frame.EndHeaders));
        var fields = new List<KeyValuePair<string, string>>();
        new HpackDecoder().Decode(frame.Payload, fields);
        Assert.Equal(new KeyValuePair<string, string>(":status", "200"), fields[0]);
        Assert.Contains(new KeyValuePair<string, string>("content-type", "application/grpc"), fields);
        Assert.Contains(new KeyValuePair<string, string>("grpc-status", "5"), fields);
        Assert.Contains(new KeyValuePair<string, string>("grpc-message", "not found"), fields);
        Assert.False(await client.SeesWithinAsync(f => f.StreamId == 1), "a frame followed the trailers-only HEADERS");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(32_768)]
    public async Task Response_frames_respect_the_client_max_frame_size(int maxFrameSize)
    {
        var bigHeader = new string('h', 20_000);
        var body = Pattern(40_000);
        using var listener = Start(async exchange =>
        {
            exchange.SetResponseHeader("x-big", bigHeader);
            exchange.ResponseBody.Write(body);
            await exchange.ResponseBody.FlushAsync(exchange.Aborted);
            exchange.AppendTrailer("grpc-status", "0");
        });
        (ushort, uint)[] settings = maxFrameSize == 0 ? [] : [(Http2Frame.SettingsMaxFrameSize, (uint)maxFrameSize)];
        await using var client = await ConnectAsync(listener, settings);
        await client.SendRequestAsync(1, endStream: true);

        var response = await client.ReadResponseAsync(1);
        var limit = maxFrameSize == 0 ? Http2Frame.DefaultMaxFrameSize : maxFrameSize;
        Assert.Equal(bigHeader, response.Headers["x-big"]);
        Assert.Equal(maxFrameSize == 0 ? 2 : 1, response.Headers.FrameCount); // HEADERS (+ CONTINUATION)
        Assert.Equal(body, response.Body);
        Assert.Equal((body.Length + limit - 1) / limit, response.DataFrames);
        Assert.All(client.History, f => Assert.True(f.Payload.Length <= limit, $"{f} is larger than {limit}"));
    }

    [Fact]
    public async Task Request_trailers_end_the_request_body()
    {
        using var listener = Start(Echo);
        await using var client = await ConnectAsync(listener);
        await client.SendRequestAsync(1, endStream: false);
        await client.SendDataAsync(1, "abc"u8, endStream: false);
        await client.SendHeaderBlockAsync(1, RawH2Client.Block(("x-request-trailer", "t")), endStream: true);

        var response = await client.ReadResponseAsync(1);
        Assert.Equal("abc", Encoding.ASCII.GetString(response.Body));
        Assert.Equal("3", response.Trailer("x-received"));
    }

    [Fact]
    public async Task Hpack_dynamic_table_follows_every_header_block_including_refused_streams()
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler, maxStreams: 1);
        await using var client = await ConnectAsync(listener);

        // Stream 1 adds "x-custom: first" (dynamic index 62) and holds the only stream slot.
        await client.SendHeaderBlockAsync(1, [.. RawH2Client.Block(RawH2Client.RequestFields(HoldPath)), .. RawH2Client.IndexedLiteralField("x-custom", "first")], endStream: true);
        await probe.WaitStartedAsync();

        // Stream 3 is refused, but its block adds "x-custom: from-refused" (62; "first" moves to 63).
        await client.SendHeaderBlockAsync(3, [.. RawH2Client.Block(RawH2Client.RequestFields()), .. RawH2Client.IndexedLiteralField("x-custom", "from-refused")], endStream: true);
        var refused = await client.WaitForRstStreamAsync(3);
        Assert.Equal(Http2ErrorCode.RefusedStream, refused.ErrorCode);

        probe.Release.TrySetResult();
        Assert.Equal("0", (await client.ReadResponseAsync(1)).Trailer("grpc-status"));

        // Stream 5 refers to index 62: only a decoder that also decoded the refused block finds "from-refused" there.
        var next = await OpenWhenSlotFreeAsync(client, 5, [.. RawH2Client.Block(RawH2Client.RequestFields()), .. RawH2Client.IndexedField(62)]);
        var response = await client.ReadResponseAsync(next);
        Assert.Equal("from-refused", response.Headers["x-custom"]);
        Assert.Equal(2, probe.Calls);
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);
    }

    // ---- 2. Connection errors: GOAWAY, then the connection closes ----

    [Fact]
    public async Task Bad_preface_gets_goaway_protocol_error_and_the_listener_keeps_serving()
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using (var bad = await RawH2Client.ConnectAsync(listener.Port))
        {
            await bad.SendRawAsync("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"u8.ToArray());
            var goAway = await bad.ExpectConnectionErrorAsync(Http2ErrorCode.ProtocolError);
            Assert.Equal(0, goAway.LastStreamId);
            Assert.Equal(goAway, bad.History[0]); // no SETTINGS for a client that is not speaking HTTP/2
        }

        await using var good = await ConnectAsync(listener);
        await good.SendRequestAsync(1, endStream: false);
        await good.SendDataAsync(1, "ok"u8, endStream: true);
        Assert.Equal("ok", Encoding.ASCII.GetString((await good.ReadResponseAsync(1)).Body));
        Assert.Equal(1, probe.Calls);
    }

    [Theory]
    [InlineData("ping")]
    [InlineData("settings-ack")]
    [InlineData("headers")]
    [InlineData("window-update")]
    public async Task First_frame_after_the_preface_must_be_settings(string first)
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await RawH2Client.ConnectAsync(listener.Port);
        byte[] frame = first switch
        {
            "ping" => RawH2Client.Frame(FrameType.Ping, 0, 0, new byte[8]),
            "settings-ack" => RawH2Client.Frame(FrameType.Settings, Http2Frame.Ack, 0, []),
            "headers" => RawH2Client.Frame(FrameType.Headers, Http2Frame.EndHeaders | Http2Frame.EndStream, 1, RawH2Client.Block(RawH2Client.RequestFields())),
            _ => RawH2Client.Frame(FrameType.WindowUpdate, 0, 0, [0, 0, 0, 1]),
        };
        await client.SendRawAsync((byte[])[.. Http2Frame.Preface, .. frame]);

        await client.ExpectConnectionErrorAsync(Http2ErrorCode.ProtocolError);
        Assert.Equal(0, probe.Calls);
    }

    [Fact]
    public async Task Frame_larger_than_16384_bytes_is_a_frame_size_error()
    {
        using var listener = Start(Echo);
        await using var client = await ConnectAsync(listener);

        // An unknown frame type is ignored whatever its payload, so only the size check can fail the connection.
        await client.SendAsync((FrameType)0xFA, 0, 0, new byte[Http2Frame.DefaultMaxFrameSize]);
        await client.PingPongAsync();
        await client.SendAsync((FrameType)0xFA, 0, 0, new byte[Http2Frame.DefaultMaxFrameSize + 1]);

        await client.ExpectConnectionErrorAsync(Http2ErrorCode.FrameSizeError);
    }

    [Theory]
    [InlineData("data-on-stream-0", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("headers-on-stream-0", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("headers-on-even-stream", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("headers-on-lower-stream", (uint)Http2ErrorCode.StreamClosed)]
    [InlineData("data-on-idle-stream", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("window-update-on-idle-stream", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("rst-stream-on-idle-stream", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("rst-stream-on-stream-0", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("priority-on-stream-0", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("second-header-block-without-end-stream", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("push-promise", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("settings-on-a-stream", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("settings-length-not-multiple-of-6", (uint)Http2ErrorCode.FrameSizeError)]
    [InlineData("settings-ack-with-payload", (uint)Http2ErrorCode.FrameSizeError)]
    [InlineData("settings-enable-push-2", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("settings-initial-window-above-max", (uint)Http2ErrorCode.FlowControlError)]
    [InlineData("settings-max-frame-size-too-small", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("settings-max-frame-size-too-large", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("window-update-length-3", (uint)Http2ErrorCode.FrameSizeError)]
    [InlineData("rst-stream-length-5", (uint)Http2ErrorCode.FrameSizeError)]
    [InlineData("goaway-length-7", (uint)Http2ErrorCode.FrameSizeError)]
    public async Task Protocol_violations_are_connection_errors(string violation, uint expected)
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        var request = RawH2Client.Block(RawH2Client.RequestFields());
        var expectedLastStream = 0;
        switch (violation)
        {
            case "data-on-stream-0":
                await client.SendDataAsync(0, "x"u8, endStream: false);
                break;
            case "headers-on-stream-0":
                await client.SendHeaderBlockAsync(0, request, endStream: true);
                break;
            case "headers-on-even-stream":
                await client.SendHeaderBlockAsync(2, request, endStream: true);
                break;
            case "headers-on-lower-stream":
                await client.SendHeaderBlockAsync(5, request, endStream: true);
                await client.ReadResponseAsync(5);
                await client.SendHeaderBlockAsync(3, request, endStream: true);
                expectedLastStream = 5;
                break;
            case "data-on-idle-stream":
                await client.SendDataAsync(7, "x"u8, endStream: false);
                break;
            case "window-update-on-idle-stream":
                await client.SendWindowUpdateAsync(7, 100);
                break;
            case "rst-stream-on-idle-stream":
                await client.SendRstStreamAsync(7, Http2ErrorCode.Cancel);
                break;
            case "rst-stream-on-stream-0":
                await client.SendRstStreamAsync(0, Http2ErrorCode.Cancel);
                break;
            case "priority-on-stream-0":
                await client.SendAsync(FrameType.Priority, 0, 0, [0, 0, 0, 0, 15]);
                break;
            case "second-header-block-without-end-stream":
                await client.SendHeaderBlockAsync(1, request, endStream: false);
                await client.SendHeaderBlockAsync(1, RawH2Client.Block(("x-more", "1")), endStream: false);
                expectedLastStream = 1;
                break;
            case "push-promise":
                await client.SendAsync(FrameType.PushPromise, Http2Frame.EndHeaders, 1, [0, 0, 0, 2, .. request]);
                break;
            case "settings-on-a-stream":
                await client.SendAsync(FrameType.Settings, 0, 1, []);
                break;
            case "settings-length-not-multiple-of-6":
                await client.SendAsync(FrameType.Settings, 0, 0, [0, 4, 0, 0, 1]);
                break;
            case "settings-ack-with-payload":
                await client.SendAsync(FrameType.Settings, Http2Frame.Ack, 0, [0, 4, 0, 0, 1, 0]);
                break;
            case "settings-enable-push-2":
                await client.SendSettingsAsync((Http2Frame.SettingsEnablePush, 2));
                break;
            case "settings-initial-window-above-max":
                await client.SendSettingsAsync((Http2Frame.SettingsInitialWindowSize, 1u << 31));
                break;
            case "settings-max-frame-size-too-small":
                await client.SendSettingsAsync((Http2Frame.SettingsMaxFrameSize, 16_383));
                break;
            case "settings-max-frame-size-too-large":
                await client.SendSettingsAsync((Http2Frame.SettingsMaxFrameSize, 1u << 24));
                break;
            case "window-update-length-3":
                await client.SendAsync(FrameType.WindowUpdate, 0, 0, [0, 0, 1]);
                break;
            case "rst-stream-length-5":
                await client.SendHeaderBlockAsync(1, request, endStream: false);
                await client.SendAsync(FrameType.RstStream, 0, 1, [0, 0, 0, 8, 0]);
                expectedLastStream = 1;
                break;
            case "goaway-length-7":
                await client.SendAsync(FrameType.GoAway, 0, 0, [0, 0, 0, 0, 0, 0, 0]);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(violation), violation, null);
        }

        var goAway = await client.ExpectConnectionErrorAsync((Http2ErrorCode)expected);
        Assert.Equal(expectedLastStream, goAway.LastStreamId);
        if (violation is "headers-on-stream-0" or "headers-on-even-stream" or "push-promise")
        {
            Assert.Equal(0, probe.Calls);
        }
    }

    [Fact]
    public async Task Unknown_frames_and_priority_frames_are_ignored()
    {
        using var listener = Start(Echo);
        await using var client = await ConnectAsync(listener);
        await client.SendAsync((FrameType)0xFA, 0xFF, 0, "anything"u8);
        await client.SendAsync((FrameType)0x20, 0, 9, "on a stream"u8);
        await client.SendAsync(FrameType.Priority, 0, 5, [0, 0, 0, 0, 15]); // an idle stream: does not open it
        await client.PingPongAsync();

        await client.SendRequestAsync(1, endStream: false); // 1 < 5 is fine: PRIORITY opened nothing
        await client.SendDataAsync(1, "x"u8, endStream: true);
        Assert.Equal("x", Encoding.ASCII.GetString((await client.ReadResponseAsync(1)).Body));
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);
    }

    // ---- 3. Stream errors: RST_STREAM, and the connection goes on ----

    [Theory]
    [InlineData("missing-path")]
    [InlineData("missing-method")]
    [InlineData("missing-scheme")]
    [InlineData("empty-path")]
    [InlineData("duplicate-path")]
    [InlineData("unknown-pseudo-header")]
    [InlineData("pseudo-header-after-regular")]
    [InlineData("upper-case-name")]
    [InlineData("connection-keep-alive")]
    [InlineData("transfer-encoding")]
    [InlineData("te-gzip")]
    public async Task Malformed_request_headers_reset_the_stream_with_protocol_error(string malformation)
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        var fields = RawH2Client.RequestFields().ToList();
        byte[] extra = [];
        switch (malformation)
        {
            case "missing-path":
                fields.RemoveAll(f => f.Name == ":path");
                break;
            case "missing-method":
                fields.RemoveAll(f => f.Name == ":method");
                break;
            case "missing-scheme":
                fields.RemoveAll(f => f.Name == ":scheme");
                break;
            case "empty-path":
                fields[fields.FindIndex(f => f.Name == ":path")] = (":path", "");
                break;
            case "duplicate-path":
                fields.Insert(1, (":path", "/other"));
                break;
            case "unknown-pseudo-header":
                fields.Insert(0, (":foo", "bar"));
                break;
            case "pseudo-header-after-regular":
                fields.Add((":authority", "example"));
                fields.RemoveAt(fields.FindIndex(f => f.Name == ":authority"));
                break;
            case "upper-case-name":
                extra = RawH2Client.LiteralField("X-Custom", "1");
                break;
            case "connection-keep-alive":
                fields.Add(("connection", "keep-alive"));
                break;
            case "transfer-encoding":
                fields.Add(("transfer-encoding", "chunked"));
                break;
            case "te-gzip":
                fields[fields.FindIndex(f => f.Name == "te")] = ("te", "gzip");
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(malformation), malformation, null);
        }

        await client.SendHeaderBlockAsync(1, [.. RawH2Client.Block([.. fields]), .. extra], endStream: true);
        var reset = await client.WaitForRstStreamAsync(1);
        Assert.Equal(Http2ErrorCode.ProtocolError, reset.ErrorCode);
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.Headers && f.StreamId == 1);

        // The connection goes on.
        await client.SendRequestAsync(3, endStream: false);
        await client.SendDataAsync(3, "next"u8, endStream: true);
        Assert.Equal("next", Encoding.ASCII.GetString((await client.ReadResponseAsync(3)).Body));
        Assert.Equal(1, probe.Calls);
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);
    }

    [Fact]
    public async Task Streams_beyond_max_concurrent_streams_are_refused()
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler, maxStreams: 2);
        await using var client = await RawH2Client.ConnectAsync(listener.Port);
        var settings = await client.HandshakeAsync();
        Assert.Equal(2u, settings.Settings()[Http2Frame.SettingsMaxConcurrentStreams]);

        await client.SendRequestAsync(1, endStream: true, HoldPath);
        await client.SendRequestAsync(3, endStream: false, HoldPath);
        await probe.WaitStartedAsync(2);
        await client.SendRequestAsync(5, endStream: true, HoldPath);

        var refused = await client.WaitForRstStreamAsync(5);
        Assert.Equal(Http2ErrorCode.RefusedStream, refused.ErrorCode);
        Assert.Equal(2, probe.Calls);

        // Once the held calls end, their slots are free again.
        probe.Release.TrySetResult();
        Assert.Equal("0", (await client.ReadResponseAsync(1)).Trailer("grpc-status"));
        Assert.Equal("0", (await client.ReadResponseAsync(3)).Trailer("grpc-status"));
        Assert.Equal(Http2ErrorCode.NoError, (await client.WaitForRstStreamAsync(3)).ErrorCode); // its request was still open
        var next = await OpenWhenSlotFreeAsync(client, 7, RawH2Client.Block([.. RawH2Client.RequestFields(), ("x-custom", "free")]));
        Assert.Equal("free", (await client.ReadResponseAsync(next)).Headers["x-custom"]);
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);
    }

    [Fact]
    public async Task Data_after_end_stream_resets_the_stream_with_stream_closed()
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        await client.SendRequestAsync(1, endStream: true, HoldPath);
        await probe.WaitStartedAsync();

        await client.SendDataAsync(1, "late"u8, endStream: false);
        var reset = await client.WaitForRstStreamAsync(1);
        Assert.Equal(Http2ErrorCode.StreamClosed, reset.ErrorCode);
        await probe.Aborted.Task.WaitAsync(Timeout);

        await client.PingPongAsync();
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);
        Assert.False(await client.SeesWithinAsync(f => f.StreamId == 1), "the server answered on a stream it reset");
    }

    [Fact]
    public async Task Handler_exception_resets_the_stream_with_internal_error()
    {
        using var listener = Start(_ => throw new InvalidOperationException("handler failure"));
        await using var client = await ConnectAsync(listener);
        await client.SendRequestAsync(1, endStream: true);

        var reset = await client.WaitForRstStreamAsync(1);
        Assert.Equal(Http2ErrorCode.InternalError, reset.ErrorCode);
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.Headers && f.StreamId == 1);
        await client.PingPongAsync();
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);
    }

    // ---- 4. Flow control: server to client ----

    [Fact]
    public async Task Response_data_waits_for_the_client_stream_window()
    {
        var body = Pattern(100);
        using var listener = Start(async exchange =>
        {
            exchange.ResponseBody.Write(body);
            await exchange.ResponseBody.FlushAsync(exchange.Aborted);
            exchange.AppendTrailer("grpc-status", "0");
        });
        await using var client = await ConnectAsync(listener, (Http2Frame.SettingsInitialWindowSize, 10));
        await client.SendRequestAsync(1, endStream: true);

        Assert.Equal("200", (await client.ReadHeadersAsync(1))[":status"]);
        Assert.Equal(body[..10], await ReadDataAsync(client, 1, 10));
        Assert.False(await client.SeesWithinAsync(f => f.StreamId == 1), "DATA beyond the stream window");

        // Connection credit does not help a stream without its own.
        await client.SendWindowUpdateAsync(0, 1000);
        Assert.False(await client.SeesWithinAsync(f => f.StreamId == 1), "DATA beyond the stream window after a connection WINDOW_UPDATE");

        await client.SendWindowUpdateAsync(1, 40);
        Assert.Equal(body[10..50], await ReadDataAsync(client, 1, 40));
        Assert.False(await client.SeesWithinAsync(f => f.StreamId == 1), "DATA beyond the stream window");

        await client.SendWindowUpdateAsync(1, 50);
        Assert.Equal(body[50..], await ReadDataAsync(client, 1, 50));
        var trailers = await client.ReadHeadersAsync(1);
        Assert.True(trailers.EndStream);
        Assert.Equal("0", trailers["grpc-status"]);
    }

    [Fact]
    public async Task Raising_settings_initial_window_size_releases_waiting_response_data()
    {
        var body = Pattern(100);
        using var listener = Start(async exchange =>
        {
            exchange.ResponseBody.Write(body);
            await exchange.ResponseBody.FlushAsync(exchange.Aborted);
            exchange.AppendTrailer("grpc-status", "0");
        });
        await using var client = await ConnectAsync(listener, (Http2Frame.SettingsInitialWindowSize, 10));
        await client.SendRequestAsync(1, endStream: true);
        await client.ReadHeadersAsync(1);
        Assert.Equal(body[..10], await ReadDataAsync(client, 1, 10));
        Assert.False(await client.SeesWithinAsync(f => f.StreamId == 1), "DATA beyond the stream window");

        await client.SendSettingsAsync((Http2Frame.SettingsInitialWindowSize, 100)); // the open stream's window grows by 90
        await client.WaitForFrameAsync(f => f.Type == FrameType.Settings && f.IsAck, what: "the SETTINGS ACK");
        Assert.Equal(body[10..], await ReadDataAsync(client, 1, 90));
        Assert.True((await client.ReadHeadersAsync(1)).EndStream);
    }

    [Fact]
    public async Task Response_data_waits_for_the_client_connection_window()
    {
        var body = Pattern(100_000);
        using var listener = Start(async exchange =>
        {
            exchange.ResponseBody.Write(body);
            await exchange.ResponseBody.FlushAsync(exchange.Aborted);
            exchange.AppendTrailer("grpc-status", "0");
        });
        await using var client = await ConnectAsync(listener, (Http2Frame.SettingsInitialWindowSize, 1 << 20));
        await client.SendRequestAsync(1, endStream: true);
        await client.ReadHeadersAsync(1);

        Assert.Equal(body[..Http2Frame.DefaultWindowSize], await ReadDataAsync(client, 1, Http2Frame.DefaultWindowSize));
        Assert.False(await client.SeesWithinAsync(f => f.StreamId == 1), "DATA beyond the connection window");
        await client.SendWindowUpdateAsync(1, 100_000);
        Assert.False(await client.SeesWithinAsync(f => f.StreamId == 1), "DATA beyond the connection window after a stream WINDOW_UPDATE");

        await client.SendWindowUpdateAsync(0, body.Length - Http2Frame.DefaultWindowSize);
        Assert.Equal(body[Http2Frame.DefaultWindowSize..], await ReadDataAsync(client, 1, body.Length - Http2Frame.DefaultWindowSize));
        Assert.True((await client.ReadHeadersAsync(1)).EndStream);
        Assert.All(client.History, f => Assert.True(f.Payload.Length <= Http2Frame.DefaultMaxFrameSize, $"{f} is larger than the default frame size"));
    }

    [Theory]
    [InlineData("zero-increment", (uint)Http2ErrorCode.ProtocolError)]
    [InlineData("overflow", (uint)Http2ErrorCode.FlowControlError)]
    [InlineData("settings-overflow-of-a-stream-window", (uint)Http2ErrorCode.FlowControlError)]
    public async Task Invalid_connection_window_updates_are_connection_errors(string violation, uint expected)
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        switch (violation)
        {
            case "zero-increment":
                await client.SendWindowUpdateAsync(0, 0);
                break;
            case "overflow":
                await client.SendWindowUpdateAsync(0, int.MaxValue); // 65535 + 2^31-1
                break;
            default:
                // A stream's window at exactly 2^31-1 is fine; a SETTINGS change that raises it by one is not.
                await client.SendRequestAsync(1, endStream: true, HoldPath);
                await probe.WaitStartedAsync();
                await client.SendWindowUpdateAsync(1, int.MaxValue - Http2Frame.DefaultWindowSize);
                await client.PingPongAsync();
                Assert.DoesNotContain(client.History, f => f.Type is FrameType.GoAway or FrameType.RstStream);
                await client.SendSettingsAsync((Http2Frame.SettingsInitialWindowSize, Http2Frame.DefaultWindowSize + 1));
                break;
        }

        await client.ExpectConnectionErrorAsync((Http2ErrorCode)expected);
    }

    [Theory]
    [InlineData(0, (uint)Http2ErrorCode.ProtocolError)]
    [InlineData(int.MaxValue, (uint)Http2ErrorCode.FlowControlError)]
    public async Task Invalid_stream_window_updates_reset_only_that_stream(int increment, uint expected)
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        await client.SendRequestAsync(1, endStream: true, HoldPath);
        await probe.WaitStartedAsync();

        await client.SendWindowUpdateAsync(1, increment);
        var reset = await client.WaitForRstStreamAsync(1);
        Assert.Equal((Http2ErrorCode)expected, reset.ErrorCode);
        await probe.Aborted.Task.WaitAsync(Timeout);

        await client.SendRequestAsync(3, endStream: false);
        await client.SendDataAsync(3, "still"u8, endStream: true);
        Assert.Equal("still", Encoding.ASCII.GetString((await client.ReadResponseAsync(3)).Body));
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);
    }

    // ---- 5. Flow control: client to server ----

    [Fact]
    public async Task Request_data_beyond_the_stream_window_is_a_flow_control_error()
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        await client.SendRequestAsync(1, endStream: false, HoldPath); // its handler never reads the body
        await probe.WaitStartedAsync();
        var handshakeUpdates = client.History.Count(f => f.Type == FrameType.WindowUpdate);

        // Exactly the stream's window is fine. Nothing was read, so no credit comes back, not even the connection's.
        await client.SendDataChunkedAsync(1, new byte[Http2ServerFlowControl.StreamReceiveWindow], endStream: false);
        await client.PingPongAsync();
        Assert.DoesNotContain(client.History, f => f.Type is FrameType.GoAway or FrameType.RstStream);
        Assert.Equal(handshakeUpdates, client.History.Count(f => f.Type == FrameType.WindowUpdate));

        // One byte more is not.
        await client.SendDataAsync(1, [0], endStream: false);
        var goAway = await client.ExpectConnectionErrorAsync(Http2ErrorCode.FlowControlError);
        Assert.Equal(1, goAway.LastStreamId);
        Assert.Equal("the client sent more than stream 1's flow-control window", Encoding.UTF8.GetString(goAway.Payload.AsSpan(8))); // the reason, as debug data
    }

    [Fact]
    public async Task Unread_request_bytes_over_many_streams_are_bounded_by_the_connection_window()
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);

        // Two streams fill the connection's window. The server buffers it all and returns no connection credit.
        await FillTheConnectionWindowWithUnreadBytesAsync(client, probe);
        await client.SendRequestAsync(5, endStream: false, HoldPath); // HEADERS need no credit
        await probe.WaitStartedAsync();
        await client.PingPongAsync();
        Assert.False(await client.SeesWithinAsync(f => f.Type == FrameType.WindowUpdate && f.StreamId == 0), "connection credit for bytes nobody read");

        // So a third stream cannot make it buffer more: one byte beyond the connection's window fails the connection.
        await client.SendDataAsync(5, [0], endStream: false);
        await client.ExpectConnectionErrorAsync(Http2ErrorCode.FlowControlError);
    }

    [Fact]
    public async Task A_reset_stream_gives_its_unread_bytes_back_to_the_connection_window()
    {
        var probe = new Probe(Count);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        await FillTheConnectionWindowWithUnreadBytesAsync(client, probe);
        const int PerStream = Http2ServerFlowControl.ConnectionReceiveWindow / 2;

        await client.SendRstStreamAsync(1, Http2ErrorCode.Cancel);
        var update = await client.WaitForFrameAsync(f => f.Type == FrameType.WindowUpdate && f.StreamId == 0, what: "the connection WINDOW_UPDATE after the reset");
        Assert.Equal(PerStream, update.WindowIncrement);

        // The credit is real: a new call with a body of that size goes through.
        await client.SendRequestAsync(7, endStream: false);
        await client.SendDataChunkedAsync(7, Pattern(PerStream - 100), endStream: true);
        Assert.Equal((PerStream - 100).ToString(CultureInfo.InvariantCulture), (await client.ReadResponseAsync(7)).Trailer("x-received"));
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);
    }

    /// <summary>
    /// Opens streams 1 and 3 on calls that never read their bodies and sends half the connection's window
    /// on each (within each stream's window), after taking the handshake's WINDOW_UPDATEs out of the way.
    /// </summary>
    private static async Task FillTheConnectionWindowWithUnreadBytesAsync(RawH2Client client, Probe probe)
    {
        client.TakeAll(f => f.Type == FrameType.WindowUpdate);
        await client.SendRequestAsync(1, endStream: false, HoldPath);
        await client.SendRequestAsync(3, endStream: false, HoldPath);
        await probe.WaitStartedAsync(2);
        await client.SendDataChunkedAsync(1, new byte[Http2ServerFlowControl.ConnectionReceiveWindow / 2], endStream: false);
        await client.SendDataChunkedAsync(3, new byte[Http2ServerFlowControl.ConnectionReceiveWindow / 2], endStream: false);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Server_returns_stream_and_connection_credit_as_the_handler_consumes_the_body(bool inlineIo)
    {
        using var listener = Start(Count, inlineIo: inlineIo);
        await using var client = await RawH2Client.ConnectAsync(listener.Port);
        var settings = await client.HandshakeAsync();
        await client.SendRequestAsync(1, endStream: false);

        // 5 MiB: more than the stream's window (2 MiB) and the connection's (4 MiB), sent only within them.
        const int Total = 5 << 20;
        long streamWindow = settings.Settings()[Http2Frame.SettingsInitialWindowSize];
        long connectionWindow = Http2Frame.DefaultWindowSize;
        var streamIncrements = new List<int>();
        var chunk = Pattern(Http2Frame.DefaultMaxFrameSize);
        var sent = 0;
        while (sent < Total)
        {
            foreach (var update in client.TakeAll(f => f.Type == FrameType.WindowUpdate))
            {
                Apply(update);
            }

            var length = (int)Math.Min(Math.Min(chunk.Length, Total - sent), Math.Min(streamWindow, connectionWindow));
            if (length <= 0)
            {
                Apply(await client.WaitForFrameAsync(f => f.Type == FrameType.WindowUpdate, what: $"a WINDOW_UPDATE after {sent} bytes"));
                continue;
            }

            await client.SendDataAsync(1, chunk.AsSpan(0, length), endStream: false);
            sent += length;
            streamWindow -= length;
            connectionWindow -= length;
        }

        await client.SendDataAsync(1, [], endStream: true);
        var response = await client.ReadResponseAsync(1);
        Assert.Equal(Total.ToString(CultureInfo.InvariantCulture), response.Trailer("x-received"));
        Assert.NotEmpty(streamIncrements);
        Assert.All(streamIncrements, increment => Assert.True(increment >= Http2ServerFlowControl.StreamReceiveWindow / 4, $"a stream WINDOW_UPDATE of {increment} bytes"));
        Assert.DoesNotContain(client.History, f => f.Type is FrameType.GoAway or FrameType.RstStream);

        void Apply(H2Frame update)
        {
            if (update.StreamId == 0)
            {
                connectionWindow += update.WindowIncrement;
            }
            else
            {
                Assert.Equal(1, update.StreamId);
                streamWindow += update.WindowIncrement;
                streamIncrements.Add(update.WindowIncrement);
            }
        }
    }

    // ---- 6. Cancellation and early ends ----

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Client_rst_stream_fails_the_handler_body_read_and_fires_aborted(bool inlineIo)
    {
        var call = new ReadingCall();
        using var listener = Start(call.Handler, inlineIo: inlineIo);
        await using var client = await ConnectAsync(listener);
        await client.SendRequestAsync(1, endStream: false, HoldPath);
        await client.SendDataAsync(1, "partial"u8, endStream: false);
        await call.Started.Task.WaitAsync(Timeout);

        await client.SendRstStreamAsync(1, Http2ErrorCode.Cancel);
        var (failure, _) = await call.ReadFailed.Task.WaitAsync(Timeout);
        Assert.IsType<IOException>(failure);
        await call.Aborted.Task.WaitAsync(Timeout);

        Assert.False(await client.SeesWithinAsync(f => f.StreamId == 1), "the server answered a stream the client reset");
        await client.SendRequestAsync(3, endStream: false);
        await client.SendDataAsync(3, "after"u8, endStream: true);
        Assert.Equal("after", Encoding.ASCII.GetString((await client.ReadResponseAsync(3)).Body));
        Assert.Equal(1, call.OtherCalls);
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Aborted_is_already_cancelled_when_a_body_read_fails_after_a_client_reset(bool inlineIo)
    {
        var call = new ReadingCall();
        using var listener = Start(call.Handler, inlineIo: inlineIo);
        await using var client = await ConnectAsync(listener);
        await client.SendRequestAsync(1, endStream: false, HoldPath);
        await call.Started.Task.WaitAsync(Timeout);

        await client.SendRstStreamAsync(1, Http2ErrorCode.Cancel);
        var (failure, abortedThen) = await call.ReadFailed.Task.WaitAsync(Timeout);
        Assert.IsType<IOException>(failure);
        Assert.True(abortedThen, "the body read failed while exchange.Aborted was not cancelled yet");
    }

    [Fact]
    public async Task Client_rst_stream_ends_a_flush_waiting_for_stream_window()
    {
        var flushed = new TaskCompletionSource<FlushResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var listener = Start(async exchange =>
        {
            exchange.ResponseBody.Write(Pattern(100));
            try
            {
                flushed.TrySetResult(await exchange.ResponseBody.FlushAsync()); // no token: the reset alone must end it
            }
            catch (Exception ex)
            {
                flushed.TrySetException(ex);
            }
        });
        await using var client = await ConnectAsync(listener, (Http2Frame.SettingsInitialWindowSize, 10));
        await client.SendRequestAsync(1, endStream: true);
        await client.ReadHeadersAsync(1);
        await ReadDataAsync(client, 1, 10); // the flush now waits for credit

        await client.SendRstStreamAsync(1, Http2ErrorCode.Cancel);
        await client.PingPongAsync();
        var outcome = await Record.ExceptionAsync(async () => Assert.True((await flushed.Task.WaitAsync(Timeout)).IsCompleted));
        Assert.False(outcome is TimeoutException, "the flush still waits for credit on a stream the client reset");
        Assert.True(outcome is null or IOException or OperationCanceledException, $"the flush failed with {outcome}");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Handler_returning_before_the_request_ends_sends_trailers_then_rst_stream_no_error(bool withBody)
    {
        using var listener = Start(exchange =>
        {
            if (withBody)
            {
                exchange.ResponseBody.Write("early"u8);
            }

            exchange.AppendTrailer("grpc-status", "0");
            return Task.CompletedTask;
        });
        await using var client = await ConnectAsync(listener);
        await client.SendRequestAsync(1, endStream: false);

        var response = await client.ReadResponseAsync(1);
        Assert.Equal("0", response.Trailer("grpc-status"));
        Assert.Equal(withBody ? "early" : "", Encoding.ASCII.GetString(response.Body));
        var next = await client.NextOnStreamAsync(1);
        Assert.Equal(FrameType.RstStream, next.Type);
        Assert.Equal(Http2ErrorCode.NoError, next.ErrorCode);

        // DATA the client had in flight is ignored.
        await client.SendDataAsync(1, "in flight"u8, endStream: true);
        await client.PingPongAsync();
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);
        Assert.False(await client.SeesWithinAsync(f => f.StreamId == 1), "the server answered on a stream it reset");
    }

    [Theory]
    [InlineData("early-response")]
    [InlineData("refused")]
    [InlineData("malformed")]
    public async Task Request_trailers_on_a_stream_the_server_reset_are_ignored(string reason)
    {
        var probe = new Probe(exchange =>
        {
            exchange.AppendTrailer("grpc-status", "0");
            return Task.CompletedTask; // returns before the request ends
        });
        using var listener = Start(probe.Handler, maxStreams: 1);
        await using var client = await ConnectAsync(listener);
        var streamId = 1;
        switch (reason)
        {
            case "early-response":
                await client.SendRequestAsync(1, endStream: false);
                await client.ReadResponseAsync(1);
                Assert.Equal(Http2ErrorCode.NoError, (await client.WaitForRstStreamAsync(1)).ErrorCode);
                break;
            case "refused":
                await client.SendRequestAsync(1, endStream: true, HoldPath);
                await probe.WaitStartedAsync();
                streamId = 3;
                await client.SendRequestAsync(3, endStream: false);
                Assert.Equal(Http2ErrorCode.RefusedStream, (await client.WaitForRstStreamAsync(3)).ErrorCode);
                break;
            default:
                await client.SendHeaderBlockAsync(1, RawH2Client.Block((":method", "POST"), (":scheme", "http")), endStream: false);
                Assert.Equal(Http2ErrorCode.ProtocolError, (await client.WaitForRstStreamAsync(1)).ErrorCode);
                break;
        }

        // The client had sent the rest of its request before it saw the reset.
        await client.SendDataAsync(streamId, "body"u8, endStream: false);
        await client.SendHeaderBlockAsync(streamId, RawH2Client.Block(("x-request-trailer", "t")), endStream: true);
        await client.PingPongAsync();
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);

        probe.Release.TrySetResult();
        if (reason == "refused")
        {
            await client.ReadResponseAsync(1);
        }

        var next = await OpenWhenSlotFreeAsync(client, 5, RawH2Client.Block(RawH2Client.RequestFields()));
        Assert.Equal("0", (await client.ReadResponseAsync(next)).Trailer("grpc-status"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Client_closing_the_socket_mid_call_aborts_the_handler_and_the_listener_keeps_serving(bool reset)
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using (var client = await ConnectAsync(listener))
        {
            await client.SendRequestAsync(1, endStream: false, HoldPath);
            await probe.WaitStartedAsync();
            if (reset)
            {
                client.Abort();
            }
            else
            {
                client.ShutdownSend();
                await client.WaitForCloseAsync(); // the server closes its side too
            }

            await probe.Aborted.Task.WaitAsync(Timeout);
        }

        await using var next = await ConnectAsync(listener);
        await next.SendRequestAsync(1, endStream: false);
        await next.SendDataAsync(1, "new"u8, endStream: true);
        Assert.Equal("new", Encoding.ASCII.GetString((await next.ReadResponseAsync(1)).Body));
    }

    // ---- 7. PING ----

    [Fact]
    public async Task Ping_is_answered_with_the_same_payload_and_a_ping_ack_is_not()
    {
        using var listener = Start(Echo);
        await using var client = await ConnectAsync(listener);
        byte[] payload = [1, 2, 3, 4, 5, 6, 7, 8];
        await client.SendAsync(FrameType.Ping, 0, 0, payload);

        var ack = await client.WaitForFrameAsync(f => f.Type == FrameType.Ping, what: "the PING ACK");
        Assert.True(ack.IsAck);
        Assert.Equal(0, ack.StreamId);
        Assert.Equal(payload, ack.Payload);

        await client.SendPingAsync(42, ack: true);
        Assert.False(await client.SeesWithinAsync(f => f.Type == FrameType.Ping), "the server answered a PING ACK");
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);
    }

    [Theory]
    [InlineData(7, 0, (uint)Http2ErrorCode.FrameSizeError)]
    [InlineData(9, 0, (uint)Http2ErrorCode.FrameSizeError)]
    [InlineData(8, 1, (uint)Http2ErrorCode.ProtocolError)]
    public async Task Malformed_ping_is_a_connection_error(int length, int streamId, uint expected)
    {
        using var listener = Start(Echo);
        await using var client = await ConnectAsync(listener);
        await client.SendAsync(FrameType.Ping, 0, streamId, new byte[length]);
        await client.ExpectConnectionErrorAsync((Http2ErrorCode)expected);
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.Ping);
    }

    // ---- 8. CONTINUATION, padding, HPACK errors ----

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Request_headers_split_across_headers_and_continuation_frames(bool endStreamOnHeaders)
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        var longValue = new string('c', 200);
        var block = RawH2Client.Block([.. RawH2Client.RequestFields(), ("x-custom", longValue)]);

        await client.SendAsync(FrameType.Headers, endStreamOnHeaders ? Http2Frame.EndStream : (byte)0, 1, block.AsSpan(0, 10));
        await client.SendAsync(FrameType.Continuation, 0, 1, block.AsSpan(10, 100));
        Assert.False(await client.SeesWithinAsync(f => f.StreamId == 1), "the server answered before END_HEADERS");
        Assert.Equal(0, probe.Calls);
        await client.SendAsync(FrameType.Continuation, Http2Frame.EndHeaders, 1, block.AsSpan(110));
        if (!endStreamOnHeaders)
        {
            await client.SendDataAsync(1, "body"u8, endStream: true);
        }

        var response = await client.ReadResponseAsync(1);
        Assert.Equal(longValue, response.Headers["x-custom"]);
        Assert.Equal(EchoPath, response.Headers["x-path"]);
        Assert.Equal(endStreamOnHeaders ? "" : "body", Encoding.ASCII.GetString(response.Body));
        Assert.Equal(endStreamOnHeaders ? "0" : "4", response.Trailer("x-received"));
        Assert.DoesNotContain(client.History, f => f.Type is FrameType.GoAway or FrameType.RstStream);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Request_headers_over_the_header_list_limit_fail_only_their_stream_with_resource_exhausted(bool endStream)
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);

        // 70,000 bytes of one header, then a literal that joins the dynamic table: the block must still be decoded whole.
        byte[] block = [.. RawH2Client.Block([.. RawH2Client.RequestFields(), ("x-custom", new string('h', 70_000))]), .. RawH2Client.IndexedLiteralField("x-custom", "from the table")];
        await client.SendAsync(FrameType.Headers, endStream ? Http2Frame.EndStream : (byte)0, 1, block.AsSpan(0, 16_000));
        for (var offset = 16_000; offset < block.Length; offset += 16_000)
        {
            var flags = offset + 16_000 >= block.Length ? Http2Frame.EndHeaders : (byte)0;
            await client.SendAsync(FrameType.Continuation, flags, 1, block.AsSpan(offset, Math.Min(16_000, block.Length - offset)));
        }

        var refused = await client.ReadHeadersAsync(1);
        Assert.True(refused.EndStream, "a trailers-only response");
        Assert.Equal("8", refused["grpc-status"]); // RESOURCE_EXHAUSTED
        Assert.Equal("request headers larger than 65536 bytes", refused["grpc-message"]);
        if (!endStream)
        {
            Assert.Equal(Http2ErrorCode.NoError, (await client.WaitForRstStreamAsync(1)).ErrorCode);
            await client.SendDataAsync(1, "late"u8, endStream: true); // sent before the client saw the reset: ignored
        }

        Assert.Equal(0, probe.Calls);

        // The connection goes on, and its decoder kept the entry that block added (index 62).
        await client.SendHeaderBlockAsync(3, [.. RawH2Client.Block(RawH2Client.RequestFields()), .. RawH2Client.IndexedField(62)], endStream: true);
        var response = await client.ReadResponseAsync(3);
        Assert.Equal("from the table", response.Headers["x-custom"]);
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);
    }

    [Theory]
    [InlineData("ping-inside-header-block")]
    [InlineData("data-inside-header-block")]
    [InlineData("headers-inside-header-block")]
    [InlineData("continuation-on-another-stream")]
    [InlineData("continuation-without-headers")]
    [InlineData("continuation-after-end-headers")]
    public async Task Header_block_interrupted_or_continued_out_of_place_is_a_protocol_error(string violation)
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        var block = RawH2Client.Block(RawH2Client.RequestFields());
        var first = RawH2Client.Frame(FrameType.Headers, Http2Frame.EndStream, 1, block.AsSpan(0, 5));
        var rest = RawH2Client.Frame(FrameType.Continuation, Http2Frame.EndHeaders, 1, block.AsSpan(5));
        byte[] bytes = violation switch
        {
            "ping-inside-header-block" => [.. first, .. RawH2Client.Frame(FrameType.Ping, 0, 0, new byte[8]), .. rest],
            "data-inside-header-block" => [.. first, .. RawH2Client.Frame(FrameType.Data, 0, 1, "x"u8), .. rest],
            "headers-inside-header-block" => [.. first, .. RawH2Client.Frame(FrameType.Headers, Http2Frame.EndHeaders, 3, block), .. rest],
            "continuation-on-another-stream" => [.. first, .. RawH2Client.Frame(FrameType.Continuation, Http2Frame.EndHeaders, 3, block.AsSpan(5))],
            "continuation-without-headers" => rest,
            _ => [.. RawH2Client.Frame(FrameType.Headers, Http2Frame.EndHeaders, 1, block), .. rest],
        };
        await client.SendRawAsync(bytes);

        await client.ExpectConnectionErrorAsync(Http2ErrorCode.ProtocolError);
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.Ping);
        if (violation != "continuation-after-end-headers")
        {
            Assert.Equal(0, probe.Calls);
        }
    }

    [Fact]
    public async Task Padded_data_and_padded_headers_are_accepted_without_their_padding()
    {
        using var listener = Start(Echo);
        await using var client = await ConnectAsync(listener);

        await client.SendAsync(FrameType.Headers, Http2Frame.Padded | Http2Frame.EndHeaders, 1, RawH2Client.Padded(RawH2Client.Block(RawH2Client.RequestFields()), padding: 7));
        await client.SendAsync(FrameType.Data, Http2Frame.Padded, 1, RawH2Client.Padded("hello"u8, padding: 5));
        await client.SendAsync(FrameType.Data, Http2Frame.Padded, 1, RawH2Client.Padded(" world"u8, padding: 0));
        await client.SendAsync(FrameType.Data, Http2Frame.Padded | Http2Frame.EndStream, 1, RawH2Client.Padded([], padding: 3)); // all padding
        var response = await client.ReadResponseAsync(1);
        Assert.Equal("hello world", Encoding.ASCII.GetString(response.Body));
        Assert.Equal("11", response.Trailer("x-received"));

        // HEADERS with padding and the priority fields.
        byte[] priority = [0, 0, 0, 0, 15];
        await client.SendAsync(
            FrameType.Headers,
            Http2Frame.Padded | Http2Frame.PriorityFlag | Http2Frame.EndHeaders | Http2Frame.EndStream,
            3,
            RawH2Client.Padded([.. priority, .. RawH2Client.Block([.. RawH2Client.RequestFields("/test.Service/Padded"), ("x-custom", "p")])], padding: 4));
        var second = await client.ReadResponseAsync(3);
        Assert.Equal("/test.Service/Padded", second.Headers["x-path"]);
        Assert.Equal("p", second.Headers["x-custom"]);
        Assert.DoesNotContain(client.History, f => f.Type is FrameType.GoAway or FrameType.RstStream);
    }

    [Theory]
    [InlineData("data-padding-equals-length")]
    [InlineData("data-padding-longer")]
    [InlineData("headers-padding-equals-length")]
    public async Task Padding_as_long_as_the_frame_is_a_protocol_error(string violation)
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        await client.SendRequestAsync(1, endStream: false, HoldPath); // an open stream, so that DATA on it is otherwise fine
        await probe.WaitStartedAsync();
        var block = RawH2Client.Block(RawH2Client.RequestFields());
        switch (violation)
        {
            case "data-padding-equals-length":
                await client.SendAsync(FrameType.Data, Http2Frame.Padded, 1, [3, 0, 0]);
                break;
            case "data-padding-longer":
                await client.SendAsync(FrameType.Data, Http2Frame.Padded, 1, [200, 1, 2]);
                break;
            default:
                await client.SendAsync(FrameType.Headers, Http2Frame.Padded | Http2Frame.EndHeaders | Http2Frame.EndStream, 3, [(byte)(block.Length + 1), .. block]);
                break;
        }

        await client.ExpectConnectionErrorAsync(Http2ErrorCode.ProtocolError);
        Assert.Equal(1, probe.Calls);
    }

    [Theory]
    [InlineData("80", true)] // indexed field 0
    [InlineData("bf", true)] // index 63: the dynamic table is empty
    [InlineData("ff ff ff ff ff 0f", true)] // an integer that overflows
    [InlineData("ff", false)] // the block ends inside an integer
    [InlineData("00 05 61", false)] // a string longer than the block
    [InlineData("20", false)] // a table size update after a field
    [InlineData("3f e2 1f", true)] // a table size update to 4097, above the 4096 bytes allowed
    public async Task Hpack_garbage_is_a_compression_error(string hex, bool first)
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        var garbage = Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));
        var request = RawH2Client.Block(RawH2Client.RequestFields());
        await client.SendHeaderBlockAsync(1, first ? [.. garbage, .. request] : [.. request, .. garbage], endStream: true);

        await client.ExpectConnectionErrorAsync(Http2ErrorCode.CompressionError);
        Assert.Equal(0, probe.Calls);
    }

    // ---- 9. Shutdown ----

    [Fact]
    public async Task A_connection_without_a_stream_for_the_idle_timeout_is_closed_with_goaway_and_one_with_a_stream_is_not()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var listener = Start(
            async exchange =>
            {
                if (exchange.RequestHeader("x-wait") is not null)
                {
                    await release.Task.WaitAsync(Timeout);
                }
            },
            idleTimeout: TimeSpan.FromMilliseconds(400));
        await using var idle = await ConnectAsync(listener);
        await idle.SendRequestAsync(1, endStream: true);
        await idle.ReadResponseAsync(1);
        await using var busy = await ConnectAsync(listener);
        await busy.SendRequestAsync(1, endStream: true, extra: ("x-wait", "1"));

        var goAway = await idle.WaitForGoAwayAsync();
        Assert.Equal(Http2ErrorCode.NoError, goAway.ErrorCode);
        Assert.Equal(1, goAway.LastStreamId);
        await idle.WaitForCloseAsync();

        // The busy connection's stream has stayed open for longer than the idle timeout: no GOAWAY for it.
        Assert.False(await busy.SeesWithinAsync(f => f.Type == FrameType.GoAway, TimeSpan.FromMilliseconds(800)), "a connection with an open stream was closed as idle");
        release.SetResult();
        await busy.ReadResponseAsync(1);
        Assert.Equal(Http2ErrorCode.NoError, (await busy.WaitForGoAwayAsync()).ErrorCode); // and once the stream ended, it idles out too
    }

    [Fact]
    public async Task A_client_resetting_streams_faster_than_ten_times_the_stream_limit_gets_goaway_enhance_your_calm()
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler, maxStreams: 50);
        Assert.Equal(500, listener.MaxResetsPerWindow);
        await using var client = await ConnectAsync(listener);

        // Open a call and reset it, 500 times: allowed (each call starts, so each reset counts).
        var streamId = 1;
        for (var i = 0; i < listener.MaxResetsPerWindow; i++, streamId += 2)
        {
            await client.SendRequestAsync(streamId, endStream: false, HoldPath);
            await probe.WaitStartedAsync();
            await client.SendRstStreamAsync(streamId, Http2ErrorCode.Cancel);
        }

        await client.PingPongAsync();
        Assert.DoesNotContain(client.History, f => f.Type == FrameType.GoAway);

        // The next one ends the connection, with the reason.
        await client.SendRequestAsync(streamId, endStream: false, HoldPath);
        await probe.WaitStartedAsync();
        await client.SendRstStreamAsync(streamId, Http2ErrorCode.Cancel);
        var goAway = await client.ExpectConnectionErrorAsync(Http2ErrorCode.EnhanceYourCalm);
        Assert.Equal("the client reset more than 500 streams within 10 s", Encoding.UTF8.GetString(goAway.Payload.AsSpan(8)));
    }

    [Fact]
    public async Task A_connection_over_the_limit_gets_goaway_enhance_your_calm_with_the_reason_and_the_others_keep_working()
    {
        using var listener = Start(Echo, maxConnections: 2);
        await using var first = await ConnectAsync(listener);
        await using var second = await ConnectAsync(listener);

        await using (var third = await RawH2Client.ConnectAsync(listener.Port))
        {
            var goAway = await third.WaitForGoAwayAsync();
            Assert.Equal(Http2ErrorCode.EnhanceYourCalm, goAway.ErrorCode);
            Assert.Equal(0, goAway.LastStreamId);
            Assert.Equal("the server serves at most 2 connections (grpc.max.connections)", Encoding.UTF8.GetString(goAway.Payload.AsSpan(8)));
            await third.WaitForCloseAsync();
        }

        await second.SendRequestAsync(1, endStream: false);
        await second.SendDataAsync(1, "still served"u8, endStream: true);
        Assert.Equal("still served", Encoding.ASCII.GetString((await second.ReadResponseAsync(1)).Body));

        // A slot that frees up is taken by the next connection.
        await first.DisposeAsync();
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            await using var next = await RawH2Client.ConnectAsync(listener.Port);
            var refused = false;
            try
            {
                await next.HandshakeAsync();
            }
            catch (Exception ex) when (ex is IOException or SocketException)
            {
                refused = true; // answered with GOAWAY and closed: the server has not seen the first one go yet
            }

            if (!refused && !await next.SeesWithinAsync(f => f.Type == FrameType.GoAway))
            {
                await next.SendRequestAsync(1, endStream: false);
                await next.SendDataAsync(1, "new"u8, endStream: true);
                Assert.Equal("new", Encoding.ASCII.GetString((await next.ReadResponseAsync(1)).Body));
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, "the closed connection's slot never came free");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task StopAsync_with_an_idle_connection_sends_goaway_no_error_and_closes_it()
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        await client.SendRequestAsync(1, endStream: true);
        await client.ReadResponseAsync(1);

        using var patience = new CancellationTokenSource(Timeout);
        var stop = listener.StopAsync(patience.Token);
        var goAway = await client.WaitForGoAwayAsync();
        Assert.Equal(Http2ErrorCode.NoError, goAway.ErrorCode);
        Assert.Equal(1, goAway.LastStreamId);

        // A request sent after the GOAWAY is not served (the socket may already be gone).
        try
        {
            await client.SendRequestAsync(3, endStream: true);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
        }

        await client.WaitForCloseAsync();
        await stop.WaitAsync(Timeout);
        Assert.False(patience.IsCancellationRequested, "StopAsync waited for its token although no call was running");
        Assert.Equal(1, probe.Calls);
        Assert.DoesNotContain(client.History, f => f.StreamId == 3 && f.Type != FrameType.RstStream);
        await Assert.ThrowsAnyAsync<SocketException>(() => RawH2Client.ConnectAsync(listener.Port));
    }

    [Fact]
    public async Task StopAsync_lets_a_running_call_finish_refuses_new_streams_and_then_closes()
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        await client.SendRequestAsync(1, endStream: true, HoldPath);
        await probe.WaitStartedAsync();

        using var patience = new CancellationTokenSource(Timeout);
        var stop = listener.StopAsync(patience.Token);
        var goAway = await client.WaitForGoAwayAsync();
        Assert.Equal(Http2ErrorCode.NoError, goAway.ErrorCode);
        Assert.Equal(1, goAway.LastStreamId);

        await client.SendRequestAsync(3, endStream: true);
        Assert.Equal(Http2ErrorCode.RefusedStream, (await client.WaitForRstStreamAsync(3)).ErrorCode);
        Assert.False(stop.IsCompleted, "StopAsync returned while a call was running");
        Assert.False(client.Closed.IsCompleted, "the connection closed while a call was running");

        probe.Release.TrySetResult();
        Assert.Equal("0", (await client.ReadResponseAsync(1)).Trailer("grpc-status"));
        await client.WaitForCloseAsync();
        await stop.WaitAsync(Timeout);
        Assert.False(patience.IsCancellationRequested);
        Assert.Equal(1, probe.Calls);
    }

    [Fact]
    public async Task Client_goaway_closes_the_connection_after_its_last_stream()
    {
        var probe = new Probe(Echo);
        using var listener = Start(probe.Handler);
        await using var client = await ConnectAsync(listener);
        await client.SendRequestAsync(1, endStream: true, HoldPath);
        await probe.WaitStartedAsync();

        await client.SendGoAwayAsync(0, Http2ErrorCode.NoError);
        await client.PingPongAsync();
        Assert.False(client.Closed.IsCompleted, "the server closed the connection while a stream was open");

        probe.Release.TrySetResult();
        Assert.Equal("0", (await client.ReadResponseAsync(1)).Trailer("grpc-status"));
        await client.WaitForCloseAsync();
    }

    // ---------------------------------------------------------------- helpers

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public Task A_grpc_message_larger_than_the_stream_window_is_read_whole(bool inlineIo) =>
        // The gRPC reader consumes nothing until a whole message is there, so credit must follow what it
        // examined: a 3 MiB message (windows: 2 MiB per stream) would otherwise wait for credit forever.
        AssertLargeMessagesAreReadWholeAsync(inlineIo, 1);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public Task Four_grpc_messages_larger_than_the_stream_window_sent_at_once_on_four_streams_are_all_read_whole(bool inlineIo) =>
        // Together they are three times the connection's window, whose credit follows what the four
        // handlers examine: sent interleaved, frame by frame within both windows, none may starve.
        AssertLargeMessagesAreReadWholeAsync(inlineIo, 1, 3, 5, 7);

    /// <summary>
    /// Sends one 3 MiB gRPC message on each of <paramref name="streams"/>, interleaved frame by frame and
    /// only within the credit the server gave, to handlers that read one message each and report its length.
    /// </summary>
    private static async Task AssertLargeMessagesAreReadWholeAsync(bool inlineIo, params int[] streams)
    {
        const int Size = 3 << 20;
        using var listener = Start(
            async exchange =>
            {
                var reader = new GrpcMessageReader<byte[]>(exchange.RequestBody, bytes => bytes.ToArray(), 8 << 20, null);
                var message = await reader.ReadAsync(exchange.Aborted) ?? [];
                exchange.AppendTrailer("x-length", message.Length.ToString(CultureInfo.InvariantCulture));
            },
            inlineIo: inlineIo);
        await using var client = await RawH2Client.ConnectAsync(listener.Port);
        var settings = await client.HandshakeAsync();
        foreach (var id in streams)
        {
            await client.SendRequestAsync(id, endStream: false);
        }

        var frame = new byte[5 + Size];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(1), Size);
        var streamWindows = streams.ToDictionary(id => id, _ => (long)settings.Settings()[Http2Frame.SettingsInitialWindowSize]);
        var sent = streams.ToDictionary(id => id, _ => 0);
        long connectionWindow = Http2Frame.DefaultWindowSize;
        while (sent.Values.Any(n => n < frame.Length))
        {
            foreach (var update in client.TakeAll(f => f.Type == FrameType.WindowUpdate))
            {
                Apply(update);
            }

            var progressed = false;
            foreach (var id in streams)
            {
                var length = (int)Math.Min(Math.Min(Http2Frame.DefaultMaxFrameSize, frame.Length - sent[id]), Math.Min(streamWindows[id], connectionWindow));
                if (length > 0)
                {
                    await client.SendDataAsync(id, frame.AsSpan(sent[id], length), endStream: sent[id] + length == frame.Length);
                    sent[id] += length;
                    streamWindows[id] -= length;
                    connectionWindow -= length;
                    progressed = true;
                }
            }

            if (!progressed)
            {
                Apply(await client.WaitForFrameAsync(f => f.Type == FrameType.WindowUpdate, what: $"a WINDOW_UPDATE after {string.Join(", ", sent.Values)} bytes"));
            }
        }

        foreach (var id in streams)
        {
            Assert.Equal(Size.ToString(CultureInfo.InvariantCulture), (await client.ReadResponseAsync(id)).Trailer("x-length"));
        }

        void Apply(H2Frame update)
        {
            if (update.StreamId == 0)
            {
                connectionWindow += update.WindowIncrement;
            }
            else
            {
                streamWindows[update.StreamId] += update.WindowIncrement;
            }
        }
    }

    private static Http2Listener Start(Func<IHttp2Exchange, Task> handler, int maxStreams = 1000, bool inlineIo = true, TimeSpan? idleTimeout = null, int maxConnections = 10_000) =>
        Http2Listener.Start(
            (GrpcServerOptions.Default with
            {
                Host = "127.0.0.1",
                Port = 0,
                MaxStreamsPerConnection = maxStreams,
                InlineIo = inlineIo,
                IdleTimeout = idleTimeout ?? GrpcServerOptions.Default.IdleTimeout,
                MaxConnections = maxConnections,
            }).ToHttp2ListenerOptions(),
            handler,
            NullLoggerFactory.Instance);

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        for (var deadline = DateTime.UtcNow + Timeout; !condition(); await Task.Delay(20))
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting until {what}");
        }
    }

    private static Task<RawH2Client> ConnectAsync(Http2Listener listener, params (ushort Id, uint Value)[] settings) =>
        RawH2Client.ConnectAndHandshakeAsync(listener.Port, settings);

    /// <summary>
    /// Opens a stream with a whole request (END_STREAM) once the server has a free stream slot, and returns its id. A
    /// slot frees just after the server sent a call's last frame, so a request sent right after that may be refused
    /// (REFUSED_STREAM, which a client may retry): then this retries on the next stream id.
    /// </summary>
    private static async Task<int> OpenWhenSlotFreeAsync(RawH2Client client, int streamId, byte[] block)
    {
        for (var attempt = 1; ; attempt++)
        {
            await client.SendHeaderBlockAsync(streamId, block, endStream: true);
            Assert.True(await client.SeesWithinAsync(f => f.StreamId == streamId, Timeout), $"no answer on stream {streamId}");
            if (client.TakeAll(f => f.StreamId == streamId && f.Type == FrameType.RstStream && f.ErrorCode == Http2ErrorCode.RefusedStream).Count == 0)
            {
                return streamId;
            }

            Assert.True(attempt < 20, "the server kept refusing streams although no call was running");
            await Task.Delay(50);
            streamId += 2;
        }
    }

    /// <summary>Echoes the request body as it arrives (a flush per read), and reports the path, method and x-custom.</summary>
    private static async Task Echo(IHttp2Exchange exchange)
    {
        exchange.SetResponseHeader("content-type", "application/grpc");
        exchange.SetResponseHeader("x-path", exchange.Path);
        exchange.SetResponseHeader("x-method", exchange.Method);
        if (exchange.RequestHeader("x-custom") is { } custom)
        {
            exchange.SetResponseHeader("x-custom", custom);
        }

        long received = 0;
        while (true)
        {
            var result = await exchange.RequestBody.ReadAsync(exchange.Aborted);
            var buffer = result.Buffer;
            foreach (var segment in buffer)
            {
                exchange.ResponseBody.Write(segment.Span);
            }

            received += buffer.Length;
            exchange.RequestBody.AdvanceTo(buffer.End);
            if (!buffer.IsEmpty)
            {
                await exchange.ResponseBody.FlushAsync(exchange.Aborted);
            }

            if (result.IsCompleted)
            {
                break;
            }
        }

        exchange.AppendTrailer("grpc-status", "0");
        exchange.AppendTrailer("x-received", received.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>Reads the request body to its end and answers trailers-only with the byte count.</summary>
    private static async Task Count(IHttp2Exchange exchange)
    {
        long received = 0;
        while (true)
        {
            var result = await exchange.RequestBody.ReadAsync(exchange.Aborted);
            received += result.Buffer.Length;
            exchange.RequestBody.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        exchange.AppendTrailer("grpc-status", "0");
        exchange.AppendTrailer("x-received", received.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>Collects DATA frames on <paramref name="streamId"/> until exactly <paramref name="count"/> bytes arrived.</summary>
    private static async Task<byte[]> ReadDataAsync(RawH2Client client, int streamId, int count)
    {
        var data = new List<byte>();
        while (data.Count < count)
        {
            var frame = await client.NextOnStreamAsync(streamId);
            Assert.True(frame.Type == FrameType.Data, $"expected DATA on stream {streamId} after {data.Count} of {count} bytes, got {frame}");
            Assert.False(frame.EndStream);
            data.AddRange(frame.Payload);
        }

        Assert.Equal(count, data.Count);
        return [.. data];
    }

    private static byte[] Pattern(int length)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)(i % 251);
        }

        return bytes;
    }

    /// <summary>
    /// A call to <see cref="HoldPath"/> reads its request body without a token until the read fails, records the failure
    /// and whether Aborted was cancelled at that moment, then waits for Aborted (so that the call outlives the abort).
    /// Other paths are echoed.
    /// </summary>
    private sealed class ReadingCall
    {
        private int _otherCalls;

        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Aborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource<(Exception? Failure, bool AbortedThen)> ReadFailed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int OtherCalls => Volatile.Read(ref _otherCalls);

        public async Task Handler(IHttp2Exchange exchange)
        {
            if (exchange.Path != HoldPath)
            {
                Interlocked.Increment(ref _otherCalls);
                await Echo(exchange);
                return;
            }

            _ = exchange.Aborted.Register(() => Aborted.TrySetResult());
            Started.TrySetResult();
            try
            {
                while (true)
                {
                    var result = await exchange.RequestBody.ReadAsync(); // no token: the read itself must fail
                    exchange.RequestBody.AdvanceTo(result.Buffer.End);
                    if (result.IsCompleted)
                    {
                        ReadFailed.TrySetResult((null, exchange.Aborted.IsCancellationRequested));
                        return;
                    }
                }
            }
            catch (Exception ex)
            {
                ReadFailed.TrySetResult((ex, exchange.Aborted.IsCancellationRequested));
            }

            await Aborted.Task.WaitAsync(Timeout);
        }
    }

    /// <summary>
    /// Wraps a handler: counts calls, and holds calls to <see cref="HoldPath"/> until <see cref="Release"/>
    /// completes or the stream is aborted (which completes <see cref="Aborted"/>).
    /// </summary>
    private sealed class Probe(Func<IHttp2Exchange, Task> inner)
    {
        private readonly Channel<IHttp2Exchange> _started = Channel.CreateUnbounded<IHttp2Exchange>();
        private int _calls;

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completed when a held call's Aborted token fires.</summary>
        public TaskCompletionSource Aborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Calls => Volatile.Read(ref _calls);

        public Func<IHttp2Exchange, Task> Handler => exchange =>
        {
            Interlocked.Increment(ref _calls);
            return exchange.Path == HoldPath ? HoldAsync(exchange) : inner(exchange);
        };

        /// <summary>Waits until <paramref name="count"/> more held calls have started.</summary>
        public async Task WaitStartedAsync(int count = 1)
        {
            using var timeout = new CancellationTokenSource(Timeout);
            for (var i = 0; i < count; i++)
            {
                await _started.Reader.ReadAsync(timeout.Token);
            }
        }

        private async Task HoldAsync(IHttp2Exchange exchange)
        {
            // Not disposed when the call ends: the token runs its callbacks last-registered first, so the wait below
            // ends the call (inline) before this callback would run, and disposing it then would unregister it.
            _ = exchange.Aborted.Register(() => Aborted.TrySetResult());
            _started.Writer.TryWrite(exchange);
            await Release.Task.WaitAsync(exchange.Aborted);
            exchange.AppendTrailer("grpc-status", "0");
        }
    }
}
