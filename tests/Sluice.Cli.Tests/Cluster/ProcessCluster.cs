using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Sluice.Client.Grpc;
using Sluice.Etcd;
using Sluice.Protocol.Api;
using Sluice.Protocol.Internal;
using Sluice.Storage.Metadata;
using Sluice.TestKit;

namespace Sluice.Cli.Tests.Cluster;

/// <summary>
/// A real cluster on loopback: a <see cref="LocalEtcd"/> child and N `sluice serve` children, each on its own port
/// and data directory. A broker can be SIGKILLed and started again on the same port and directory. Every child is
/// stopped by its PID on dispose, whatever the test did.
/// </summary>
internal sealed class ProcessCluster : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly TempDirectory _dir;
    private readonly string? _configFile;

    private ProcessCluster(LocalEtcd etcd, TempDirectory dir, string? configFile, IReadOnlyList<BrokerProcess> brokers)
    {
        Etcd = etcd;
        _dir = dir;
        _configFile = configFile;
        Brokers = brokers;
    }

    public LocalEtcd Etcd { get; }

    public IReadOnlyList<BrokerProcess> Brokers { get; }

    public IEnumerable<string> Addresses => Brokers.Select(b => b.Address);

    public BrokerProcess this[string id] => Brokers.Single(b => b.Id == id);

    /// <summary>Starts etcd and <paramref name="count"/> brokers (b1..bN), and waits until every broker lists all of them.</summary>
    /// <param name="count">How many brokers.</param>
    /// <param name="config">Extra YAML for every broker (e.g. "clustering.broker.lease.ttl: 5s"), or null.</param>
    public static async Task<ProcessCluster> StartAsync(int count, string? config = null)
    {
        // A port found free can be taken by someone else's connection before the broker binds it (a loaded machine,
        // tests in parallel): start again on fresh ports rather than fail the test.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnceAsync(count, config);
            }
            catch (Xunit.Sdk.XunitException ex) when (attempt < 3 && ex.Message.Contains("Address already in use", StringComparison.Ordinal))
            {
            }
        }
    }

    private static async Task<ProcessCluster> StartOnceAsync(int count, string? config)
    {
        var etcd = await LocalEtcd.StartAsync();
        var dir = new TempDirectory("sluice-pcluster");
        string? configFile = null;
        if (config is not null)
        {
            configFile = Path.Combine(dir.Path, "sluice.yaml");
            await File.WriteAllTextAsync(configFile, config);
        }

        var brokers = Enumerable.Range(1, count)
            .Select(i => new BrokerProcess("b" + i.ToString(CultureInfo.InvariantCulture), FreePort(), Path.Combine(dir.Path, "b" + i.ToString(CultureInfo.InvariantCulture))))
            .ToList();
        var cluster = new ProcessCluster(etcd, dir, configFile, brokers);
        try
        {
            foreach (var broker in brokers)
            {
                cluster.Start(broker);
            }

            await cluster.WaitForAsync(async () => (await ProcessCluster.TryMetadataAsync(brokers[0]))?.Brokers.Count == count, $"all {count} brokers are registered");
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>SIGKILL: no goodbye to etcd or to the other brokers.</summary>
    public async Task KillAsync(BrokerProcess broker)
    {
        Assert.Contains(broker, Brokers);
        if (broker.Process is { } process)
        {
            broker.Process = null;
            await process.DisposeAsync(); // Process.Kill is SIGKILL on Unix
        }
    }

    /// <summary>SIGTERM, a graceful stop as a service manager does it; waits for the exit, which must be status 0.</summary>
    public async Task TerminateAsync(BrokerProcess broker)
    {
        Assert.Contains(broker, Brokers);
        var process = broker.Process ?? throw new InvalidOperationException($"{broker.Id} is not running");
        await process.TerminateAsync();
        var exitCode = await process.WaitForExitAsync(Timeout);
        Assert.True(exitCode == 0, $"{broker.Id} exited with {exitCode} after SIGTERM:\n{process.Transcript()}");
        broker.Process = null;
        await process.DisposeAsync();
    }

    /// <summary>
    /// Waits until the partition's leader (every broker agreeing, all replicas in sync) answers as leader with its high
    /// watermark at its newest offset; returns the leader and that offset.
    /// </summary>
    public async Task<(string Leader, long End)> WaitForSettledEndAsync(string stream, int partition = 0)
    {
        var leader = await WaitForFullIsrAsync(stream, partition);
        PartitionMetadata? metadata = null;
        await WaitForAsync(
            async () =>
            {
                try
                {
                    metadata = (await this[leader].CallAsync("FetchPartitionMetadata", new FetchPartitionMetadataRequest { Stream = stream, Partition = partition }, FetchPartitionMetadataResponse.Parser, TimeSpan.FromSeconds(5))).Metadata;
                    return metadata.HighWatermark == metadata.NewestOffset;
                }
                catch (Protocol.Grpc.GrpcException e) when (e.StatusCode == Protocol.Grpc.GrpcStatusCode.FailedPrecondition)
                {
                    return false; // named leader in the metadata, not yet leading
                }
            },
            $"{leader} answers as leader of {stream}/{partition} with its high watermark at its newest offset");
        return (leader, metadata!.HighWatermark);
    }

    /// <summary>Starts a stopped broker again on the same port and data directory (it waits to register itself).</summary>
    public void Restart(BrokerProcess broker)
    {
        Assert.Null(broker.Process);
        Start(broker);
    }

    private void Start(BrokerProcess broker)
    {
        var args = new List<string>
        {
            "serve", "--server-id", broker.Id, "--host", "127.0.0.1", "--port", broker.Port.ToString(CultureInfo.InvariantCulture),
            "--data-dir", broker.DataDir, "--etcd-endpoints", Etcd.ClientUrl,
        };
        if (_configFile is not null)
        {
            args.AddRange(["--config", _configFile]);
        }

        broker.Process = SluiceProcess.Start(args, stdin: null);
    }

    /// <summary>One broker's FetchMetadata answer, or null when it does not answer (yet).</summary>
    public static async Task<FetchMetadataResponse?> TryMetadataAsync(BrokerProcess broker, params string[] streams)
    {
        try
        {
            return await broker.CallAsync("FetchMetadata", new FetchMetadataRequest { Streams = { streams } }, FetchMetadataResponse.Parser, TimeSpan.FromSeconds(2));
        }
        catch (Exception e) when (e is Protocol.Grpc.GrpcException or HttpRequestException or IOException or OperationCanceledException or TimeoutException)
        {
            return null;
        }
    }

    /// <summary>The partition's leader id as the broker sees it, or null.</summary>
    public static async Task<PartitionMetadata?> TryPartitionAsync(BrokerProcess broker, string stream, int partition = 0)
    {
        var metadata = await TryMetadataAsync(broker, stream);
        return metadata?.StreamMetadata.FirstOrDefault(s => s.Name == stream)?.Partitions.GetValueOrDefault(partition);
    }

    /// <summary>
    /// Waits until every broker agrees on the partition's leader and an ISR of all its brokers, the leader being the
    /// preferred replica (so the controller will not move it right after); returns the leader.
    /// </summary>
    public async Task<string> WaitForFullIsrAsync(string stream, int partition = 0)
    {
        string? leader = null;
        await WaitForAsync(
            async () =>
            {
                var views = new List<PartitionMetadata?>();
                foreach (var broker in Brokers)
                {
                    views.Add(await TryPartitionAsync(broker, stream, partition));
                }

                leader = views[0]?.Leader;
                return !string.IsNullOrEmpty(leader) && views.All(v => v is not null && v.Leader == leader && v.Isr.Count == Brokers.Count && v.Replicas[0] == leader);
            },
            $"{stream}: every broker sees one leader and all {Brokers.Count} replicas in sync");
        return leader!;
    }

    /// <summary>Opens a direct view of etcd, as the brokers see it.</summary>
    public Task<EtcdMetadataStore> ConnectStoreAsync() =>
        EtcdMetadataStore.ConnectAsync(EtcdMetadataStoreOptions.Default with { Endpoints = [Etcd.ClientUrl] });

    /// <summary>The controller's broker id, from /sluice/controller.</summary>
    public static async Task<string?> ControllerAsync(IMetadataStore store)
    {
        var kv = (await store.RangeAsync(new RangeRequest(KeyRanges.Utf8("/sluice/controller")))).Kvs.SingleOrDefault();
        return kv is null ? null : ControllerRecord.Parser.ParseFrom(kv.Value).BrokerId;
    }

    /// <summary>Every registered broker's id and lease, from /sluice/brokers/.</summary>
    public static async Task<Dictionary<string, long>> BrokerLeasesAsync(IMetadataStore store)
    {
        var prefix = KeyRanges.Utf8("/sluice/brokers/");
        var kvs = (await store.RangeAsync(new RangeRequest(prefix) { RangeEnd = KeyRanges.PrefixEnd(prefix) })).Kvs;
        return kvs.ToDictionary(kv => BrokerRecord.Parser.ParseFrom(kv.Value).Id, kv => kv.Lease);
    }

    /// <summary>
    /// The partition's leader epoch as the controller decided it: the leader record's epoch, or the stream's create
    /// revision while no leadership change has been written (proto/internal.proto).
    /// </summary>
    public static async Task<long> LeaderEpochAsync(IMetadataStore store, string stream, int partition = 0)
    {
        var leader = (await store.RangeAsync(new RangeRequest(KeyRanges.Utf8($"/sluice/leaders/{stream}/{partition}")))).Kvs.SingleOrDefault();
        if (leader is not null)
        {
            return PartitionLeaderRecord.Parser.ParseFrom(leader.Value).LeaderEpoch;
        }

        var created = (await store.RangeAsync(new RangeRequest(KeyRanges.Utf8("/sluice/streams/" + stream)))).Kvs.Single();
        return created.CreateRevision;
    }

    /// <summary>Waits for <paramref name="condition"/>, polling, and fails after <paramref name="timeout"/> (default 30 s).</summary>
    public async Task WaitForAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        using var deadline = new CancellationTokenSource(timeout ?? Timeout);
        while (!await condition())
        {
            var exited = Brokers.FirstOrDefault(b => b.Process is { HasExited: true });
            if (exited is not null)
            {
                throw new Xunit.Sdk.XunitException($"waiting for {what}: broker {exited.Id} exited:\n{exited.Process!.Transcript()}");
            }

            try
            {
                await Task.Delay(100, deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new Xunit.Sdk.XunitException($"timed out waiting for {what}\n{LogTails()}");
            }
        }
    }

    /// <summary>The last lines each running broker wrote, so a timeout says what the brokers were doing.</summary>
    public string LogTails(int lines = 60)
    {
        var text = new System.Text.StringBuilder();
        foreach (var broker in Brokers)
        {
            if (broker.Process is { } process)
            {
                var all = process.Output.Where(l => !l.StartsWith("   at ", StringComparison.Ordinal)).ToList();
                text.Append("--- ").Append(broker.Id).Append(" (last ").Append(lines).Append(" lines) ---\n");
                text.AppendJoin('\n', all.Skip(Math.Max(0, all.Count - lines))).Append('\n');
            }
        }

        return text.ToString();
    }

    /// <summary>
    /// Every message of the partition on this broker up to <paramref name="lastOffset"/>, read with readISRReplica
    /// (so a follower serves its own copy).
    /// </summary>
    public static async Task<List<Message>> ReadLogAsync(BrokerProcess broker, string stream, long lastOffset, int partition = 0)
    {
        var messages = new List<Message>();
        if (lastOffset < 0)
        {
            return messages;
        }

        using var deadline = new CancellationTokenSource(Timeout);
        var request = new SubscribeRequest
        {
            Stream = stream,
            Partition = partition,
            StartPosition = Protocol.Api.StartPosition.Earliest,
            ReadISRReplica = true,
        };
        await using var call = broker.Channel.ServerStreaming("/proto.API/Subscribe", request, Message.Parser, cancellationToken: deadline.Token);
        Assert.True(await call.MoveNextAsync(), $"{broker.Id}: the subscription ended before its handshake frame");
        while (messages.Count == 0 || messages[^1].Offset < lastOffset)
        {
            Assert.True(await call.MoveNextAsync(), $"{broker.Id}: the subscription ended at {messages.Count} messages");
            messages.Add(call.Current);
        }

        return messages;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var broker in Brokers)
        {
            await KillAsync(broker);
            broker.Channel.Dispose();
        }

        await Etcd.DisposeAsync();
        _dir.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>One `sluice serve` child: fixed id, port and data directory across restarts.</summary>
internal sealed class BrokerProcess(string id, int port, string dataDir)
{
    public string Id { get; } = id;

    public int Port { get; } = port;

    public string DataDir { get; } = dataDir;

    public string Address => $"127.0.0.1:{Port}";

    /// <summary>The running child, or null while it is stopped.</summary>
    public SluiceProcess? Process { get; set; }

    public GrpcChannel Channel { get; } = new(new Uri($"http://127.0.0.1:{port}"));

    public Task<TResponse> CallAsync<TRequest, TResponse>(string method, TRequest request, Google.Protobuf.MessageParser<TResponse> parser, TimeSpan timeout)
        where TRequest : class, Google.Protobuf.IMessage<TRequest>
        where TResponse : class, Google.Protobuf.IMessage<TResponse>
        => Channel.UnaryAsync("/proto.API/" + method, request, parser, timeout);

    /// <summary>Publishes with ALL straight to this broker (3 s deadline) and returns the acked offset; throws on any error.</summary>
    public async Task<long> PublishAsync(string stream, string value)
    {
        var request = new PublishRequest { Stream = stream, Value = Google.Protobuf.ByteString.CopyFromUtf8(value), AckPolicy = Protocol.Api.AckPolicy.All };
        return (await CallAsync("Publish", request, PublishResponse.Parser, TimeSpan.FromSeconds(3))).Ack.Offset;
    }
}
