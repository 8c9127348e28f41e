using System.Collections.Concurrent;
using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Hashing;
using Api = Sluice.Protocol.Api;

namespace Sluice.Client.Tests.Fakes;

/// <summary>
/// A fake Liftbridge cluster: brokers that each serve <c>proto.API</c> over the real gRPC server
/// (Sluice.Server.Grpc) and share one in-memory state, like brokers sharing replicated metadata and
/// logs. Behaviour follows Liftbridge's (reference §1.3, §3.9): leaders, handshake frames, status
/// codes, async publish errors, cursors. Brokers can be stopped and restarted on the same port;
/// every call is recorded; faults can be injected.
/// </summary>
internal sealed class FakeCluster : IAsyncDisposable
{
    private readonly Dictionary<string, FakeStream> _streams = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _cursors = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(string Method, GrpcException Error)> _faults = new();
    private readonly ConcurrentQueue<PublishAsyncError> _asyncFaults = new();

    private FakeCluster()
    {
    }

    public Lock Gate { get; } = new();

    public List<FakeBroker> Brokers { get; } = [];

    /// <summary>Every call any broker received: (broker id, method, request).</summary>
    public ConcurrentQueue<(string Broker, string Method, IMessage Request)> Calls { get; } = new();

    /// <summary>PublishAsync requests are read but never answered (for ack timeouts).</summary>
    public bool DropAcks { get; set; }

    /// <summary>The <c>traceparent</c> call metadata of unary publishes (null when the call had none).</summary>
    public ConcurrentQueue<(string Method, string? TraceParent)> CallTraceParents { get; } = new();

    /// <summary>Serve TLS with these PEM files (set before the brokers start).</summary>
    public Sluice.Server.Grpc.GrpcServerTlsOptions? Tls { get; private init; }

    public static async Task<FakeCluster> StartAsync(int brokers = 1, int cursorPartitions = 0, Sluice.Server.Grpc.GrpcServerTlsOptions? tls = null)
    {
        var cluster = new FakeCluster { Tls = tls };
        for (var i = 0; i < brokers; i++)
        {
            var broker = new FakeBroker(cluster, $"broker-{i}");
            cluster.Brokers.Add(broker);
            await broker.StartAsync();
        }

        if (cursorPartitions > 0)
        {
            cluster.CreateStream(new CreateStreamRequest { Name = "__cursors", Subject = "lift.cursors", Partitions = cursorPartitions, ReplicationFactor = 1 });
        }

        return cluster;
    }

    public FakeBroker this[int index] => Brokers[index];

    public string[] Addresses => Brokers.Select(b => b.Address).ToArray();

    /// <summary>Makes the next call to <paramref name="method"/> fail with this status.</summary>
    public void FailNext(string method, GrpcStatusCode code, string detail) => _faults.Enqueue((method, new GrpcException(code, detail)));

    /// <summary>The next PublishAsync request gets this async error.</summary>
    public void FailNextPublish(PublishAsyncError.Types.Code code, string message) => _asyncFaults.Enqueue(new PublishAsyncError { Code = code, Message = message });

    public int CallCount(string method, string? broker = null) => Calls.Count(c => c.Method == method && (broker is null || c.Broker == broker));

    public T[] Requests<T>(string method)
        where T : IMessage => Calls.Where(c => c.Method == method).Select(c => (T)c.Request).ToArray();

    public FakeStream? GetStream(string name)
    {
        lock (Gate)
        {
            return _streams.GetValueOrDefault(name);
        }
    }

    public FakeStream CreateStream(CreateStreamRequest request)
    {
        lock (Gate)
        {
            if (string.IsNullOrEmpty(request.Name))
            {
                throw new GrpcException(GrpcStatusCode.InvalidArgument, "Name cannot be empty");
            }

            if (string.IsNullOrEmpty(request.Subject) || request.Subject.Contains(' ', StringComparison.Ordinal))
            {
                throw new GrpcException(GrpcStatusCode.InvalidArgument, "Subject is invalid");
            }

            var replication = request.ReplicationFactor == -1 ? Brokers.Count : Math.Max(request.ReplicationFactor, 1);
            if (replication > Brokers.Count)
            {
                throw new GrpcException(GrpcStatusCode.InvalidArgument, $"Invalid replicationFactor {request.ReplicationFactor}, cluster size {Brokers.Count}");
            }

            if (_streams.ContainsKey(request.Name))
            {
                throw new GrpcException(GrpcStatusCode.AlreadyExists, "stream already exists");
            }

            var count = Math.Max(request.Partitions, 1);
            var stream = new FakeStream(request.Name, request.Subject, request.Clone());
            for (var p = 0; p < count; p++)
            {
                var leader = Brokers[(_streams.Count + p) % Brokers.Count].Id;
                var replicas = Enumerable.Range(0, replication).Select(r => Brokers[(_streams.Count + p + r) % Brokers.Count].Id).ToList();
                stream.Partitions.Add(new FakePartition(stream, p, leader, replicas));
            }

            _streams[request.Name] = stream;
            return stream;
        }
    }

    /// <summary>Appends directly (as if published through NATS), e.g. while a broker is down.</summary>
    public long Append(string stream, int partition, string value, string? key = null)
    {
        lock (Gate)
        {
            return _streams[stream].Partitions[partition].Append(ByteString.CopyFromUtf8(key ?? string.Empty), ByteString.CopyFromUtf8(value), new Dictionary<string, ByteString>()).Offset;
        }
    }

    public void SetLeader(string stream, int partition, string brokerId)
    {
        lock (Gate)
        {
            _streams[stream].Partitions[partition].Leader = brokerId;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var broker in Brokers)
        {
            await broker.StopAsync();
        }

        lock (Gate)
        {
            foreach (var stream in _streams.Values)
            {
                foreach (var partition in stream.Partitions)
                {
                    partition.Signal();
                }
            }
        }
    }

    internal void Record(FakeBroker broker, string method, IMessage request)
    {
        Calls.Enqueue((broker.Id, method, request));
        if (_faults.TryPeek(out var fault) && fault.Method == method && _faults.TryDequeue(out fault))
        {
            throw fault.Error;
        }
    }

    internal IEnumerable<FakePartition> GetAllPartitions() => _streams.Values.SelectMany(s => s.Partitions).ToArray();

    internal PublishAsyncError? NextAsyncFault() => _asyncFaults.TryDequeue(out var fault) ? fault : null;

    internal FakeStream RequireStream(string name, GrpcStatusCode code, string detail) =>
        _streams.GetValueOrDefault(name) ?? throw new GrpcException(code, detail);

    internal void DeleteStream(string name)
    {
        lock (Gate)
        {
            if (name is "__cursors" or "__activity")
            {
                throw new GrpcException(GrpcStatusCode.InvalidArgument, "Stream is reserved");
            }

            var stream = RequireStream(name, GrpcStatusCode.NotFound, "stream does not exist");
            _streams.Remove(name);
            foreach (var partition in stream.Partitions)
            {
                partition.Deleted = true;
                partition.Signal();
            }
        }
    }

    internal FetchMetadataResponse Metadata(FetchMetadataRequest request)
    {
        lock (Gate)
        {
            var response = new FetchMetadataResponse();
            foreach (var broker in Brokers.Where(b => b.IsRunning))
            {
                var partitions = _streams.Values.SelectMany(s => s.Partitions).ToArray();
                response.Brokers.Add(new Broker
                {
                    Id = broker.Id,
                    Host = "127.0.0.1",
                    Port = broker.Port,
                    PartitionCount = partitions.Count(p => p.Replicas.Contains(broker.Id) && !p.Paused),
                    LeaderCount = partitions.Count(p => p.Leader == broker.Id && !p.Paused),
                });
            }

            var names = request.Streams.Count > 0 ? request.Streams.ToArray() : _streams.Keys.ToArray();
            foreach (var name in names)
            {
                if (!_streams.TryGetValue(name, out var stream))
                {
                    response.StreamMetadata.Add(new StreamMetadata { Name = name, Error = StreamMetadata.Types.Error.UnknownStream });
                    continue;
                }

                var metadata = new StreamMetadata { Name = name, Subject = stream.Subject, CreationTimestamp = stream.CreationTimestamp };
                foreach (var partition in stream.Partitions)
                {
                    metadata.Partitions[partition.Id] = partition.ToMetadata();
                }

                response.StreamMetadata.Add(metadata);
            }

            foreach (var group in request.Groups)
            {
                response.GroupMetadata.Add(new ConsumerGroupMetadata { GroupId = group, Error = ConsumerGroupMetadata.Types.Error.UnknownGroup });
            }

            return response;
        }
    }

    internal long? GetCursor(string key)
    {
        lock (Gate)
        {
            return _cursors.TryGetValue(key, out var offset) ? offset : null;
        }
    }

    internal void SetCursor(string key, long offset)
    {
        lock (Gate)
        {
            _cursors[key] = offset;
        }
    }

    /// <summary>The cursors partition a cursor lives in, as the server computes it.</summary>
    internal static int CursorPartition(string cursorId, string stream, int partition, int partitions) =>
        (int)(Crc32Ieee.Compute($"{cursorId},{stream},{partition}") % (uint)partitions);
}

internal sealed class FakeStream(string name, string subject, CreateStreamRequest request)
{
    public string Name { get; } = name;

    public string Subject { get; } = subject;

    public CreateStreamRequest Request { get; } = request;

    public long CreationTimestamp { get; } = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;

    public List<FakePartition> Partitions { get; } = [];

    public bool ResumeAll { get; set; }

    public bool Occ => Request.OptimisticConcurrencyControl?.Value == true;
}

/// <summary>A partition log in memory; the cluster's lock guards it.</summary>
internal sealed class FakePartition(FakeStream stream, int id, string leader, List<string> replicas)
{
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public FakeStream Stream { get; } = stream;

    public int Id { get; } = id;

    public string Leader { get; set; } = leader;

    public List<string> Replicas { get; } = replicas;

    public List<Message> Messages { get; } = [];

    public bool Paused { get; set; }

    public bool Readonly { get; set; }

    public bool Deleted { get; set; }

    public long FirstMessageTimestamp { get; private set; }

    public long PauseTimestamp { get; set; }

    public long ReadonlyTimestamp { get; set; }

    public string PartitionSubject => Id == 0 ? Stream.Subject : $"{Stream.Subject}.{Id}";

    /// <summary>Completes at the next change (append, pause, readonly, delete).</summary>
    public Task Changed => _changed.Task;

    public Message Append(ByteString key, ByteString value, IDictionary<string, ByteString> headers)
    {
        var message = new Message
        {
            Offset = Messages.Count,
            Key = key,
            Value = value,
            Timestamp = NowNanoseconds(),
            Stream = Stream.Name,
            Partition = Id,
            Subject = PartitionSubject,
        };
        message.Headers.Add(headers);
        message.Headers["subject"] = ByteString.CopyFromUtf8(PartitionSubject);
        message.Headers["reply"] = ByteString.Empty;
        Messages.Add(message);
        if (FirstMessageTimestamp == 0)
        {
            FirstMessageTimestamp = message.Timestamp;
        }

        Signal();
        return message;
    }

    public void Signal() => Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    public PartitionMetadata ToMetadata()
    {
        var metadata = new PartitionMetadata
        {
            Id = Id,
            Leader = Leader,
            HighWatermark = Messages.Count - 1,
            NewestOffset = Messages.Count - 1,
            Paused = Paused,
            Readonly = Readonly,
            MessagesReceivedTimestamps = new Api.PartitionEventTimestamps { FirstTimestamp = FirstMessageTimestamp, LatestTimestamp = Messages.Count == 0 ? 0 : Messages[^1].Timestamp },
            PauseTimestamps = new Api.PartitionEventTimestamps { FirstTimestamp = PauseTimestamp, LatestTimestamp = PauseTimestamp },
            ReadonlyTimestamps = new Api.PartitionEventTimestamps { FirstTimestamp = ReadonlyTimestamp, LatestTimestamp = ReadonlyTimestamp },
        };
        metadata.Replicas.Add(Replicas);
        metadata.Isr.Add(Replicas);
        return metadata;
    }

    private static long _lastTimestamp;

    /// <summary>Strictly increasing, so timestamp positions are unambiguous.</summary>
    public static long NowNanoseconds()
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000 + (DateTime.UtcNow.Ticks % 10_000) * 100;
        long last;
        do
        {
            last = Interlocked.Read(ref _lastTimestamp);
            if (now <= last)
            {
                now = last + 1;
            }
        }
        while (Interlocked.CompareExchange(ref _lastTimestamp, now, last) != last);
        return now;
    }
}
