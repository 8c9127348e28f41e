using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Sluice.Client.Grpc;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Server.Cluster;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;
using Sluice.TestKit;

namespace Sluice.Server.Tests;

/// <summary>A real server in-process (port 0, temp data dir) and a gRPC channel to it.</summary>
internal sealed class BrokerHarness : IAsyncDisposable
{
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);

    private readonly TempDirectory _dir;

    private BrokerHarness(TempDirectory dir, ServerOptions options, ClusterSettings? cluster)
    {
        _dir = dir;
        Options = options;
        Cluster = cluster;
    }

    /// <summary>SLUICE_TEST_LOG=1 shows the servers' logs (run with --logger "console;verbosity=detailed").</summary>
    private static readonly Microsoft.Extensions.Logging.ILoggerFactory? DebugLoggers = Environment.GetEnvironmentVariable("SLUICE_TEST_LOG") is { Length: > 0 }
        ? Microsoft.Extensions.Logging.LoggerFactory.Create(b => b.AddSimpleConsole(o => o.TimestampFormat = "HH:mm:ss.fff ").SetMinimumLevel(Microsoft.Extensions.Logging.LogLevel.Debug))
        : null;

    public ServerOptions Options { get; }

    /// <summary>The cluster this server is a member of; null for a single node.</summary>
    public ClusterSettings? Cluster { get; }

    public bool IsRunning { get; private set; }

    public string DataDir => _dir.Path;

    public SluiceServer Server { get; private set; } = null!;

    public GrpcChannel Channel { get; private set; } = null!;

    public static async Task<BrokerHarness> StartAsync(Func<ServerOptions, ServerOptions>? configure = null, ClusterSettings? cluster = null)
    {
        var dir = new TempDirectory("sluice-broker");
        var options = ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dir.Path };
        options = configure?.Invoke(options) ?? options;
        var harness = new BrokerHarness(dir, options, cluster);
        await harness.StartServerAsync();
        return harness;
    }

    private async Task StartServerAsync()
    {
        Server = Cluster is null ? await SluiceServer.StartAsync(Options, DebugLoggers) : await SluiceServer.StartAsync(Options, DebugLoggers, Cluster, CancellationToken.None);
        Channel = Options.Tls.Enabled
            ? new GrpcChannel(new Uri($"https://127.0.0.1:{Server.Port}"), GrpcChannelOptions.Default with { Tls = new GrpcClientTlsOptions { TrustedCertificateAuthorities = Authorities(Options.Tls.Cert) } })
            : new GrpcChannel(new Uri($"http://127.0.0.1:{Server.Port}"));
        IsRunning = true;
    }

    private static System.Security.Cryptography.X509Certificates.X509Certificate2Collection Authorities(string pemPath)
    {
        var authorities = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
        authorities.ImportFromPemFile(pemPath);
        return authorities;
    }

    /// <summary>Graceful stop, keeping the data directory for <see cref="StartAgainAsync"/>.</summary>
    public async Task StopAsync()
    {
        IsRunning = false;
        Channel.Dispose();
        await Server.DisposeAsync();
    }

    /// <summary>Starts again on the same data directory (a new port).</summary>
    public Task StartAgainAsync() => StartServerAsync();

    /// <summary>Graceful stop and start on the same data directory.</summary>
    public async Task RestartAsync()
    {
        await StopAsync();
        await StartServerAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (IsRunning)
        {
            await StopAsync();
        }

        _dir.Dispose();
    }

    public Task<TResponse> CallAsync<TRequest, TResponse>(string method, TRequest request, MessageParser<TResponse> parser, TimeSpan? timeout = null)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
        => Channel.UnaryAsync("/proto.API/" + method, request, parser, timeout ?? CallTimeout);

    public Task CreateStreamAsync(string name, string subject, int partitions = 1, Action<CreateStreamRequest>? configure = null)
    {
        var request = new CreateStreamRequest { Name = name, Subject = subject, Partitions = partitions };
        configure?.Invoke(request);
        return CreateStreamAsync(request);
    }

    public Task CreateStreamAsync(CreateStreamRequest request) =>
        CallAsync("CreateStream", request, CreateStreamResponse.Parser);

    public Task DeleteStreamAsync(string name) =>
        CallAsync("DeleteStream", new DeleteStreamRequest { Name = name }, DeleteStreamResponse.Parser);

    public Task PauseAsync(string name, bool resumeAll = false, params int[] partitions) =>
        CallAsync("PauseStream", new PauseStreamRequest { Name = name, ResumeAll = resumeAll, Partitions = { partitions } }, PauseStreamResponse.Parser);

    public Task SetReadonlyAsync(string name, bool value, params int[] partitions) =>
        CallAsync("SetStreamReadonly", new SetStreamReadonlyRequest { Name = name, Readonly = value, Partitions = { partitions } }, SetStreamReadonlyResponse.Parser);

    /// <summary>Unary Publish with a deadline (so it waits for the ack unless the policy is NONE).</summary>
    public async Task<Ack?> PublishAsync(string stream, string value, int partition = 0, string? key = null, AckPolicy policy = AckPolicy.Leader, long expectedOffset = -1)
    {
        var request = new PublishRequest { Stream = stream, Partition = partition, Value = ByteString.CopyFromUtf8(value), AckPolicy = policy, ExpectedOffset = expectedOffset };
        if (key is not null)
        {
            request.Key = ByteString.CopyFromUtf8(key);
        }

        var response = await CallAsync("Publish", request, PublishResponse.Parser);
        return response.Ack;
    }

    public async Task<List<Ack>> PublishManyAsync(string stream, int count, int partition = 0, string prefix = "")
    {
        var acks = new List<Ack>();
        for (var i = 0; i < count; i++)
        {
            acks.Add((await PublishAsync(stream, prefix + i, partition))!);
        }

        return acks;
    }

    public async Task<PartitionMetadata> PartitionMetadataAsync(string stream, int partition = 0) =>
        (await CallAsync("FetchPartitionMetadata", new FetchPartitionMetadataRequest { Stream = stream, Partition = partition }, FetchPartitionMetadataResponse.Parser)).Metadata;

    public Task<FetchMetadataResponse> MetadataAsync(params string[] streams) =>
        CallAsync("FetchMetadata", new FetchMetadataRequest { Streams = { streams } }, FetchMetadataResponse.Parser);

    /// <summary>Starts a subscription and swallows the handshake frame (asserting it is an all-default Message).</summary>
    public async Task<GrpcStreamingCall<Message>> SubscribeAsync(SubscribeRequest request, CancellationToken cancellationToken = default)
    {
        var call = Channel.ServerStreaming("/proto.API/Subscribe", request, Message.Parser, cancellationToken: cancellationToken);
        try
        {
            Assert.True(await call.MoveNextAsync(), "the subscription ended before its handshake frame");
            Assert.Equal(new Message(), call.Current);
            return call;
        }
        catch
        {
            await call.DisposeAsync();
            throw;
        }
    }

    /// <summary>Reads <paramref name="count"/> messages, failing after the call timeout.</summary>
    public static async Task<List<Message>> ReadAsync(GrpcStreamingCall<Message> call, int count)
    {
        var messages = new List<Message>();
        var read = Task.Run(async () =>
        {
            while (messages.Count < count && await call.MoveNextAsync())
            {
                messages.Add(call.Current);
            }
        });
        await read.WaitAsync(CallTimeout);
        Assert.Equal(count, messages.Count);
        return messages;
    }

    /// <summary>Reads until the call ends and returns its status (messages read on the way are returned too).</summary>
    public static async Task<(List<Message> Messages, GrpcException? Error)> ReadToEndAsync(GrpcStreamingCall<Message> call)
    {
        var messages = new List<Message>();
        try
        {
            await Task.Run(async () =>
            {
                while (await call.MoveNextAsync())
                {
                    messages.Add(call.Current);
                }
            }).WaitAsync(CallTimeout);
            return (messages, null);
        }
        catch (GrpcException ex)
        {
            return (messages, ex);
        }
    }

    public static async Task<GrpcException> ThrowsGrpcAsync(GrpcStatusCode code, Func<Task> action)
    {
        var ex = await Assert.ThrowsAsync<GrpcException>(action);
        Assert.Equal(code, ex.StatusCode);
        return ex;
    }

    /// <summary>Polls <paramref name="condition"/> until it holds or the deadline passes (no fixed sleeps as synchronisation).</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? CallTimeout);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting for: {what}");
            }

            await Task.Delay(20);
        }
    }
}
