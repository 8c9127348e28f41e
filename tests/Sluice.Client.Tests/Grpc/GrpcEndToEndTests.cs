using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Google.Protobuf;
using Sluice.Client.Grpc;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Health;

namespace Sluice.Client.Tests.Grpc;

public sealed class TestApiServerFixture : IAsyncLifetime
{
    public TestApiServer Api { get; private set; } = null!;

    internal GrpcChannel Channel { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Api = await TestApiServer.StartAsync();
        Channel = new GrpcChannel(Api.Address);
    }

    public async Task DisposeAsync()
    {
        Channel.Dispose();
        await Api.DisposeAsync();
    }
}

/// <summary>Our client against our server, in-process over loopback h2c.</summary>
public class GrpcEndToEndTests(TestApiServerFixture fixture) : IClassFixture<TestApiServerFixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30); // a generous bound for waits, never a timing assertion

    private GrpcChannel Channel => fixture.Channel;

    private Task<CreateStreamResponse> CreateStreamAsync(string name, TimeSpan? timeout = null) =>
        Channel.UnaryAsync("/proto.API/CreateStream", new CreateStreamRequest { Name = name, Subject = "x" }, CreateStreamResponse.Parser, timeout);

    [Fact]
    public async Task Unary_call_returns_the_handlers_response()
    {
        var response = await Channel.UnaryAsync("/proto.API/FetchMetadata", new FetchMetadataRequest { Streams = { "a", "b" } }, FetchMetadataResponse.Parser);
        Assert.Equal("b1", Assert.Single(response.Brokers).Id);
        Assert.Equal(["a", "b"], response.StreamMetadata.Select(s => s.Name));
        Assert.Equal(42, response.StreamMetadata[0].Partitions[0].NewestOffset);
    }

    [Fact]
    public async Task Unary_error_arrives_with_its_status_and_message()
    {
        var ex = await Assert.ThrowsAsync<GrpcException>(() => CreateStreamAsync("exists"));
        Assert.Equal(GrpcStatusCode.AlreadyExists, ex.StatusCode);
        Assert.Equal("stream already exists", ex.Detail);
    }

    [Fact]
    public async Task Status_messages_keep_non_ascii_colons_and_percent_signs()
    {
        var ex = await Assert.ThrowsAsync<GrpcException>(() => CreateStreamAsync("bad"));
        Assert.Equal(GrpcStatusCode.InvalidArgument, ex.StatusCode);
        Assert.Equal(TestApiServer.OddMessage, ex.Detail);
    }

    [Fact]
    public async Task Unknown_method_is_unimplemented_and_names_the_path()
    {
        var ex = await Assert.ThrowsAsync<GrpcException>(() =>
            Channel.UnaryAsync("/proto.API/NoSuchMethod", new FetchMetadataRequest(), FetchMetadataResponse.Parser));
        Assert.Equal(GrpcStatusCode.Unimplemented, ex.StatusCode);
        Assert.Contains("/proto.API/NoSuchMethod", ex.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_handler_that_throws_fails_the_call_with_internal_and_the_server_keeps_serving()
    {
        var ex = await Assert.ThrowsAsync<GrpcException>(() => CreateStreamAsync("throw"));
        Assert.Equal(GrpcStatusCode.Internal, ex.StatusCode);
        Assert.Equal("Exception was thrown by handler", ex.Detail); // the exception's own text stays in the server's log
        await CreateStreamAsync("fine");
    }

    [Fact]
    public async Task Server_streaming_delivers_100k_messages_in_order_after_the_handshake()
    {
        await using var call = Channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "s", StartOffset = 100_000 }, Message.Parser);
        Assert.True(await call.MoveNextAsync());
        Assert.Equal(new Message(), call.Current);
        long expected = 0;
        await foreach (var message in call.ReadAllAsync())
        {
            Assert.Equal(expected++, message.Offset);
            Assert.Equal(256, message.Value.Length);
        }

        Assert.Equal(100_000, expected);
    }

    [Fact]
    public async Task Streaming_error_before_any_message_is_raised_by_the_reader()
    {
        await using var call = Channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "missing" }, Message.Parser);
        var ex = await Assert.ThrowsAsync<GrpcException>(async () => await call.MoveNextAsync());
        Assert.Equal(GrpcStatusCode.NotFound, ex.StatusCode);
        Assert.Equal("No such partition", ex.Detail);
    }

    [Fact]
    public async Task A_call_past_its_deadline_fails_with_deadline_exceeded()
    {
        var ex = await Assert.ThrowsAsync<GrpcException>(() => CreateStreamAsync("slow", TimeSpan.FromMilliseconds(200)));
        Assert.Equal(GrpcStatusCode.DeadlineExceeded, ex.StatusCode);
    }

    [Fact]
    public async Task Cancelling_a_stream_mid_way_cancels_the_servers_handler()
    {
        fixture.Api.ResetSubscribeCancelled();
        using var cts = new CancellationTokenSource();
        await using var call = Channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "forever" }, Message.Parser, cancellationToken: cts.Token);
        Assert.True(await call.MoveNextAsync()); // handshake: the handler is now waiting
        var next = call.MoveNextAsync().AsTask();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next);
        await fixture.Api.SubscribeCancelled.WaitAsync(Patience);
    }

    [Fact]
    public async Task Bidi_pipelines_20k_publishes_and_gets_every_ack_in_order()
    {
        const int count = 20_000;
        await using var call = Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        var reading = Task.Run(async () =>
        {
            var seen = 0;
            while (seen < count && await call.MoveNextAsync())
            {
                Assert.Equal($"c{seen}", call.Current.CorrelationId);
                Assert.Equal(seen, call.Current.Ack.Offset);
                seen++;
            }

            return seen;
        });
        var value = ByteString.CopyFrom(new byte[256]);
        for (var i = 0; i < count; i++)
        {
            await call.WriteAsync(new PublishRequest { Stream = "s", Value = value, CorrelationId = $"c{i}" });
        }

        await call.CompleteRequestsAsync();
        Assert.Equal(count, await reading.WaitAsync(Patience));
        Assert.False(await call.MoveNextAsync()); // status OK after the half-close
    }

    [Fact]
    public async Task Bidi_reports_per_message_errors_in_band()
    {
        await using var call = Channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        await call.WriteAsync(new PublishRequest { Stream = "missing", CorrelationId = "x" });
        await call.WriteAsync(new PublishRequest { Stream = "s", CorrelationId = "none", AckPolicy = Sluice.Protocol.Api.AckPolicy.None });
        await call.CompleteRequestsAsync();
        Assert.True(await call.MoveNextAsync());
        Assert.Equal(PublishAsyncError.Types.Code.NotFound, call.Current.AsyncError.Code);
        Assert.False(await call.MoveNextAsync());
    }

    [Fact]
    public async Task Gzip_compressed_requests_are_accepted()
    {
        using var channel = new GrpcChannel(fixture.Api.Address, GrpcChannelOptions.Default with { CompressRequests = true });
        var value = ByteString.CopyFrom(new byte[64 * 1024]);
        var response = await channel.UnaryAsync("/proto.API/Publish", new PublishRequest { Stream = "s", Value = value, CorrelationId = "z" }, PublishResponse.Parser);
        Assert.Equal(value.Length, response.Ack.Offset);
        Assert.Equal("gzip", response.Ack.MsgSubject);

        await using var call = channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        await call.WriteAsync(new PublishRequest { Stream = "s", Value = value, CorrelationId = "g" });
        await call.CompleteRequestsAsync();
        Assert.True(await call.MoveNextAsync());
        Assert.Equal("g", call.Current.CorrelationId);
    }

    [Fact]
    public async Task Health_reports_serving_for_the_server_and_registered_services_only()
    {
        foreach (var service in new[] { "", "proto.API" })
        {
            var response = await Channel.UnaryAsync("/grpc.health.v1.Health/Check", new HealthCheckRequest { Service = service }, HealthCheckResponse.Parser);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
        }

        var ex = await Assert.ThrowsAsync<GrpcException>(() =>
            Channel.UnaryAsync("/grpc.health.v1.Health/Check", new HealthCheckRequest { Service = "nope" }, HealthCheckResponse.Parser));
        Assert.Equal(GrpcStatusCode.NotFound, ex.StatusCode);
    }

    [Fact]
    public async Task Health_turns_not_serving_when_told()
    {
        await using var api = await TestApiServer.StartAsync();
        using var channel = new GrpcChannel(api.Address);
        api.Server.Health.SetAllNotServing();
        var response = await channel.UnaryAsync("/grpc.health.v1.Health/Check", new HealthCheckRequest { Service = "proto.API" }, HealthCheckResponse.Parser);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, response.Status);
    }

    [Fact]
    public async Task A_truncated_request_frame_fails_that_call_only()
    {
        using var http = RawClient();
        var truncated = new byte[] { 0, 0, 0, 0, 100, 1, 2, 3 }; // announces 100 bytes, sends 3, then END_STREAM
        using var response = await SendRawAsync(http, "/proto.API/CreateStream", truncated, "application/grpc");
        await response.Content.ReadAsByteArrayAsync();
        Assert.True("13" == GrpcStatus(response), Describe(response));
        await CreateStreamAsync("still-fine");
    }

    [Fact]
    public async Task A_non_grpc_content_type_is_refused_with_415()
    {
        using var http = RawClient();
        using var response = await SendRawAsync(http, "/proto.API/CreateStream", [1, 2, 3], "text/plain");
        Assert.True(HttpStatusCode.UnsupportedMediaType == response.StatusCode, Describe(response));
    }

    [Fact]
    public async Task An_unsupported_grpc_encoding_is_unimplemented()
    {
        using var http = RawClient();
        using var response = await SendRawAsync(http, "/proto.API/CreateStream", [0, 0, 0, 0, 0], "application/grpc", ("grpc-encoding", "br"));
        Assert.True("12" == GrpcStatus(response), Describe(response));
        Assert.Contains("gzip", response.Headers.GetValues("grpc-accept-encoding").Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_refused_connection_is_unavailable()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var channel = new GrpcChannel(new Uri($"http://127.0.0.1:{port}"));
        var ex = await Assert.ThrowsAsync<GrpcException>(() =>
            channel.UnaryAsync("/proto.API/FetchMetadata", new FetchMetadataRequest(), FetchMetadataResponse.Parser));
        Assert.Equal(GrpcStatusCode.Unavailable, ex.StatusCode);

        await using var call = channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
        var bidi = await Assert.ThrowsAsync<GrpcException>(async () =>
        {
            // The refusal surfaces on the write when the connect fails while the write drains, else on the read.
            await call.WriteAsync(new PublishRequest { Stream = "s" });
            await call.MoveNextAsync();
        });
        Assert.Equal(GrpcStatusCode.Unavailable, bidi.StatusCode);
    }

    private static HttpClient RawClient() => new(new SocketsHttpHandler { UseProxy = false })
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
    };

    private Task<HttpResponseMessage> SendRawAsync(HttpClient http, string path, byte[] body, string contentType, params (string Name, string Value)[] headers)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(fixture.Api.Address, path))
        {
            Content = content,
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.TE.ParseAdd("trailers");
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return http.SendAsync(request);
    }

    private static string Describe(HttpResponseMessage response) =>
        $"HTTP {(int)response.StatusCode}; headers: {response.Headers}; trailers: {response.TrailingHeaders}";

    private static string? GrpcStatus(HttpResponseMessage response) =>
        response.Headers.TryGetValues("grpc-status", out var h) ? h.Single()
        : response.TrailingHeaders.TryGetValues("grpc-status", out var t) ? t.Single() : null;
}
