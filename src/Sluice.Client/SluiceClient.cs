using System.Collections.Concurrent;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Sluice.Client.Connections;
using Sluice.Client.Grpc;
using Sluice.Client.Internal;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Hashing;

namespace Sluice.Client;

/// <summary>
/// A client of a Sluice or Liftbridge cluster (the .NET counterpart of go-liftbridge v2). Thread
/// safe; create one per application and dispose it at the end. One seed address is enough: the
/// client learns the other brokers from the cluster metadata, keeps one connection set per broker,
/// sends partition requests to the partition leader and fails over to other brokers.
/// </summary>
public sealed partial class SluiceClient : IAsyncDisposable
{
    private const string ApiPrefix = "/proto.API/";
    private const int ResilientAttempts = 10;       // go-liftbridge doResilientRPC
    private const int LeaderAttempts = 5;           // go-liftbridge doResilientLeaderRPC
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(50);

    private const string CursorsStream = "__cursors";

    // A metadata read that takes longer goes to another broker (a paused broker keeps its connections open).
    private static readonly TimeSpan MetadataTimeout = TimeSpan.FromSeconds(2);

    private readonly string[] _seeds;
    private readonly Dictionary<string, BrokerConnection> _connections = new(StringComparer.Ordinal);
    private volatile BrokerConnection? _lastConnection;
    private readonly Lock _gate = new();
    private readonly GrpcChannelOptions _channelOptions;
    private readonly CancellationTokenSource _closing = new();
    private readonly ILogger _logger;
    private volatile SluiceMetadata _metadata = SluiceMetadata.Empty;
    private volatile string[] _addresses;
    private Task<SluiceMetadata>? _refresh;
    private int _refreshVersion; // the _streamsInUseVersion the shared refresh asked for

    // The streams this client has used (published to, subscribed, called): what its own metadata refreshes ask for,
    // as Kafka's clients fetch only the topics they use. One broker's metadata for 100,000 partitions is about 11 MB.
    private readonly ConcurrentDictionary<string, byte> _streamsInUse = new(StringComparer.Ordinal);
    private int _streamsInUseVersion;
    private readonly bool _useTls;
    private volatile bool _disposed;

    /// <summary>
    /// Creates a client without contacting any broker; the first call connects. Use
    /// <see cref="ConnectAsync(CancellationToken)"/> to connect (and fail) early.
    /// </summary>
    /// <param name="addresses">Seed brokers, "host:port" (or "http://host:port", "https://host:port").</param>
    /// <param name="options">Client options; null means <see cref="SluiceClientOptions.Default"/>.</param>
    /// <exception cref="ArgumentException">No addresses, or an invalid option.</exception>
    public SluiceClient(IEnumerable<string> addresses, SluiceClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        Options = options ?? SluiceClientOptions.Default;
        Options.Validate();
        var list = addresses.ToArray();
        _useTls = Options.UsesTls || list.Any(a => a?.TrimStart().StartsWith("https://", StringComparison.OrdinalIgnoreCase) == true);
        _seeds = list.Where(a => !string.IsNullOrWhiteSpace(a)).Select(NormalizeAddress).Distinct(StringComparer.Ordinal).ToArray();
        if (_seeds.Length == 0)
        {
            throw new ArgumentException("no addresses provided", nameof(addresses));
        }

        _addresses = _seeds;
        _logger = Options.LoggerFactory.CreateLogger<SluiceClient>();
        _channelOptions = CreateChannelOptions(Options);
    }

    /// <summary>The options the client was created with.</summary>
    public SluiceClientOptions Options { get; }

    /// <summary>
    /// The cluster metadata the client last fetched (empty before the first fetch): every broker, and the streams this
    /// client has used (published to, subscribed to, called an RPC on), or every stream after an unfiltered
    /// <see cref="FetchMetadataAsync"/>. The client's own refreshes ask only for the streams it uses.
    /// </summary>
    public SluiceMetadata Metadata => _metadata;

    /// <summary>Creates a client and connects it: fetches the cluster metadata from one of <paramref name="addresses"/>.</summary>
    /// <param name="addresses">Seed brokers, "host:port" (or "http://host:port", "https://host:port").</param>
    /// <param name="options">Client options; null means <see cref="SluiceClientOptions.Default"/>.</param>
    /// <param name="cancellationToken">Cancels the connection attempt.</param>
    /// <exception cref="ArgumentException">No addresses, or an invalid option.</exception>
    /// <exception cref="BrokerUnavailableException">No broker could be reached.</exception>
    public static async Task<SluiceClient> ConnectAsync(IEnumerable<string> addresses, SluiceClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        var client = new SluiceClient(addresses, options);
        try
        {
            await client.ConnectAsync(cancellationToken).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Connects: fetches the cluster metadata, which also tells the client every broker's address.</summary>
    /// <param name="cancellationToken">Cancels the attempt.</param>
    /// <exception cref="BrokerUnavailableException">No broker could be reached.</exception>
    public async Task ConnectAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        await RefreshMetadataAsync(cancellationToken).ConfigureAwait(false);
        _logger.LogInformation("Connected to {Brokers} broker(s), {Streams} stream(s) known", _metadata.Brokers.Count, _metadata.Streams.Count);
    }

    /// <summary>Creates a stream attached to a NATS subject.</summary>
    /// <param name="subject">The NATS subject the stream records.</param>
    /// <param name="name">The stream name, unique in the cluster.</param>
    /// <param name="options">Stream settings; null means <see cref="StreamOptions.Default"/>.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="StreamExistsException">A stream with this name exists.</exception>
    public async Task CreateStreamAsync(string subject, string name, StreamOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subject);
        ArgumentNullException.ThrowIfNull(name);
        options ??= StreamOptions.Default;
        if (options.Partitions < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Partitions, "number of partitions cannot be negative");
        }

        ThrowIfDisposed();
        var request = new CreateStreamRequest
        {
            Subject = subject,
            Name = name,
            Group = options.Group ?? string.Empty,
            ReplicationFactor = options.ReplicationFactor,
            Partitions = options.Partitions,
            RetentionMaxBytes = Int64(options.RetentionMaxBytes),
            RetentionMaxMessages = Int64(options.RetentionMaxMessages),
            RetentionMaxAge = Milliseconds(options.RetentionMaxAge),
            CleanerInterval = Milliseconds(options.CleanerInterval),
            SegmentMaxBytes = Int64(options.SegmentMaxBytes),
            SegmentMaxAge = Milliseconds(options.SegmentMaxAge),
            CompactMaxGoroutines = Int32(options.CompactMaxGoroutines),
            CompactEnabled = Bool(options.CompactEnabled),
            AutoPauseTime = Milliseconds(options.AutoPauseTime),
            AutoPauseDisableIfSubscribers = Bool(options.AutoPauseDisableIfSubscribers),
            MinIsr = Int32(options.MinIsr),
            OptimisticConcurrencyControl = Bool(options.OptimisticConcurrencyControl),
            Encryption = Bool(options.Encryption),
        };
        await InvokeAnyAsync("CreateStream", request, CreateStreamResponse.Parser, RpcKind.CreateStream, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Deletes a stream and all its data.</summary>
    /// <param name="name">The stream name.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="NoSuchStreamException">There is no such stream.</exception>
    public async Task DeleteStreamAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        ThrowIfDisposed();
        await InvokeAnyAsync("DeleteStream", new DeleteStreamRequest { Name = name }, DeleteStreamResponse.Parser, RpcKind.DeleteStream, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Pauses partitions of a stream: they stop consuming resources until a publish (or a
    /// subscription with <see cref="SubscribeOptions.Resume"/>) resumes them.
    /// </summary>
    /// <param name="name">The stream name.</param>
    /// <param name="options">Which partitions; null means all of them, resumed one at a time.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="NoSuchPartitionException">The stream or a partition does not exist.</exception>
    public async Task PauseStreamAsync(string name, PauseStreamOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        options ??= PauseStreamOptions.Default;
        ThrowIfDisposed();
        var request = new PauseStreamRequest { Name = name, ResumeAll = options.ResumeAll };
        if (options.Partitions is { } partitions)
        {
            request.Partitions.Add(partitions);
        }

        await InvokeAnyAsync("PauseStream", request, PauseStreamResponse.Parser, RpcKind.PauseOrReadonly, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Makes partitions of a stream readonly (or writable again).</summary>
    /// <param name="name">The stream name.</param>
    /// <param name="options">Which partitions and which way; null means all partitions become readonly.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="NoSuchPartitionException">The stream or a partition does not exist.</exception>
    public async Task SetStreamReadonlyAsync(string name, SetStreamReadonlyOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(name);
        options ??= SetStreamReadonlyOptions.Default;
        ThrowIfDisposed();
        var request = new SetStreamReadonlyRequest { Name = name, Readonly = options.Readonly };
        if (options.Partitions is { } partitions)
        {
            request.Partitions.Add(partitions);
        }

        await InvokeAnyAsync("SetStreamReadonly", request, SetStreamReadonlyResponse.Parser, RpcKind.PauseOrReadonly, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Fetches the cluster metadata. Without a stream filter, the result also replaces the client's
    /// cached metadata (and its list of known brokers).
    /// </summary>
    /// <param name="options">Which streams and consumer groups; null means every stream.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<SluiceMetadata> FetchMetadataAsync(FetchMetadataOptions? options = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        options ??= FetchMetadataOptions.Default;
        if ((options.Streams is null || options.Streams.Count == 0) && (options.ConsumerGroups is null || options.ConsumerGroups.Count == 0))
        {
            // Every stream, asked for: cached as it is until the client's next refresh of the streams it uses.
            var all = await InvokeAnyAsync("FetchMetadata", new FetchMetadataRequest(), FetchMetadataResponse.Parser, RpcKind.Other, null, cancellationToken).ConfigureAwait(false);
            return Cache(SluiceMetadata.FromProto(all, DateTimeOffset.UtcNow));
        }

        var request = new FetchMetadataRequest();
        if (options.Streams is { } streams)
        {
            request.Streams.Add(streams);
        }

        if (options.ConsumerGroups is { } groups)
        {
            request.Groups.Add(groups);
        }

        var response = await InvokeAnyAsync("FetchMetadata", request, FetchMetadataResponse.Parser, RpcKind.Other, null, cancellationToken).ConfigureAwait(false);
        return SluiceMetadata.FromProto(response, DateTimeOffset.UtcNow);
    }

    /// <summary>Fetches one partition's metadata from its leader (its high watermark and newest offset are the leader's own).</summary>
    /// <param name="stream">The stream name.</param>
    /// <param name="partition">The partition.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="NoSuchStreamException">The stream is not in the cluster metadata.</exception>
    /// <exception cref="NoSuchPartitionException">The partition is not in the cluster metadata.</exception>
    public async Task<PartitionInfo> FetchPartitionMetadataAsync(string stream, int partition, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfNegative(partition);
        ThrowIfDisposed();
        var request = new FetchPartitionMetadataRequest { Stream = stream, Partition = partition };
        var response = await InvokeLeaderAsync(stream, partition, "FetchPartitionMetadata", request, FetchPartitionMetadataResponse.Parser, cancellationToken).ConfigureAwait(false);
        var brokers = _metadata.Brokers.ToDictionary(b => b.Id, StringComparer.Ordinal);
        return PartitionInfo.FromProto(response.Metadata ?? new PartitionMetadata { Id = partition }, brokers);
    }

    /// <summary>Stores a cursor: the offset a named reader has reached in a stream partition.</summary>
    /// <param name="cursorId">The cursor id.</param>
    /// <param name="stream">The stream name.</param>
    /// <param name="partition">The partition.</param>
    /// <param name="offset">The offset to store.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task SetCursorAsync(string cursorId, string stream, int partition, long offset, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cursorId);
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfNegative(partition);
        ThrowIfDisposed();
        var request = new SetCursorRequest { CursorId = cursorId, Stream = stream, Partition = partition, Offset = offset };
        await InvokeCursorAsync(cursorId, stream, partition, "SetCursor", request, SetCursorResponse.Parser, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads a cursor: the stored offset, or -1 when none is stored.</summary>
    /// <param name="cursorId">The cursor id.</param>
    /// <param name="stream">The stream name.</param>
    /// <param name="partition">The partition.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<long> FetchCursorAsync(string cursorId, string stream, int partition, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cursorId);
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfNegative(partition);
        ThrowIfDisposed();
        var request = new FetchCursorRequest { CursorId = cursorId, Stream = stream, Partition = partition };
        var response = await InvokeCursorAsync(cursorId, stream, partition, "FetchCursor", request, FetchCursorResponse.Parser, cancellationToken).ConfigureAwait(false);
        return response.Offset;
    }

    /// <summary>
    /// Closes the client: ends subscriptions, lets in-flight publishes receive their acks (up to
    /// <see cref="SluiceClientOptions.AckWaitTime"/>), then closes every connection.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        BrokerConnection[] connections;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            connections = [.. _connections.Values];
            _connections.Clear();
            _lastConnection = null;
        }

        await _closing.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(connections.Select(c => c.DisposeAsync().AsTask())).ConfigureAwait(false);
        _closing.Dispose();
    }

    /// <summary>The cursors partition that stores a cursor: crc32("id,stream,partition") % cursor partitions (as the server computes it).</summary>
    internal static int CursorsPartition(string cursorId, string stream, int partition, int cursorPartitions) =>
        (int)(Crc32Ieee.Compute($"{cursorId},{stream},{partition}") % (uint)cursorPartitions);

    internal CancellationToken ClosingToken => _closing.Token;

    internal ILogger Logger => _logger;

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>The connection to <paramref name="address"/> ("host:port"), created on first use.</summary>
    internal BrokerConnection GetConnection(string address)
    {
        // Publishes to one broker ask for the same connection each time: skip the lock for it.
        if (_lastConnection is { } last && string.Equals(last.Address, address, StringComparison.Ordinal) && !_disposed)
        {
            return last;
        }

        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_connections.TryGetValue(address, out var connection))
            {
                connection = new BrokerConnection(address, ToUri(address), _channelOptions, Options.AckWaitTime, _logger, _resend ??= Resend, _silent ??= OnSilentPublishStream);
                _connections[address] = connection;
                _logger.LogDebug("Opened a connection to {Address}", address);
            }

            _lastConnection = connection;

            return connection;
        }
    }

    /// <summary>
    /// Notes that the client uses <paramref name="stream"/>: its refreshes ask for it from now on. True the first time
    /// (the cached metadata cannot know it yet).
    /// </summary>
    internal bool UseStream(string stream)
    {
        if (!_streamsInUse.TryAdd(stream, 0))
        {
            return false;
        }

        Interlocked.Increment(ref _streamsInUseVersion);
        return true;
    }

    /// <summary>Refreshes the cached metadata (brokers, the streams in use); concurrent callers share one fetch.</summary>
    internal async Task<SluiceMetadata> RefreshMetadataAsync(CancellationToken cancellationToken)
    {
        // A fetch that started before this caller's stream was noted does not answer for it: wait for the next one.
        var wanted = Volatile.Read(ref _streamsInUseVersion);
        while (true)
        {
            Task<SluiceMetadata> refresh;
            int version;
            TaskCompletionSource<SluiceMetadata>? fetch = null;
            lock (_gate)
            {
                // The shared fetch is published before it starts: one that completed synchronously (a fast
                // server, a response already read) used to clear _refresh before `??=` stored it, and every
                // later refresh then returned that first, stale answer.
                if (_refresh is null)
                {
                    fetch = new TaskCompletionSource<SluiceMetadata>(TaskCreationOptions.RunContinuationsAsynchronously);
                    _refresh = fetch.Task;
                    _refreshVersion = Volatile.Read(ref _streamsInUseVersion);
                }

                refresh = _refresh;
                version = _refreshVersion;
            }

            if (fetch is not null)
            {
                _ = FetchAndCacheMetadataCoreAsync(fetch); // never faults: the outcome goes to the shared task
            }

            var metadata = await refresh.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (version >= wanted)
            {
                return metadata;
            }
        }
    }

    /// <summary>
    /// What the client's own refreshes ask for: the streams in use. With none yet it names the cursors stream (which
    /// cursor calls use), because an empty list would mean every stream; a stream that does not exist comes back as
    /// an error entry, which the cache leaves out.
    /// </summary>
    private FetchMetadataRequest StreamsInUseRequest()
    {
        var request = new FetchMetadataRequest();
        request.Streams.Add(_streamsInUse.IsEmpty ? [CursorsStream] : _streamsInUse.Keys);
        return request;
    }

    private SluiceMetadata Cache(SluiceMetadata metadata)
    {
        _metadata = metadata;
        _addresses = [.. _seeds.Union(metadata.Brokers.Select(b => b.Address), StringComparer.Ordinal)];
        return metadata;
    }

    /// <summary>Calls <paramref name="method"/> on a random known broker, moving to the next on UNAVAILABLE (go-liftbridge doResilientRPC).</summary>
    internal async Task<TResponse> InvokeAnyAsync<TRequest, TResponse>(string method, TRequest request, MessageParser<TResponse> parser, RpcKind kind, TimeSpan? timeout, CancellationToken cancellationToken)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
    {
        var addresses = _addresses;
        var start = Random.Shared.Next(addresses.Length);
        GrpcException? last = null;
        for (var attempt = 0; attempt < ResilientAttempts; attempt++)
        {
            if (attempt > 0)
            {
                await Task.Delay(RetryDelay, cancellationToken).ConfigureAwait(false);
                addresses = _addresses;
            }

            var address = addresses[(start + attempt) % addresses.Length];
            try
            {
                // A method of another service (Sluice's admin calls) comes as its full path.
                var path = method.StartsWith('/') ? method : ApiPrefix + method;
                return await GetConnection(address).Channel.UnaryAsync(path, request, parser, timeout, cancellationToken).ConfigureAwait(false);
            }
            catch (GrpcException ex) when (ex.StatusCode == GrpcStatusCode.Unavailable || (ex.StatusCode == GrpcStatusCode.DeadlineExceeded && method == "FetchMetadata"))
            {
                // A metadata read may go anywhere: a broker that does not answer in time (a paused process keeps its
                // connections open) is passed over like one that is down.
                _logger.LogDebug("{Method} on {Address} failed: {Detail}; trying another broker", method, address, ex.Detail);
                last = ex;
            }
            catch (GrpcException ex)
            {
                throw SluiceErrors.FromStatus(ex, kind);
            }
        }

        throw new BrokerUnavailableException($"{method}: no broker reachable (tried {string.Join(", ", addresses)}): {last!.Detail}", last);
    }

    /// <summary>
    /// Calls <paramref name="method"/> on the leader of a partition; on UNAVAILABLE, FAILED_PRECONDITION
    /// (not the leader any more) or an unknown leader, refreshes the metadata and tries again
    /// (go-liftbridge doResilientLeaderRPC).
    /// </summary>
    internal async Task<TResponse> InvokeLeaderAsync<TRequest, TResponse>(string stream, int partition, string method, TRequest request, MessageParser<TResponse> parser, CancellationToken cancellationToken)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
    {
        Exception? last = null;
        for (var attempt = 0; attempt < LeaderAttempts; attempt++)
        {
            if (attempt > 0 || _metadata.GetStream(stream) is null)
            {
                UseStream(stream);
                if (attempt > 0)
                {
                    await Task.Delay(RetryDelay, cancellationToken).ConfigureAwait(false);
                }

                await TryRefreshMetadataAsync(cancellationToken).ConfigureAwait(false);
            }

            var address = LeaderAddress(stream, partition, out var lookupError);
            if (address is null)
            {
                last = lookupError;
                continue;
            }

            try
            {
                return await GetConnection(address).Channel.UnaryAsync(ApiPrefix + method, request, parser, null, cancellationToken).ConfigureAwait(false);
            }
            catch (GrpcException ex) when (ex.StatusCode is GrpcStatusCode.Unavailable or GrpcStatusCode.FailedPrecondition)
            {
                _logger.LogDebug("{Method} on {Address} failed: {Detail}; refreshing metadata", method, address, ex.Detail);
                last = ex;
            }
            catch (GrpcException ex)
            {
                throw SluiceErrors.FromStatus(ex, RpcKind.Other);
            }
        }

        throw last is GrpcException grpc ? SluiceErrors.FromStatus(grpc, RpcKind.Other) : last!;
    }

    /// <summary>"host:port" of the leader of a partition in the cached metadata, or null (publishes ask this for every message: it builds nothing).</summary>
    internal string? LeaderAddress(string stream, int partition) => LeaderAddress(_metadata, stream, partition);

    /// <summary>"host:port" of the leader of a partition in the cached metadata, or null with the reason.</summary>
    internal string? LeaderAddress(string stream, int partition, out SluiceException? error)
    {
        var metadata = _metadata;
        var address = LeaderAddress(metadata, stream, partition);
        error = address is not null ? null
            : metadata.GetStream(stream) is not { } info ? new NoSuchStreamException($"{SluiceErrors.NoSuchStream}: no known stream '{stream}'")
            : info.GetPartition(partition) is null ? new NoSuchPartitionException($"{SluiceErrors.NoSuchPartition}: no known partition {partition} of stream '{stream}'")
            : new BrokerUnavailableException($"no known leader for partition {partition} of stream '{stream}'");
        return address;
    }

    private static string? LeaderAddress(SluiceMetadata metadata, string stream, int partition) =>
        metadata.GetStream(stream)?.GetPartition(partition)?.Leader?.Address;

    /// <summary>Refreshes the metadata, keeping the old one if no broker answers (the caller's retry decides).</summary>
    internal async Task TryRefreshMetadataAsync(CancellationToken cancellationToken)
    {
        try
        {
            await RefreshMetadataAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (SluiceException ex)
        {
            _logger.LogDebug(ex, "Metadata refresh failed");
        }
    }

    private async Task<TResponse> InvokeCursorAsync<TRequest, TResponse>(string cursorId, string stream, int partition, string method, TRequest request, MessageParser<TResponse> parser, CancellationToken cancellationToken)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
    {
        if (_metadata.PartitionCountForStream(CursorsStream) == 0)
        {
            UseStream(CursorsStream);
            await TryRefreshMetadataAsync(cancellationToken).ConfigureAwait(false);
        }

        var cursorPartitions = _metadata.PartitionCountForStream(CursorsStream);
        if (cursorPartitions == 0)
        {
            // Cursors look disabled; any broker gives the authoritative error ("Cursors stream does not exist").
            return await InvokeAnyAsync(method, request, parser, RpcKind.Other, null, cancellationToken).ConfigureAwait(false);
        }

        var target = CursorsPartition(cursorId, stream, partition, cursorPartitions);
        return await InvokeLeaderAsync(CursorsStream, target, method, request, parser, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Fetches the metadata, caches it, and completes <paramref name="fetch"/> (the shared refresh) with it.</summary>
    private async Task FetchAndCacheMetadataCoreAsync(TaskCompletionSource<SluiceMetadata> fetch)
    {
        try
        {
            var response = await InvokeAnyAsync("FetchMetadata", StreamsInUseRequest(), FetchMetadataResponse.Parser, RpcKind.Other, MetadataTimeout, _closing.Token).ConfigureAwait(false);
            var metadata = Cache(SluiceMetadata.FromProto(response, DateTimeOffset.UtcNow));
            EndRefresh(fetch);
            fetch.TrySetResult(metadata);
        }
        catch (Exception ex)
        {
            EndRefresh(fetch);
            fetch.TrySetException(ex);
        }
    }

    /// <summary>The next refresh fetches anew (before the waiters of this one resume, so none of them joins a finished fetch).</summary>
    private void EndRefresh(TaskCompletionSource<SluiceMetadata> fetch)
    {
        lock (_gate)
        {
            if (_refresh == fetch.Task)
            {
                _refresh = null;
            }
        }
    }

    private Uri ToUri(string address) => new($"{(_useTls ? "https" : "http")}://{address}/");

    private static string NormalizeAddress(string address)
    {
        address = address.Trim();
        if (address.Contains("://", StringComparison.Ordinal))
        {
            var uri = new Uri(address);
            return $"{(uri.HostNameType == UriHostNameType.IPv6 ? $"[{uri.IdnHost}]" : uri.Host)}:{uri.Port}";
        }

        return address;
    }

    private static GrpcChannelOptions CreateChannelOptions(SluiceClientOptions options)
    {
        var tls = options.Tls;
        if (options.TlsCertificateFile is { } file)
        {
            var roots = new X509Certificate2Collection();
            roots.ImportFromPemFile(file);
            tls = (tls ?? new GrpcClientTlsOptions()) with { TrustedCertificateAuthorities = roots };
        }

        return GrpcChannelOptions.Default with
        {
            ConnectionCount = options.MaxConnectionsPerBroker,
            KeepAlivePingDelay = options.KeepAliveTime,
            ConnectTimeout = options.ConnectTimeout,
            MaxReceiveMessageSize = options.MaxReceiveMessageSize,
            Tls = tls,
            Transport = options.Transport,
        };
    }

    private static NullableInt64? Int64(long? value) => value is { } v ? new NullableInt64 { Value = v } : null;

    private static NullableInt32? Int32(int? value) => value is { } v ? new NullableInt32 { Value = v } : null;

    private static NullableBool? Bool(bool? value) => value is { } v ? new NullableBool { Value = v } : null;

    private static NullableInt64? Milliseconds(TimeSpan? value) => value is { } v ? new NullableInt64 { Value = (long)v.TotalMilliseconds } : null;
}
