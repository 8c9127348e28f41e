using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Sluice.Client.Grpc;
using Sluice.Client.Http2;
using Sluice.Protocol.Http2;

namespace Sluice.Client.Tests.Http2;

/// <summary>
/// <see cref="Http2Handler"/> and <see cref="Http2Connection"/> against <see cref="ScriptedH2Server"/>, a loopback
/// server whose every frame the test writes: settings, HPACK state, CONTINUATION and padding, flow control in
/// both directions, PING and keepalive, GOAWAY, RST_STREAM, concurrency limits, connection errors and cancellation.
/// </summary>
public sealed class Http2ConnectionTests
{
    private static readonly TimeSpan Timeout = ScriptedH2Server.Timeout;
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);
    private const string Method = "/sluice.Test/Unary";

    // ---- 1. Settings exchange ----

    [Fact]
    public async Task Client_sends_preface_settings_and_window_update_then_acks_and_waits_for_server_settings()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var responseTask = client.SendAsync(Request(server, Method, [1, 2, 3]), CancellationToken.None);
        var connection = await server.AcceptAsync(); // the preface was checked on accept

        var settings = await connection.WaitForFrameAsync(f => f.Type == FrameType.Settings, what: "the client's SETTINGS");
        var update = await connection.WaitForFrameAsync(f => f.Type == FrameType.WindowUpdate, what: "the connection WINDOW_UPDATE");
        Assert.Equal(settings, connection.History[0]); // SETTINGS is the first frame after the preface
        Assert.False(settings.IsAck);
        Assert.Equal(0, settings.StreamId);
        var values = settings.Settings();
        Assert.Equal(0u, values[Http2Frame.SettingsEnablePush]);
        Assert.Equal(4u << 20, values[Http2Frame.SettingsInitialWindowSize]);
        Assert.Equal(0, update.StreamId);
        Assert.Equal((16 << 20) - 65_535, update.WindowIncrement);

        // No request before the server's SETTINGS.
        Assert.False(await connection.SeesWithinAsync(f => f.Type == FrameType.Headers, Quiet), "HEADERS were sent before the server's SETTINGS");

        await connection.SendSettingsAsync((Http2Frame.SettingsMaxConcurrentStreams, 100));
        var ack = await connection.WaitForFrameAsync(f => f.Type == FrameType.Settings && f.IsAck, what: "the SETTINGS ACK");
        Assert.Empty(ack.Payload);
        Assert.Equal(0, ack.StreamId);
        var headers = await connection.ReadHeadersAsync();
        Assert.Equal(1, headers.StreamId);

        await connection.SendOkAsync(1);
        using var response = await responseTask.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    // ---- 2. A unary request, response headers with Huffman and incremental indexing, and the dynamic table ----

    [Fact]
    public async Task Unary_request_and_response_with_huffman_and_dynamic_table_across_two_requests()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        byte[] requestBody = [0, 0, 0, 0, 3, 10, 1, 65];
        var responseTask = client.SendAsync(Request(server, Method, requestBody), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();

        var request = await connection.ReadHeadersAsync();
        Assert.Equal(1, request.StreamId);
        Assert.False(request.EndStream);
        Assert.Equal("POST", request[":method"]);
        Assert.Equal("http", request[":scheme"]);
        Assert.Equal(Method, request[":path"]);
        Assert.Equal($"127.0.0.1:{server.Port}", request[":authority"]);
        Assert.Equal("trailers", request["te"]);
        Assert.Equal("application/grpc", request["content-type"]);
        Assert.Null(request["host"]);
        var firstRegular = request.Fields.FindIndex(f => !f.Key.StartsWith(':'));
        Assert.DoesNotContain(request.Fields.Skip(firstRegular), f => f.Key.StartsWith(':')); // pseudo-headers first
        Assert.Equal(requestBody, await connection.ReadBodyAsync(1));

        // Response: a table size update, then :status from the static table, and three literals added to the
        // dynamic table (Huffman-coded or raw): afterwards x-trace is 62, grpc-encoding 63, content-type 64.
        var headerBlock = new HeaderBlock()
            .TableSizeUpdate(4096)
            .Indexed(8)
            .WithIncrementalIndexing(31, "application/grpc", huffman: true)
            .WithIncrementalIndexing("grpc-encoding", "identity", huffman: true)
            .WithIncrementalIndexing("x-trace", "abc-123", huffman: false)
            .WithoutIndexing("x-once", "not indexed", huffman: true);
        await connection.SendHeaderBlockAsync(1, headerBlock.Span, endStream: false);
        byte[] body1 = [0, 0, 0, 0, 2, 8, 1];
        await connection.SendDataAsync(1, body1, endStream: false);
        // Trailers: grpc-status joins the table at 62 (the others move to 63..65).
        await connection.SendHeaderBlockAsync(1, new HeaderBlock().WithIncrementalIndexing("grpc-status", "0", huffman: true).NeverIndexed("grpc-message", "ok").Span, endStream: true);

        using (var response = await responseTask.WaitAsync(Timeout))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(HttpVersion.Version20, response.Version);
            Assert.Equal("application/grpc", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal(["identity"], response.Headers.GetValues("grpc-encoding"));
            Assert.Equal(["abc-123"], response.Headers.GetValues("x-trace"));
            Assert.Equal(["not indexed"], response.Headers.GetValues("x-once"));
            Assert.Equal(body1, await ReadToEndAsync(response));
            Assert.Equal(["0"], response.TrailingHeaders.GetValues("grpc-status"));
            Assert.Equal(["ok"], response.TrailingHeaders.GetValues("grpc-message"));
        }

        // Second request on the same connection: the server refers to the entries the first response added.
        var second = client.SendAsync(Request(server, "/sluice.Test/Second", [7]), CancellationToken.None);
        var request2 = await connection.ReadHeadersAsync();
        Assert.Equal(3, request2.StreamId);
        Assert.Equal("/sluice.Test/Second", request2[":path"]);
        Assert.Equal([7], await connection.ReadBodyAsync(3));
        await connection.SendHeaderBlockAsync(3, new HeaderBlock().Indexed(8).Indexed(65).Indexed(64).Indexed(63).Span, endStream: false);
        byte[] body2 = [1, 2, 3, 4, 5];
        await connection.SendDataAsync(3, body2, endStream: false);
        await connection.SendHeaderBlockAsync(3, new HeaderBlock().Indexed(62).Span, endStream: true);

        using var response2 = await second.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, response2.StatusCode);
        Assert.Equal("application/grpc", response2.Content.Headers.ContentType?.MediaType);
        Assert.Equal(["identity"], response2.Headers.GetValues("grpc-encoding"));
        Assert.Equal(["abc-123"], response2.Headers.GetValues("x-trace"));
        Assert.False(response2.Headers.Contains("x-once"));
        Assert.Equal(body2, await ReadToEndAsync(response2));
        Assert.Equal(["0"], response2.TrailingHeaders.GetValues("grpc-status"));
        Assert.Equal(1, server.AcceptedCount);
    }

    // ---- 3. CONTINUATION and padding ----

    [Fact]
    public async Task Continuation_frames_and_padded_headers_and_data_decode()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var responseTask = client.SendAsync(Request(server, Method, [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync();

        // Response headers: a padded HEADERS frame and two CONTINUATIONs, split inside string literals.
        var longValue = new string('v', 300);
        var block = new HeaderBlock()
            .Indexed(8)
            .WithIncrementalIndexing(31, "application/grpc", huffman: true)
            .WithoutIndexing("x-long", longValue, huffman: false)
            .WithIncrementalIndexing("x-after", "continued", huffman: true)
            .ToArray();
        var (a, b) = (40, 200);
        await connection.SendAsync(FrameType.Headers, Http2Frame.Padded, 1, Padded(block.AsSpan(0, a), padding: 4));
        await connection.SendAsync(FrameType.Continuation, 0, 1, block.AsSpan(a, b - a));
        await connection.SendAsync(FrameType.Continuation, Http2Frame.EndHeaders, 1, block.AsSpan(b));

        // Padded DATA (padding 5, then padding 0, then one that is all padding).
        await connection.SendAsync(FrameType.Data, Http2Frame.Padded, 1, Padded("hello"u8, padding: 5));
        await connection.SendAsync(FrameType.Data, Http2Frame.Padded, 1, Padded(" world"u8, padding: 0));
        await connection.SendAsync(FrameType.Data, Http2Frame.Padded, 1, Padded([], padding: 7));

        // Trailers: HEADERS with END_STREAM, padding and priority fields, finished by a CONTINUATION.
        var trailers = new HeaderBlock().WithIncrementalIndexing("grpc-status", "0", huffman: true).WithoutIndexing("x-trailer", "t", huffman: false).ToArray();
        byte[] priority = [0, 0, 0, 0, 15];
        await connection.SendAsync(FrameType.Headers, Http2Frame.EndStream | Http2Frame.Padded | Http2Frame.PriorityFlag, 1, Padded([.. priority, .. trailers.AsSpan(0, 3)], padding: 3));
        await connection.SendAsync(FrameType.Continuation, Http2Frame.EndHeaders, 1, trailers.AsSpan(3));

        using var response = await responseTask.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/grpc", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal([longValue], response.Headers.GetValues("x-long"));
        Assert.Equal(["continued"], response.Headers.GetValues("x-after"));
        Assert.Equal("hello world", Encoding.ASCII.GetString(await ReadToEndAsync(response)));
        Assert.Equal(["0"], response.TrailingHeaders.GetValues("grpc-status"));
        Assert.Equal(["t"], response.TrailingHeaders.GetValues("x-trailer"));

        // The connection still works and its decoder followed the table: 62 = grpc-status, 63 = x-after, 64 = content-type.
        var second = client.SendAsync(Request(server, Method, [2]), CancellationToken.None);
        Assert.Equal(3, (await connection.ReadHeadersAsync()).StreamId);
        await connection.SendHeaderBlockAsync(3, new HeaderBlock().Indexed(8).Indexed(64).Indexed(63).Indexed(62).Span, endStream: true);
        using var response2 = await second.WaitAsync(Timeout);
        Assert.Equal("application/grpc", response2.Content.Headers.ContentType?.MediaType);
        Assert.Equal(["continued"], response2.Headers.GetValues("x-after"));
        Assert.Equal(["0"], response2.Headers.GetValues("grpc-status"));
    }

    [Fact]
    public async Task Request_without_content_ends_the_stream_with_its_headers()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri(server.Address, "/health?x=1"))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        var responseTask = client.SendAsync(request, CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        var headers = await connection.ReadHeadersAsync(1);
        Assert.True(headers.EndStream);
        Assert.Equal("GET", headers[":method"]);
        Assert.Equal("/health?x=1", headers[":path"]);

        await connection.SendHeadersAsync(1, endStream: false, (":status", "404"), ("content-type", "text/plain"));
        await connection.SendDataAsync(1, "gone"u8, endStream: true);
        using var response = await responseTask.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("gone", Encoding.ASCII.GetString(await ReadToEndAsync(response)));
        Assert.DoesNotContain(connection.History, f => f.Type == FrameType.Data);
    }

    // ---- 4. Trailers-only response ----

    [Fact]
    public async Task Trailers_only_response_has_grpc_status_in_headers_and_an_empty_body()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var responseTask = client.SendAsync(Request(server, Method, [1, 2]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync();
        await connection.ReadBodyAsync(1);
        await connection.SendHeadersAsync(1, endStream: true, (":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "5"), ("grpc-message", "not found"));

        using var response = await responseTask.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(["5"], response.Headers.GetValues("grpc-status"));
        Assert.Equal(["not found"], response.Headers.GetValues("grpc-message"));
        Assert.Empty(await ReadToEndAsync(response));
        Assert.Empty(response.TrailingHeaders);
    }

    // ---- 5. RST_STREAM from the server ----

    [Theory]
    [InlineData(0x8)] // CANCEL
    [InlineData(0x7)] // REFUSED_STREAM
    public async Task Server_reset_fails_the_body_read_with_its_code_and_the_connection_stays_usable(int errorCode)
    {
        var code = (Http2ErrorCode)errorCode;
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var responseTask = client.SendAsync(Request(server, Method, [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync();
        await connection.ReadBodyAsync(1);
        await connection.SendHeadersAsync(1, endStream: false, (":status", "200"), ("content-type", "application/grpc"));
        await connection.SendDataAsync(1, [9, 9, 9], endStream: false);

        using var response = await responseTask.WaitAsync(Timeout);
        var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[64];
        Assert.Equal(3, await body.ReadAsync(buffer).AsTask().WaitAsync(Timeout));
        var pending = body.ReadAsync(buffer).AsTask();
        Assert.False(pending.IsCompleted);
        await connection.SendRstStreamAsync(1, code);

        var ex = await Assert.ThrowsAnyAsync<Exception>(() => pending.WaitAsync(Timeout));
        var protocol = FindInChain<HttpProtocolException>(ex);
        Assert.True(protocol is not null, $"no HttpProtocolException in {ex}");
        Assert.Equal((long)code, protocol.ErrorCode);

        // A new request goes on the same connection, as stream 3.
        var second = client.SendAsync(Request(server, Method, [2]), CancellationToken.None);
        var headers = await connection.ReadHeadersAsync();
        Assert.Equal(3, headers.StreamId);
        await connection.SendOkAsync(3);
        using var response2 = await second.WaitAsync(Timeout);
        Assert.Equal(["0"], response2.Headers.GetValues("grpc-status"));
        Assert.Equal(1, server.AcceptedCount);
        Assert.DoesNotContain(connection.History, f => f.Type == FrameType.RstStream || f.Type == FrameType.GoAway);
    }

    /// <summary>
    /// A server that answers before the request ends sends its trailers and then RST_STREAM NO_ERROR (RFC 9113
    /// section 8.1): the response stays complete and readable, and the client sends nothing more on the stream.
    /// </summary>
    [Fact]
    public async Task Reset_no_error_after_trailers_keeps_the_response_and_stops_the_request_body()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var more = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var contentDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var content = new ScriptedContent(async body =>
        {
            try
            {
                await body.WriteAsync(Pattern(5));
                await more.Task;
                await body.WriteAsync(Pattern(5));
            }
            finally
            {
                contentDone.TrySetResult();
            }
        });
        try
        {
            var responseTask = client.SendAsync(Request(server, Method, content), CancellationToken.None);
            var connection = await server.AcceptAndHandshakeAsync();
            await connection.ReadHeadersAsync(1);
            await connection.WaitForFrameAsync(f => f.Type == FrameType.Data, what: "the first 5 bytes");

            await connection.SendHeadersAsync(1, endStream: false, (":status", "200"));
            await connection.SendDataAsync(1, [1, 2, 3], endStream: false);
            await connection.SendHeadersAsync(1, endStream: true, ("grpc-status", "7"));
            await connection.SendRstStreamAsync(1, Http2ErrorCode.NoError);
            await connection.SendAsync(FrameType.Ping, 0, 0, new byte[8]);
            await connection.WaitForFrameAsync(f => f.Type == FrameType.Ping && f.IsAck, what: "PING ACK"); // the reset was processed

            using var response = await responseTask.WaitAsync(Timeout);
            Assert.Equal([1, 2, 3], await ReadToEndAsync(response));
            Assert.Equal(["7"], response.TrailingHeaders.GetValues("grpc-status"));

            more.SetResult();
            await contentDone.Task.WaitAsync(Timeout);
            Assert.False(await connection.SeesWithinAsync(f => f.StreamId == 1, Quiet), "the client sent a frame on a stream the server reset");
        }
        finally
        {
            more.TrySetResult();
        }
    }

    // ---- 6. Flow control when sending ----

    [Theory]
    [InlineData(1, 25, 10, 15)]              // the stream's window (SETTINGS_INITIAL_WINDOW_SIZE 10) holds the body back
    [InlineData(0, 70_000, 65_535, 10_000)]  // the connection's initial 65,535 bytes hold it back
    public async Task Request_body_waits_for_a_window_update(int windowStream, int bodyLength, int window, int update)
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var requestBody = Pattern(bodyLength);
        var responseTask = client.SendAsync(Request(server, Method, requestBody), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync((Http2Frame.SettingsInitialWindowSize, (uint)(windowStream == 0 ? 1 << 20 : window)));
        await connection.ReadHeadersAsync();

        var received = new List<byte>();
        while (received.Count < window)
        {
            var frame = await connection.WaitForFrameAsync(f => f.Type == FrameType.Data && f.StreamId == 1, what: "DATA within the window");
            Assert.False(frame.EndStream);
            received.AddRange(frame.Payload);
        }

        Assert.Equal(window, received.Count);
        Assert.False(await connection.SeesWithinAsync(f => f.Type == FrameType.Data, Quiet), "DATA beyond the window");

        await connection.SendWindowUpdateAsync(windowStream, update);
        received.AddRange(await connection.ReadBodyAsync(1));
        Assert.Equal(requestBody, received);

        await connection.SendOkAsync(1);
        using var response = await responseTask.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Theory]
    [InlineData(null)]
    [InlineData(20_000)]
    public async Task Request_data_frames_respect_the_servers_max_frame_size(int? maxFrameSize)
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var requestBody = Pattern(40_000);
        var responseTask = client.SendAsync(Request(server, Method, requestBody), CancellationToken.None);
        (ushort, uint)[] settings = maxFrameSize is { } max
            ? [(Http2Frame.SettingsInitialWindowSize, 1 << 20), (Http2Frame.SettingsMaxFrameSize, (uint)max)]
            : [(Http2Frame.SettingsInitialWindowSize, 1 << 20)];
        var connection = await server.AcceptAndHandshakeAsync(settings);
        await connection.SendWindowUpdateAsync(0, 1 << 20);
        await connection.ReadHeadersAsync();

        Assert.Equal(requestBody, await connection.ReadBodyAsync(1));
        var frames = connection.History.Where(f => f.Type == FrameType.Data).Select(f => f.Payload.Length).ToList();
        var limit = maxFrameSize ?? 16_384;
        Assert.All(frames, length => Assert.InRange(length, 0, limit));
        if (maxFrameSize is not null)
        {
            Assert.Contains(frames, length => length > 16_384); // the larger limit is used
        }

        await connection.SendOkAsync(1);
        using var response = await responseTask.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Smaller_initial_window_in_new_settings_makes_the_stream_wait_until_a_larger_one()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var more = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var requestBody = Pattern(35);
        var content = new ScriptedContent(async body =>
        {
            await body.WriteAsync(requestBody.AsMemory(0, 20));
            await more.Task;
            await body.WriteAsync(requestBody.AsMemory(20));
        });
        try
        {
            var responseTask = client.SendAsync(Request(server, Method, content), CancellationToken.None);
            var connection = await server.AcceptAndHandshakeAsync(); // initial window 65,535
            await connection.ReadHeadersAsync(1);
            var received = new List<byte>();
            while (received.Count < 20)
            {
                received.AddRange((await connection.WaitForFrameAsync(f => f.Type == FrameType.Data, what: "the first 20 bytes")).Payload);
            }

            // 65,535 - 20 sent, then the initial window drops to 10: the stream's window is -10.
            await connection.SendSettingsAsync((Http2Frame.SettingsInitialWindowSize, 10));
            await connection.WaitForFrameAsync(f => f.Type == FrameType.Settings && f.IsAck, what: "the first SETTINGS ACK");
            await connection.WaitForFrameAsync(f => f.Type == FrameType.Settings && f.IsAck, what: "the second SETTINGS ACK");
            more.SetResult();
            Assert.False(await connection.SeesWithinAsync(f => f.Type == FrameType.Data, Quiet), "DATA sent with a negative stream window");

            await connection.SendSettingsAsync((Http2Frame.SettingsInitialWindowSize, 100)); // window -10 + 90 = 80
            received.AddRange(await connection.ReadBodyAsync(1));
            Assert.Equal(requestBody, received);

            await connection.SendOkAsync(1);
            using var response = await responseTask.WaitAsync(Timeout);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.DoesNotContain(connection.History, f => f.Type == FrameType.RstStream);
        }
        finally
        {
            more.TrySetResult();
        }
    }

    /// <summary>
    /// RFC 9113 section 6.9.1: an empty DATA frame with END_STREAM may be sent even when no window is available.
    /// Here the stream's window is negative (the server lowered SETTINGS_INITIAL_WINDOW_SIZE) when the request ends.
    /// </summary>
    [Fact]
    public async Task Request_end_is_sent_while_the_stream_window_is_negative()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var end = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var content = new ScriptedContent(async body =>
        {
            await body.WriteAsync(Pattern(20));
            await end.Task;
        });
        try
        {
            var responseTask = client.SendAsync(Request(server, Method, content), CancellationToken.None);
            var connection = await server.AcceptAndHandshakeAsync();
            await connection.ReadHeadersAsync(1);
            var received = 0;
            while (received < 20)
            {
                received += (await connection.WaitForFrameAsync(f => f.Type == FrameType.Data, what: "the first 20 bytes")).Payload.Length;
            }

            await connection.SendSettingsAsync((Http2Frame.SettingsInitialWindowSize, 10)); // stream window: -10
            await connection.WaitForFrameAsync(f => f.Type == FrameType.Settings && f.IsAck, what: "the first SETTINGS ACK");
            await connection.WaitForFrameAsync(f => f.Type == FrameType.Settings && f.IsAck, what: "the second SETTINGS ACK");
            end.SetResult();

            var last = await connection.WaitForFrameAsync(f => f.StreamId == 1 && f.Type is FrameType.Data or FrameType.RstStream, what: "END_STREAM");
            Assert.True(last.Type == FrameType.Data, $"expected an empty DATA frame with END_STREAM, got {last}{(last.Type == FrameType.RstStream ? $" ({(Http2ErrorCode)last.ErrorCode})" : string.Empty)}");
            Assert.True(last.EndStream);
            Assert.Empty(last.Payload);

            await connection.SendOkAsync(1);
            using var response = await responseTask.WaitAsync(Timeout);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        finally
        {
            end.TrySetResult();
        }
    }

    // ---- 7. Flow control when receiving ----

    [Fact]
    public async Task Reading_a_large_body_returns_stream_credit_to_the_server()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var responseTask = client.SendAsync(Request(server, Method, [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync();
        await connection.ReadBodyAsync(1);
        await connection.SendHeadersAsync(1, endStream: false, (":status", "200"), ("content-type", "application/grpc"));
        using var response = await responseTask.WaitAsync(Timeout);
        var body = await response.Content.ReadAsStreamAsync();

        const int Part = 3 << 20;
        var data = Pattern(2 * Part);
        var sending = connection.SendRawAsync(DataFrames(1, data.AsSpan(0, Part), endStream: false));
        var read = new byte[2 * Part];
        await body.ReadExactlyAsync(read.AsMemory(0, Part)).AsTask().WaitAsync(Timeout);
        await sending;

        // Having read 3 MiB of a 4 MiB window, the client has given back enough for 3 MiB more.
        long credit = 0;
        var updates = 0;
        while (credit < Part - (1 << 20))
        {
            var update = await connection.WaitForFrameAsync(f => f.Type == FrameType.WindowUpdate && f.StreamId == 1, TimeSpan.FromSeconds(5), "a stream WINDOW_UPDATE");
            credit += update.WindowIncrement;
            updates++;
        }

        Assert.True(updates >= 1);
        Assert.True((4 << 20) - Part + credit >= Part, $"credit {credit}");

        await connection.SendRawAsync(DataFrames(1, data.AsSpan(Part), endStream: true));
        await body.ReadExactlyAsync(read.AsMemory(Part)).AsTask().WaitAsync(Timeout);
        Assert.Equal(0, await body.ReadAsync(new byte[1]).AsTask().WaitAsync(Timeout));
        Assert.True(data.AsSpan().SequenceEqual(read));
        Assert.DoesNotContain(connection.History, f => f.Type == FrameType.RstStream || f.Type == FrameType.GoAway);
    }

    [Fact]
    public async Task Server_overrunning_the_stream_window_gets_flow_control_error_reset()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var responseTask = client.SendAsync(Request(server, Method, [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync();
        await connection.ReadBodyAsync(1);
        await connection.SendHeadersAsync(1, endStream: false, (":status", "200"), ("content-type", "application/grpc"));
        using var response = await responseTask.WaitAsync(Timeout);

        // 4 MiB and one more frame, with no WINDOW_UPDATE from the client (the test does not read).
        await connection.SendRawAsync(DataFrames(1, Pattern((4 << 20) + 16_384), endStream: false));
        var reset = await connection.WaitForFrameAsync(f => f.Type == FrameType.RstStream, what: "RST_STREAM FLOW_CONTROL_ERROR");
        Assert.Equal(1, reset.StreamId);
        Assert.Equal((uint)Http2ErrorCode.FlowControlError, reset.ErrorCode);

        var body = await response.Content.ReadAsStreamAsync();
        await Assert.ThrowsAnyAsync<IOException>(() => ReadAllAsync(body));
        Assert.DoesNotContain(connection.History, f => f.Type == FrameType.GoAway); // a stream error, not a connection error
    }

    [Fact]
    public async Task Response_headers_over_the_header_list_limit_fail_only_their_stream()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var first = client.SendAsync(Request(server, Method, [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync();
        await connection.ReadBodyAsync(1);

        // A 70,000-byte header: the response fails with a clear reason and the client resets that stream only.
        var block = new System.Buffers.ArrayBufferWriter<byte>();
        foreach (var (name, value) in new[] { (":status", "200"), ("content-type", "application/grpc"), ("x-big", new string('b', 70_000)) })
        {
            HpackEncoder.Encode(block, name, value);
        }

        var bytes = block.WrittenMemory.ToArray();
        await connection.SendAsync(FrameType.Headers, 0, 1, bytes.AsSpan(0, 16_000));
        for (var offset = 16_000; offset < bytes.Length; offset += 16_000)
        {
            var length = Math.Min(16_000, bytes.Length - offset);
            await connection.SendAsync(FrameType.Continuation, offset + length == bytes.Length ? Http2Frame.EndHeaders : (byte)0, 1, bytes.AsSpan(offset, length));
        }

        var error = await Assert.ThrowsAnyAsync<Exception>(() => first.WaitAsync(Timeout));
        Assert.Contains("header list larger than 65536 bytes", error.ToString(), StringComparison.Ordinal);
        var reset = await connection.WaitForFrameAsync(f => f.Type == FrameType.RstStream, what: "RST_STREAM");
        Assert.Equal(1, reset.StreamId);
        Assert.Equal((uint)Http2ErrorCode.ProtocolError, reset.ErrorCode);

        // The next request on the same connection works.
        var second = client.SendAsync(Request(server, Method, [2]), CancellationToken.None);
        await connection.ReadHeadersAsync();
        await connection.ReadBodyAsync(3);
        await connection.SendHeadersAsync(3, endStream: true, (":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "0"));
        using var response = await second.WaitAsync(Timeout);
        Assert.DoesNotContain(connection.History, f => f.Type == FrameType.GoAway);
    }

    // ---- 8. PING ----

    [Fact]
    public async Task Server_ping_is_answered_with_the_same_payload()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var responseTask = client.SendAsync(Request(server, Method, [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync();

        byte[] payload = [1, 2, 3, 4, 5, 6, 7, 0xF8];
        await connection.SendAsync(FrameType.Ping, 0, 0, payload);
        var ack = await connection.WaitForFrameAsync(f => f.Type == FrameType.Ping, what: "PING ACK");
        Assert.True(ack.IsAck);
        Assert.Equal(0, ack.StreamId);
        Assert.Equal(payload, ack.Payload);

        // An ACK from the server is not answered.
        await connection.SendAsync(FrameType.Ping, Http2Frame.Ack, 0, payload);
        Assert.False(await connection.SeesWithinAsync(f => f.Type == FrameType.Ping, Quiet));

        await connection.SendOkAsync(1);
        using var response = await responseTask.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    // ---- 9. Keepalive ----

    private static readonly GrpcChannelOptions KeepAliveOptions = GrpcChannelOptions.Default with
    {
        KeepAlivePingDelay = TimeSpan.FromMilliseconds(200),
        KeepAlivePingTimeout = TimeSpan.FromMilliseconds(300),
    };

    [Fact]
    public async Task Idle_connection_sends_keepalive_pings_and_survives_when_they_are_acked()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server, KeepAliveOptions with { KeepAlivePingTimeout = TimeSpan.FromSeconds(1) }); // room for a slow ACK
        var responseTask = client.SendAsync(Request(server, Method, [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync();
        await connection.ReadBodyAsync(1);
        await connection.SendHeadersAsync(1, endStream: false, (":status", "200"));
        using var response = await responseTask.WaitAsync(Timeout);
        var body = await response.Content.ReadAsStreamAsync();
        var pending = body.ReadAsync(new byte[16]).AsTask();

        for (var i = 0; i < 3; i++)
        {
            var ping = await connection.WaitForFrameAsync(f => f.Type == FrameType.Ping, TimeSpan.FromSeconds(3), "a keepalive PING");
            Assert.False(ping.IsAck);
            Assert.Equal(8, ping.Payload.Length);
            await connection.SendAsync(FrameType.Ping, Http2Frame.Ack, 0, ping.Payload);
        }

        Assert.False(pending.IsCompleted);
        await connection.SendDataAsync(1, [42], endStream: true);
        Assert.Equal(1, await pending.WaitAsync(Timeout));
    }

    [Fact]
    public async Task Unanswered_keepalive_ping_fails_an_open_body_read()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server, KeepAliveOptions);
        var responseTask = client.SendAsync(Request(server, Method, [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync();
        await connection.ReadBodyAsync(1);
        // The HEADERS below are the last frame the client receives, so nothing may fail the read before
        // the ping delay plus the ping timeout (500 ms) have passed since they were sent. The clock starts
        // before sending: whatever delays the client's side only makes the measured time longer.
        var watch = Stopwatch.StartNew();
        await connection.SendHeadersAsync(1, endStream: false, (":status", "200"));
        using var response = await responseTask.WaitAsync(Timeout);
        var body = await response.Content.ReadAsStreamAsync();
        var pending = body.ReadAsync(new byte[16]).AsTask();

        var ping = await connection.WaitForFrameAsync(f => f.Type == FrameType.Ping, TimeSpan.FromSeconds(3), "a keepalive PING");
        Assert.False(ping.IsAck);
        await Assert.ThrowsAnyAsync<IOException>(() => pending.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(450), TimeSpan.FromSeconds(5));
        await connection.Closed.WaitAsync(Timeout);
    }

    // ---- 10. GOAWAY ----

    [Fact]
    public async Task Goaway_fails_streams_above_last_stream_id_finishes_the_others_and_new_requests_use_a_new_connection()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var taskA = client.SendAsync(Request(server, "/svc/A", [1]), CancellationToken.None);
        var taskB = client.SendAsync(Request(server, "/svc/B", [2]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        var first = await connection.ReadHeadersAsync();
        var second = await connection.ReadHeadersAsync();
        Assert.Equal([1, 3], new[] { first.StreamId, second.StreamId }.Order());
        await connection.ReadBodyAsync(1);
        await connection.ReadBodyAsync(3);
        var byStream = new Dictionary<int, Task<HttpResponseMessage>>
        {
            [first.StreamId] = first[":path"] == "/svc/A" ? taskA : taskB,
            [second.StreamId] = second[":path"] == "/svc/A" ? taskA : taskB,
        };

        await connection.SendGoAwayAsync(1, Http2ErrorCode.NoError);
        await Assert.ThrowsAsync<HttpRequestException>(() => byStream[3].WaitAsync(Timeout));

        await connection.SendHeadersAsync(1, endStream: false, (":status", "200"));
        await connection.SendDataAsync(1, [5, 6], endStream: false);
        await connection.SendHeadersAsync(1, endStream: true, ("grpc-status", "0"));
        using (var response = await byStream[1].WaitAsync(Timeout))
        {
            Assert.Equal([5, 6], await ReadToEndAsync(response));
            Assert.Equal(["0"], response.TrailingHeaders.GetValues("grpc-status"));
        }

        await connection.Closed.WaitAsync(Timeout); // the last stream ended: the client closes the connection

        var taskC = client.SendAsync(Request(server, "/svc/C", [3]), CancellationToken.None);
        var connection2 = await server.AcceptAndHandshakeAsync();
        var third = await connection2.ReadHeadersAsync();
        Assert.Equal(1, third.StreamId);
        Assert.Equal("/svc/C", third[":path"]);
        await connection2.SendOkAsync(1);
        using var responseC = await taskC.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, responseC.StatusCode);
        Assert.Equal(2, server.AcceptedCount);
    }

    /// <summary>
    /// A request that reserved a stream on a connection but waits for the write lock (another request's large
    /// body is stuck in the socket) when GOAWAY arrives must not open a stream there afterwards (RFC 9113
    /// section 6.8): the server ignores it, and the request would wait forever.
    /// </summary>
    [Fact]
    public async Task Connection_credit_taken_by_a_stream_reset_before_it_writes_is_given_back()
    {
        const int Small = 30_000;
        await using var server = new ScriptedH2Server(receiveBufferSize: 64 * 1024);
        using var client = Client(server);
        var big = Pattern(8 << 20); // more than the client's socket send buffer and the server's receive buffer
        var taskA = client.SendAsync(Request(server, "/svc/A", big), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync((Http2Frame.SettingsInitialWindowSize, int.MaxValue));
        await connection.ReadHeadersAsync(1);

        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var taskB = client.SendAsync(Request(server, "/svc/B", new ScriptedContent(async body =>
        {
            await release.Task;
            await body.WriteAsync(Pattern(Small)); // takes connection credit, then waits for the write lock
        })), CancellationToken.None);
        await connection.ReadHeadersAsync(3);

        var received = 0;
        while (received < 65_535) // the connection's initial window; then A waits for credit
        {
            received += (await connection.WaitForFrameAsync(f => f.Type == FrameType.Data, what: "DATA within the connection window")).Payload.Length;
        }

        // Exactly enough credit for the rest of A, B's body, and 10 bytes more.
        connection.PauseReading();
        await connection.SendWindowUpdateAsync(0, big.Length - 65_535 + Small + 10);
        await WaitUntilAsync(() => connection.Available >= 32 * 1024, "A's body piling up in the server's socket while A holds the write lock");
        release.TrySetResult();
        await Task.Delay(100); // B takes its credit and queues for the write lock; nothing signals that it has
        await connection.SendRstStreamAsync(3, Http2ErrorCode.Cancel);
        await Assert.ThrowsAnyAsync<Exception>(() => taskB.WaitAsync(Timeout)); // the client has taken the reset
        connection.ResumeReading();

        received += (await connection.ReadBodyAsync(1)).Length;
        Assert.Equal(big.Length, received);
        await connection.SendOkAsync(1);
        using var responseA = await taskA.WaitAsync(Timeout);

        // B never sent its bytes, so its credit must be back: C needs all of it plus the 10 spare bytes.
        var taskC = client.SendAsync(Request(server, "/svc/C", Pattern(Small + 10)), CancellationToken.None);
        await connection.ReadHeadersAsync(5);
        Assert.Equal(Small + 10, (await connection.ReadBodyAsync(5)).Length);
        await connection.SendOkAsync(5);
        using var responseC = await taskC.WaitAsync(Timeout);
    }

    [Fact]
    public async Task Request_that_reserved_a_stream_before_goaway_does_not_open_it_after_goaway()
    {
        await using var server = new ScriptedH2Server(receiveBufferSize: 64 * 1024);
        using var client = Client(server);
        var big = Pattern(8 << 20); // more than the client's socket send buffer and the server's receive buffer
        var taskA = client.SendAsync(Request(server, "/svc/A", big), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync((Http2Frame.SettingsInitialWindowSize, int.MaxValue));
        await connection.ReadHeadersAsync(1);
        var received = 0;
        while (received < 65_535) // the connection's window; then the client waits for credit
        {
            received += (await connection.WaitForFrameAsync(f => f.Type == FrameType.Data, what: "DATA within the connection window")).Payload.Length;
        }

        connection.PauseReading();
        await connection.SendWindowUpdateAsync(0, int.MaxValue - 65_535);
        // The client writes the rest in one go and blocks in the socket, holding its write lock.
        await WaitUntilAsync(() => connection.Available >= 32 * 1024, "the client's body piling up in the server's socket");

        var taskB = client.SendAsync(Request(server, "/svc/B", [2]), CancellationToken.None); // reserves a stream, waits for the write lock
        await connection.SendGoAwayAsync(1, Http2ErrorCode.NoError);
        await Task.Delay(100); // no signal says that the client's reader thread took the GOAWAY; it takes it at once
        connection.ResumeReading();

        received += (await connection.ReadBodyAsync(1)).Length;
        Assert.Equal(big.Length, received);
        Assert.False(await connection.SeesWithinAsync(f => f.Type == FrameType.Headers && f.StreamId > 1, Quiet), "the client opened a stream after GOAWAY");

        await connection.SendOkAsync(1);
        using var responseA = await taskA.WaitAsync(Timeout);
        // B either failed as not processed, or went to a new connection.
        var accept = server.AcceptAsync();
        if (await Task.WhenAny(taskB, accept).WaitAsync(Timeout) == taskB)
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => taskB);
        }
        else
        {
            var connection2 = await accept;
            await connection2.HandshakeAsync();
            Assert.Equal("/svc/B", (await connection2.ReadHeadersAsync(1))[":path"]);
            await connection2.SendOkAsync(1);
            using var responseB = await taskB.WaitAsync(Timeout);
        }
    }

    // ---- 11. SETTINGS_MAX_CONCURRENT_STREAMS ----

    [Fact]
    public async Task Concurrency_limit_opens_a_second_connection_when_multiple_connections_are_enabled()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server, GrpcChannelOptions.Default with { EnableMultipleHttp2Connections = true });
        var taskA = client.SendAsync(Request(server, "/svc/A", [1]), CancellationToken.None);
        var connection1 = await server.AcceptAndHandshakeAsync((Http2Frame.SettingsMaxConcurrentStreams, 1));
        Assert.Equal("/svc/A", (await connection1.ReadHeadersAsync())[":path"]);

        var taskB = client.SendAsync(Request(server, "/svc/B", [2]), CancellationToken.None);
        var connection2 = await server.AcceptAndHandshakeAsync((Http2Frame.SettingsMaxConcurrentStreams, 1));
        var headersB = await connection2.ReadHeadersAsync();
        Assert.Equal("/svc/B", headersB[":path"]);
        Assert.Equal(1, headersB.StreamId);
        Assert.DoesNotContain(connection1.History, f => f.Type == FrameType.Headers && f.StreamId != 1);

        await connection1.SendOkAsync(1);
        await connection2.SendOkAsync(1);
        using var responseA = await taskA.WaitAsync(Timeout);
        using var responseB = await taskB.WaitAsync(Timeout);
    }

    [Fact]
    public async Task A_server_allowing_no_streams_is_waited_for_not_reconnected_to_in_a_loop()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server, GrpcChannelOptions.Default with { EnableMultipleHttp2Connections = true });
        var task = client.SendAsync(Request(server, "/svc/A", [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync((Http2Frame.SettingsMaxConcurrentStreams, 0));

        Assert.False(await server.AcceptsWithinAsync(Quiet), "the client opened another connection to a server that allows no streams");
        Assert.False(await connection.SeesWithinAsync(f => f.Type == FrameType.Headers, TimeSpan.FromMilliseconds(50)), "HEADERS beyond the server's limit");

        await connection.SendSettingsAsync((Http2Frame.SettingsMaxConcurrentStreams, 1));
        Assert.Equal("/svc/A", (await connection.ReadHeadersAsync(1))[":path"]);
        await connection.SendOkAsync(1);
        using var response = await task.WaitAsync(Timeout);
    }

    [Fact]
    public async Task Concurrency_limit_queues_the_request_on_the_same_connection_when_multiple_connections_are_disabled()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server, GrpcChannelOptions.Default with { EnableMultipleHttp2Connections = false });
        var taskA = client.SendAsync(Request(server, "/svc/A", [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync((Http2Frame.SettingsMaxConcurrentStreams, 1));
        Assert.Equal("/svc/A", (await connection.ReadHeadersAsync())[":path"]);
        await connection.ReadBodyAsync(1);

        var taskB = client.SendAsync(Request(server, "/svc/B", [2]), CancellationToken.None);
        Assert.False(await connection.SeesWithinAsync(f => f.Type == FrameType.Headers, Quiet), "the second request did not wait for room");
        Assert.False(await server.AcceptsWithinAsync(TimeSpan.FromMilliseconds(50)), "a second connection was opened");

        await connection.SendOkAsync(1);
        using var responseA = await taskA.WaitAsync(Timeout);
        var headersB = await connection.ReadHeadersAsync();
        Assert.Equal("/svc/B", headersB[":path"]);
        Assert.Equal(3, headersB.StreamId);
        await connection.SendOkAsync(3);
        using var responseB = await taskB.WaitAsync(Timeout);
        Assert.Equal(1, server.AcceptedCount);
    }

    // ---- 12. Connection errors ----

    [Theory]
    [InlineData("window-update-3-bytes", 0x6)] // FrameSizeError
    [InlineData("data-on-stream-0", 0x1)] // ProtocolError
    [InlineData("data-on-even-stream", 0x1)] // ProtocolError
    [InlineData("headers-on-even-stream", 0x1)] // ProtocolError
    [InlineData("data-on-unopened-stream", 0x1)] // ProtocolError
    [InlineData("ping-7-bytes", 0x6)] // FrameSizeError
    [InlineData("settings-5-bytes", 0x6)] // FrameSizeError
    [InlineData("frame-above-16384", 0x6)] // FrameSizeError
    [InlineData("continuation-without-headers", 0x1)] // ProtocolError
    [InlineData("data-inside-header-block", 0x1)] // ProtocolError
    [InlineData("push-promise", 0x1)] // ProtocolError
    [InlineData("initial-window-above-2^31-1", 0x3)] // FlowControlError
    [InlineData("max-frame-size-below-16384", 0x1)] // ProtocolError
    [InlineData("window-update-0-on-connection", 0x1)] // ProtocolError
    [InlineData("padding-longer-than-frame", 0x1)] // ProtocolError
    [InlineData("bad-hpack-index", 0x9)] // CompressionError
    public async Task Malformed_frame_makes_the_client_send_goaway_and_fail_open_requests(string malformation, int expectedCode)
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var taskA = client.SendAsync(Request(server, "/svc/A", [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync(1);
        await connection.SendHeadersAsync(1, endStream: false, (":status", "200"));
        using var responseA = await taskA.WaitAsync(Timeout);
        var pendingRead = (await responseA.Content.ReadAsStreamAsync()).ReadAsync(new byte[16]).AsTask();
        var taskB = client.SendAsync(Request(server, "/svc/B", [2]), CancellationToken.None); // waits for headers
        await connection.ReadHeadersAsync(3);

        switch (malformation)
        {
            case "window-update-3-bytes":
                await connection.SendAsync(FrameType.WindowUpdate, 0, 0, [0, 0, 1]);
                break;
            case "data-on-stream-0":
                await connection.SendAsync(FrameType.Data, 0, 0, [1]);
                break;
            case "data-on-even-stream":
                await connection.SendAsync(FrameType.Data, 0, 2, [1]);
                break;
            case "headers-on-even-stream":
                await connection.SendHeadersAsync(2, endStream: true, (":status", "200"));
                break;
            case "data-on-unopened-stream":
                await connection.SendAsync(FrameType.Data, 0, 7, [1]);
                break;
            case "ping-7-bytes":
                await connection.SendAsync(FrameType.Ping, 0, 0, [1, 2, 3, 4, 5, 6, 7]);
                break;
            case "settings-5-bytes":
                await connection.SendAsync(FrameType.Settings, 0, 0, [0, 3, 0, 0, 1]);
                break;
            case "frame-above-16384":
                await connection.SendAsync(FrameType.Data, 0, 1, new byte[16_385]);
                break;
            case "continuation-without-headers":
                await connection.SendAsync(FrameType.Continuation, Http2Frame.EndHeaders, 1, new HeaderBlock().Indexed(8).Span);
                break;
            case "data-inside-header-block":
                await connection.SendAsync(FrameType.Headers, 0, 3, new HeaderBlock().Indexed(8).Span);
                await connection.SendAsync(FrameType.Data, 0, 1, [1]);
                break;
            case "push-promise":
                await connection.SendAsync(FrameType.PushPromise, Http2Frame.EndHeaders, 1, [0, 0, 0, 2, 0x82]);
                break;
            case "initial-window-above-2^31-1":
                await connection.SendSettingsAsync((Http2Frame.SettingsInitialWindowSize, 0x8000_0000));
                break;
            case "max-frame-size-below-16384":
                await connection.SendSettingsAsync((Http2Frame.SettingsMaxFrameSize, 16_383));
                break;
            case "window-update-0-on-connection":
                await connection.SendWindowUpdateAsync(0, 0);
                break;
            case "padding-longer-than-frame":
                await connection.SendAsync(FrameType.Data, Http2Frame.Padded, 1, [5, 1, 2]);
                break;
            case "bad-hpack-index":
                await connection.SendHeaderBlockAsync(3, new HeaderBlock().Indexed(8).Indexed(70).Span, endStream: false);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(malformation));
        }

        var goAway = await connection.WaitForFrameAsync(f => f.Type == FrameType.GoAway, what: "GOAWAY");
        Assert.Equal((uint)expectedCode, goAway.ErrorCode);
        await connection.Closed.WaitAsync(Timeout);
        AssertConnectionFailure(await Assert.ThrowsAnyAsync<Exception>(() => pendingRead.WaitAsync(Timeout)));
        AssertConnectionFailure(await Assert.ThrowsAnyAsync<Exception>(() => taskB.WaitAsync(Timeout)));
    }

    [Fact]
    public async Task Server_closing_the_socket_fails_open_reads_and_the_next_request_reconnects()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var taskA = client.SendAsync(Request(server, "/svc/A", [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync(1);
        await connection.SendHeadersAsync(1, endStream: false, (":status", "200"));
        using var responseA = await taskA.WaitAsync(Timeout);
        var pendingRead = (await responseA.Content.ReadAsStreamAsync()).ReadAsync(new byte[16]).AsTask();
        var taskB = client.SendAsync(Request(server, "/svc/B", [2]), CancellationToken.None);
        await connection.ReadHeadersAsync(3);

        connection.Abort();
        AssertConnectionFailure(await Assert.ThrowsAnyAsync<Exception>(() => pendingRead.WaitAsync(Timeout)));
        AssertConnectionFailure(await Assert.ThrowsAnyAsync<Exception>(() => taskB.WaitAsync(Timeout)));

        var taskC = client.SendAsync(Request(server, "/svc/C", [3]), CancellationToken.None);
        var connection2 = await server.AcceptAndHandshakeAsync();
        Assert.Equal(1, (await connection2.ReadHeadersAsync()).StreamId);
        await connection2.SendOkAsync(1);
        using var responseC = await taskC.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, responseC.StatusCode);
    }

    // ---- 13. Connect failure ----

    [Fact]
    public async Task Connecting_to_a_port_nobody_listens_on_fails_quickly_with_HttpRequestException()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var address = new Uri($"http://127.0.0.1:{port}");
        using var client = new HttpMessageInvoker(new Http2Handler(address, GrpcChannelOptions.Default));
        var watch = Stopwatch.StartNew();

        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => client.SendAsync(Request(address, Method, [1]), CancellationToken.None).WaitAsync(Timeout));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}");
        Assert.Equal(HttpRequestError.ConnectionError, ex.HttpRequestError);
        Assert.NotNull(FindInChain<SocketException>(ex));
    }

    // ---- 14. Cancellation ----

    [Fact]
    public async Task Cancelling_while_waiting_for_headers_resets_the_stream_and_late_frames_are_ignored()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        using var cts = new CancellationTokenSource();
        var responseTask = client.SendAsync(Request(server, Method, [1]), cts.Token);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync(1);
        await connection.ReadBodyAsync(1);

        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => responseTask.WaitAsync(Timeout));
        var reset = await connection.WaitForFrameAsync(f => f.Type == FrameType.RstStream, what: "RST_STREAM CANCEL");
        Assert.Equal(1, reset.StreamId);
        Assert.Equal((uint)Http2ErrorCode.Cancel, reset.ErrorCode);

        // The server answers late, adding an entry to the HPACK table; the client drops the frames but keeps the table in step.
        await connection.SendHeaderBlockAsync(1, new HeaderBlock().Indexed(8).WithIncrementalIndexing("x-late", "yes", huffman: true).Span, endStream: false);
        await connection.SendDataAsync(1, [1, 2, 3], endStream: false);
        await connection.SendWindowUpdateAsync(1, 100);
        await connection.SendRstStreamAsync(1, Http2ErrorCode.Cancel);

        var second = client.SendAsync(Request(server, Method, [2]), CancellationToken.None);
        Assert.Equal(3, (await connection.ReadHeadersAsync()).StreamId);
        await connection.SendHeaderBlockAsync(3, new HeaderBlock().Indexed(8).Indexed(62).Span, endStream: true);
        using var response = await second.WaitAsync(Timeout);
        Assert.Equal(["yes"], response.Headers.GetValues("x-late"));
        Assert.DoesNotContain(connection.History, f => f.Type == FrameType.GoAway);
        Assert.Single(connection.History, f => f.Type == FrameType.RstStream);
    }

    [Fact]
    public async Task Disposing_the_response_body_before_its_end_resets_the_stream()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var responseTask = client.SendAsync(Request(server, Method, [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync(1);
        await connection.ReadBodyAsync(1);
        await connection.SendHeadersAsync(1, endStream: false, (":status", "200"));
        await connection.SendDataAsync(1, [1, 2, 3, 4], endStream: false);

        var response = await responseTask.WaitAsync(Timeout);
        var body = await response.Content.ReadAsStreamAsync();
        Assert.Equal(2, await body.ReadAsync(new byte[2]).AsTask().WaitAsync(Timeout));
        await body.DisposeAsync();
        response.Dispose();

        var reset = await connection.WaitForFrameAsync(f => f.Type == FrameType.RstStream, what: "RST_STREAM CANCEL");
        Assert.Equal(1, reset.StreamId);
        Assert.Equal((uint)Http2ErrorCode.Cancel, reset.ErrorCode);
    }

    [Fact]
    public async Task Cancelling_a_pending_body_read_resets_the_stream()
    {
        await using var server = new ScriptedH2Server();
        using var client = Client(server);
        var responseTask = client.SendAsync(Request(server, Method, [1]), CancellationToken.None);
        var connection = await server.AcceptAndHandshakeAsync();
        await connection.ReadHeadersAsync(1);
        await connection.ReadBodyAsync(1);
        await connection.SendHeadersAsync(1, endStream: false, (":status", "200"));

        using var response = await responseTask.WaitAsync(Timeout);
        var body = await response.Content.ReadAsStreamAsync();
        using var cts = new CancellationTokenSource();
        var pending = body.ReadAsync(new byte[16], cts.Token).AsTask();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => pending.WaitAsync(Timeout));

        var reset = await connection.WaitForFrameAsync(f => f.Type == FrameType.RstStream, what: "RST_STREAM CANCEL");
        Assert.Equal(1, reset.StreamId);
        Assert.Equal((uint)Http2ErrorCode.Cancel, reset.ErrorCode);
    }

    // ---- helpers ----

    private static HttpMessageInvoker Client(ScriptedH2Server server, GrpcChannelOptions? options = null) =>
        new(new Http2Handler(server.Address, options ?? GrpcChannelOptions.Default));

    private static HttpRequestMessage Request(ScriptedH2Server server, string path, byte[] body) => Request(server.Address, path, body);

    private static HttpRequestMessage Request(ScriptedH2Server server, string path, HttpContent content) => Request(server.Address, path, content);

    private static HttpRequestMessage Request(Uri address, string path, byte[] body) => Request(address, path, new ByteArrayContent(body));

    /// <summary>A gRPC-shaped request: POST, application/grpc, TE: trailers.</summary>
    private static HttpRequestMessage Request(Uri address, string path, HttpContent content)
    {
        content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(address, path))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = content,
        };
        request.Headers.TE.Add(new TransferCodingWithQualityHeaderValue("trailers"));
        return request;
    }

    private static async Task<byte[]> ReadToEndAsync(HttpResponseMessage response) =>
        await ReadAllAsync(await response.Content.ReadAsStreamAsync());

    private static async Task<byte[]> ReadAllAsync(Stream body)
    {
        var output = new MemoryStream();
        await body.CopyToAsync(output).WaitAsync(Timeout);
        return output.ToArray();
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed > Timeout)
            {
                throw new TimeoutException($"waited in vain for {what}");
            }

            await Task.Delay(10);
        }
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

    /// <summary>DATA frames of at most 16,384 bytes carrying <paramref name="data"/>; the last one ends the stream if asked.</summary>
    private static byte[] DataFrames(int streamId, ReadOnlySpan<byte> data, bool endStream)
    {
        var output = new ArrayBufferWriter<byte>(data.Length + (data.Length / 16_384 * 9) + 9);
        do
        {
            var length = Math.Min(data.Length, Http2Frame.DefaultMaxFrameSize);
            var last = length == data.Length;
            Http2Frame.Write(output, FrameType.Data, last && endStream ? Http2Frame.EndStream : (byte)0, streamId, data[..length]);
            data = data[length..];
        }
        while (!data.IsEmpty);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>A padded frame payload: pad length, content, then that many zero bytes.</summary>
    private static byte[] Padded(ReadOnlySpan<byte> content, byte padding) => [padding, .. content, .. new byte[padding]];

    private static T? FindInChain<T>(Exception? ex)
        where T : Exception
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is T match)
            {
                return match;
            }
        }

        return null;
    }

    private static void AssertConnectionFailure(Exception ex) =>
        Assert.True(ex is IOException or HttpRequestException, $"expected an IOException or HttpRequestException, got {ex}");

    /// <summary>Request content written by a test's delegate, which may pause between writes.</summary>
    private sealed class ScriptedContent(Func<Stream, Task> write) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => write(stream);

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }

    /// <summary>Builds an HPACK header block by hand (RFC 7541 section 6), with or without Huffman-coded strings.</summary>
    private sealed class HeaderBlock
    {
        private readonly ArrayBufferWriter<byte> _output = new();

        public ReadOnlySpan<byte> Span => _output.WrittenSpan;

        public byte[] ToArray() => _output.WrittenSpan.ToArray();

        /// <summary>Indexed field (6.1): 1xxxxxxx.</summary>
        public HeaderBlock Indexed(int index) => Integer(index, 7, 0x80);

        /// <summary>Literal with incremental indexing and an indexed name (6.2.1): 01xxxxxx.</summary>
        public HeaderBlock WithIncrementalIndexing(int nameIndex, string value, bool huffman) => Integer(nameIndex, 6, 0x40).String(value, huffman);

        /// <summary>Literal with incremental indexing and a new name (6.2.1): 0x40.</summary>
        public HeaderBlock WithIncrementalIndexing(string name, string value, bool huffman) => Integer(0, 6, 0x40).String(name, huffman).String(value, huffman);

        /// <summary>Literal without indexing and a new name (6.2.2): 0x00.</summary>
        public HeaderBlock WithoutIndexing(string name, string value, bool huffman) => Integer(0, 4, 0x00).String(name, huffman).String(value, huffman);

        /// <summary>Literal never indexed and a new name (6.2.3): 0x10.</summary>
        public HeaderBlock NeverIndexed(string name, string value) => Integer(0, 4, 0x10).String(name, false).String(value, false);

        /// <summary>Dynamic table size update (6.3): 001xxxxx.</summary>
        public HeaderBlock TableSizeUpdate(int size) => Integer(size, 5, 0x20);

        private HeaderBlock String(string value, bool huffman)
        {
            var raw = Encoding.Latin1.GetBytes(value);
            var bytes = huffman ? HpackHuffman.Encode(raw) : raw;
            Integer(bytes.Length, 7, huffman ? (byte)0x80 : (byte)0);
            _output.Write(bytes);
            return this;
        }

        private HeaderBlock Integer(int value, int prefixBits, byte flags)
        {
            var max = (1 << prefixBits) - 1;
            if (value < max)
            {
                _output.Write([(byte)(flags | value)]);
                return this;
            }

            _output.Write([(byte)(flags | max)]);
            value -= max;
            while (value >= 0x80)
            {
                _output.Write([(byte)(0x80 | (value & 0x7F))]);
                value >>= 7;
            }

            _output.Write([(byte)value]);
            return this;
        }
    }
}
