using System.Collections.Concurrent;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Api;
using Sluice.Protocol.Internal;
using Sluice.Server.Configuration;
using Sluice.Storage.Log;
using Sluice.Storage.Metadata;

namespace Sluice.Server.Streams;

/// <summary>
/// The broker: streams and their partitions, the metadata operations on them (create, delete, pause,
/// resume, readonly), publish routing, the cursors and activity streams. Metadata operations are
/// serialised by one lock and persisted before they answer; publishes and subscriptions never take it
/// (except to resume a paused partition).
/// </summary>
/// <remarks>
/// On a single node the broker loads its streams from the embedded store and runs the admin calls itself
/// (<see cref="IStreamAdmin"/>). In a cluster it starts empty: <c>Cluster/ReplicaManager</c> adds and removes
/// streams as the shared metadata says (<see cref="AddStreamLocked"/>, <see cref="RemoveStreamLockedAsync"/>),
/// admin calls go to the controller, and a publish for a partition led elsewhere goes to <see cref="Forwarder"/>.
/// </remarks>
internal sealed partial class Broker : IStreamAdmin, IAsyncDisposable
{
    public const string ActivityStreamName = "__activity";
    public const string CursorsStreamName = "__cursors";

    /// <summary>Liftbridge's timeout for the server's own cursor publishes (activity events use `activity.stream.publish.timeout`).</summary>
    private static readonly TimeSpan InternalPublishTimeout = TimeSpan.FromSeconds(5);

    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly ConcurrentDictionary<string, MessageStream> _streams = new(StringComparer.Ordinal);
    private readonly StreamCatalog _catalog;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private Func<Partition, Task>? _autoPause; // one delegate each for every partition, not two per partition
    private Func<Partition, Task>? _saveState;
    private volatile bool _stopped;

    private Broker(BrokerContext context, IMetadataStore store, ILoggerFactory loggers)
    {
        Context = context;
        _catalog = new StreamCatalog(store);
        _loggers = loggers;
        _logger = loggers.CreateLogger<Broker>();
        Cursors = new CursorStore(this);
    }

    public BrokerContext Context { get; }

    public ServerOptions Options => Context.Options;

    public string ServerId => Context.ServerId;

    public CursorStore Cursors { get; }

    public ILoggerFactory Loggers => _loggers;

    /// <summary>Cancelled when the broker starts stopping.</summary>
    public CancellationToken Stopping => _stopping.Token;

    public bool IsStopped => _stopped;

    /// <summary>In a cluster: where publishes for partitions this broker does not lead go. Null on a single node.</summary>
    public IPublishForwarder? Forwarder { get; set; }

    /// <summary>Loads the streams, reopens their logs (recovering torn tails) and creates the internal streams.</summary>
    public static async Task<Broker> OpenAsync(BrokerContext context, IMetadataStore store, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var broker = new Broker(context, store, loggers);
        await broker.LoadAsync(cancellationToken).ConfigureAwait(false);
        return broker;
    }

    /// <summary>A cluster member's broker: empty until the cluster layer adds the streams the metadata holds.</summary>
    public static Broker OpenClustered(BrokerContext context, IMetadataStore store, ILoggerFactory loggers) => new(context, store, loggers);

    /// <summary>Runs <paramref name="action"/> under the metadata lock (the cluster layer changing roles and streams).</summary>
    public async Task WithLockAsync(Func<Task> action, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfStopped();
            await action().ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// Adds a stream the cluster metadata holds; its partitions stay closed until given a role. <paramref name="prepare"/>
    /// gives each partition its leadership before the stream becomes visible to publishers. Caller holds the lock.
    /// </summary>
    public MessageStream AddStreamLocked(StreamRecord record, long createRevision, IReadOnlyDictionary<int, PartitionStateRecord> states, Action<Partition> prepare)
    {
        var stream = Build(record, createRevision, states);
        foreach (var partition in stream.Partitions)
        {
            prepare(partition);
        }

        _streams[stream.Name] = stream;
        return stream;
    }

    /// <summary>Removes a stream the cluster metadata no longer holds, closing its partitions and deleting its data. Caller holds the lock.</summary>
    public async Task RemoveStreamLockedAsync(MessageStream stream)
    {
        _streams.TryRemove(new KeyValuePair<string, MessageStream>(stream.Name, stream));
        foreach (var partition in stream.Partitions)
        {
            await partition.CloseAsync(PartitionCloseReason.Deleted).ConfigureAwait(false);
            partition.Dispose();
        }

        var directory = Path.Combine(Context.StreamsDirectory, stream.Name);
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }

        Cursors.ForgetStream(stream.Name);
        LogDeleted(_logger, stream.Name);
    }

    Task IStreamAdmin.CreateStreamAsync(CreateStreamRequest request, CancellationToken cancellationToken) => CreateStreamAsync(request, internalStream: false, cancellationToken);

    private async Task LoadAsync(CancellationToken cancellationToken)
    {
        var streams = (await _catalog.LoadAsync(cancellationToken).ConfigureAwait(false))
            .Select(loaded => Build(loaded.Record, loaded.CreateRevision, loaded.Partitions))
            .ToList();

        // Opening a log is a few small reads and opens of files (its recovery reads more only after a crash): with
        // tens of thousands of partitions a restart is bounded by those system calls, so every core opens logs.
        Parallel.ForEach(
            streams.SelectMany(stream => stream.Partitions),
            new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount, CancellationToken = cancellationToken },
            partition => partition.Open(Context, partition.Stream.Epoch));
        foreach (var stream in streams)
        {
            foreach (var partition in stream.Partitions.Where(p => p.IsPaused))
            {
                await partition.CloseAsync(PartitionCloseReason.Paused).ConfigureAwait(false); // read HW/newest, then free the files
            }

            _streams[stream.Name] = stream;
        }

        foreach (var request in InternalStreamRequests(clusterSize: 1))
        {
            if (!_streams.ContainsKey(request.Name))
            {
                await CreateStreamAsync(request, internalStream: true, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The server's own streams as configured: the activity stream and the cursors stream, when enabled.</summary>
    public IEnumerable<CreateStreamRequest> InternalStreamRequests(int clusterSize, bool groupsInUse = false)
    {
        if (Options.Activity.Enabled)
        {
            yield return new CreateStreamRequest
            {
                Name = ActivityStreamName,
                Subject = Options.Clustering.Namespace + ".activity",
                Partitions = 1,
                ReplicationFactor = -1,
            };
        }

        if (Options.Cursors.Partitions > 0 || groupsInUse)
        {
            yield return new CreateStreamRequest
            {
                Name = CursorsStreamName,
                Subject = Options.Clustering.Namespace + ".cursors",
                // Consumer groups keep their positions in cursors, so they turn cursors on (docs/consumer-groups.md).
                Partitions = Options.Cursors.Partitions > 0 ? Options.Cursors.Partitions : CursorStore.PartitionsForGroups,
                // -1 (all) or at most the cluster (a single server: a warning at startup says so).
                ReplicationFactor = Options.Cursors.ReplicationFactor == -1 ? -1 : Math.Min(Options.Cursors.ReplicationFactor, clusterSize),
                CompactEnabled = new NullableBool { Value = true },
                AutoPauseTime = new NullableInt64 { Value = (long)Options.Cursors.AutoPauseTime.TotalMilliseconds },
                AutoPauseDisableIfSubscribers = new NullableBool { Value = true },
            };
        }
    }

    private MessageStream Build(StreamRecord record, long epoch, IReadOnlyDictionary<int, PartitionStateRecord> states)
    {
        var request = record.Request;
        if (request.Name == CursorsStreamName)
        {
            // Re-applied on every start, as Liftbridge does.
            request.AutoPauseTime = new NullableInt64 { Value = (long)Options.Cursors.AutoPauseTime.TotalMilliseconds };
        }

        var stream = new MessageStream(record, epoch, StreamSettings.Resolve(request, Options));
        var logger = _loggers.CreateLogger<Partition>();
        stream.Partitions = Enumerable.Range(0, Math.Max(1, request.Partitions))
            .Select(id => new Partition(stream, id, PartitionDirectory(stream.Name, id), states.GetValueOrDefault(id), _autoPause ??= AutoPauseAsync, logger, _saveState ??= SaveStateAsync))
            .ToArray();
        return stream;
    }

    private string PartitionDirectory(string stream, int id) =>
        Path.Combine(Context.StreamsDirectory, stream, id.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public IEnumerable<MessageStream> Streams => _streams.Values;

    public bool TryGetStream(string name, out MessageStream stream) => _streams.TryGetValue(name, out stream!);

    // ---------------------------------------------------------------- metadata operations

    /// <summary>The answer to a CreateStream whose directory exists without metadata (the repair command is `sluice repair`).</summary>
    public const string OrphanDataMessage =
        "data for this stream name exists on disk without metadata; run 'sluice repair --data-dir <data dir>' on the server to move it aside, then create the stream again";

    /// <summary>
    /// CreateStream with Liftbridge's validation order (§1.3) and Sluice's limits (<see cref="StreamLimits"/>).
    /// Every field is checked before anything is written. Then, under the lock: the directories are created
    /// (and fsynced under durability always) and each log is opened once, so a full disk or a refusing file
    /// system fails before the metadata is touched; the metadata is written (the commit point); the partitions
    /// open; only then does the stream join the in-memory map. A failure removes what was written.
    /// </summary>
    /// <summary>
    /// Checks a CreateStream in Liftbridge's order and fills its defaults (a copy is returned): everything is
    /// refused here, before anything is written. <paramref name="clusterSize"/> bounds the replication factor.
    /// </summary>
    public CreateStreamRequest NormalizeCreate(CreateStreamRequest request, bool internalStream, int clusterSize)
    {
        request = request.Clone();
        if (request.ReplicationFactor == 0)
        {
            request.ReplicationFactor = 1;
        }

        if (request.Partitions == 0)
        {
            request.Partitions = 1;
        }

        if (string.IsNullOrEmpty(request.Name))
        {
            throw new InvalidRequestException("Name cannot be empty");
        }

        if (!Subjects.IsValid(request.Subject))
        {
            throw new InvalidRequestException("Subject is invalid");
        }

        if (!internalStream && request.Name is ActivityStreamName or CursorsStreamName)
        {
            throw new InvalidRequestException("Stream is reserved");
        }

        if (StreamLimits.CheckName(request.Name) is { } nameError)
        {
            // Names are directory names; Liftbridge does not check, which lets a name escape the data directory
            // or be saved and then stop every later start ("path too long").
            throw new InvalidRequestException(nameError);
        }

        if ((StreamLimits.CheckLength(request.Subject, "Subject") ?? StreamLimits.CheckLength(request.Group, "Group")) is { } lengthError)
        {
            throw new InvalidRequestException(lengthError);
        }

        if (request.Partitions < 0)
        {
            // Quirk 11 (fixed): Liftbridge crashes here.
            throw new InvalidRequestException($"Invalid partitions {request.Partitions}");
        }

        if (request.Partitions > StreamLimits.MaxPartitions)
        {
            throw new InvalidRequestException($"Invalid partitions {request.Partitions}: at most {StreamLimits.MaxPartitions}");
        }

        // Internal streams (cursors, activity) hold no user values and must start without a key.
        var encrypted = !internalStream && (request.Encryption?.Value ?? Options.Streams.Encryption);
        if (encrypted)
        {
            Context.CreateCipher().Dispose(); // validates the master key
        }

        request.Encryption = new NullableBool { Value = encrypted }; // persisted: a later default change does not flip the stream

        if (request.ReplicationFactor == -1)
        {
            request.ReplicationFactor = clusterSize;
        }

        if (request.ReplicationFactor <= 0)
        {
            throw new InvalidRequestException($"Invalid replicationFactor {request.ReplicationFactor}");
        }

        if (request.ReplicationFactor > clusterSize)
        {
            throw new InvalidRequestException($"Invalid replicationFactor {request.ReplicationFactor}, cluster size {clusterSize}");
        }

        StreamSettings.Validate(request);
        return request;
    }

    public async Task CreateStreamAsync(CreateStreamRequest request, bool internalStream, CancellationToken cancellationToken)
    {
        request = NormalizeCreate(request, internalStream, clusterSize: 1);

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfStopped();
            if (_streams.ContainsKey(request.Name))
            {
                throw new StreamExistsException();
            }

            var streamDirectory = Path.Combine(Context.StreamsDirectory, request.Name);
            var existed = Path.Exists(streamDirectory);
            if (existed && !internalStream)
            {
                // Someone's data (a crash between mkdir and the metadata write, or lost metadata): never delete it here.
                LogOrphanData(_logger, request.Name, streamDirectory);
                throw new PreconditionFailedException(OrphanDataMessage);
            }

            cancellationToken.ThrowIfCancellationRequested(); // the last point of no return: from here the create runs to its end
            var record = new StreamRecord { Request = request, CreationTimestamp = Partition.NowNanoseconds() };
            // An internal stream's data without metadata is the server's own (cursors, activity): it is adopted.
            var stream = await CreateLockedAsync(record, streamDirectory, removeDirectoryOnFailure: !existed).ConfigureAwait(false);
            _streams[stream.Name] = stream;
            LogCreated(_logger, stream.Name, stream.Subject, stream.Partitions.Length);
            await EmitActivityLockedAsync(stream.Epoch, new ActivityStreamEvent
            {
                Op = ActivityStreamOp.CreateStream,
                CreateStreamOp = new CreateStreamOp { Stream = stream.Name, Partitions = { Enumerable.Range(0, stream.Partitions.Length) } },
            }).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Writes the stream (directories, logs, metadata, open partitions) or, on any failure, nothing.</summary>
    private async Task<MessageStream> CreateLockedAsync(StreamRecord record, string streamDirectory, bool removeDirectoryOnFailure)
    {
        var name = record.Request.Name;
        var settings = StreamSettings.Resolve(record.Request, Options);
        var committed = false;
        MessageStream? stream = null;
        try
        {
            var always = Options.Storage.Durability == DurabilityMode.Always;
            var logOptions = settings.ToLogOptions(Options, Context.FileHandles);
            for (var id = 0; id < record.Request.Partitions; id++)
            {
                // Opening creates the directory and the first segment: a full disk fails here, before the metadata.
                CommitLog.Open(PartitionDirectory(name, id), logOptions, _logger).Dispose();
                if (always)
                {
                    Context.SyncDirectory(PartitionDirectory(name, id));
                }
            }

            if (always)
            {
                // The new names must survive a power loss before the create is acknowledged: each directory's
                // entry lives in its parent.
                Context.SyncDirectory(streamDirectory);
                Context.SyncDirectory(Context.StreamsDirectory);
                Context.SyncDirectory(Path.GetDirectoryName(Context.StreamsDirectory)!);
            }

            var revision = await _catalog.CreateAsync(record, CancellationToken.None).ConfigureAwait(false);
            committed = true;
            stream = Build(record, revision, new Dictionary<int, PartitionStateRecord>());
            foreach (var partition in stream.Partitions)
            {
                partition.Open(Context, stream.Epoch);
            }

            return stream;
        }
        catch (Exception ex) when (ex is not StreamExistsException)
        {
            LogCreateFailed(_logger, ex, name);
            await RollBackCreateAsync(name, removeDirectoryOnFailure ? streamDirectory : null, stream, committed).ConfigureAwait(false);
            if (ex is BrokerException)
            {
                throw;
            }

            throw new BrokerInternalException("failed to create the stream", ex); // the cause (paths, errno) is logged, not sent
        }
    }

    private async Task RollBackCreateAsync(string name, string? streamDirectory, MessageStream? stream, bool committed)
    {
        foreach (var partition in stream?.Partitions ?? [])
        {
            try
            {
                await partition.CloseAsync(streamDirectory is null ? PartitionCloseReason.Stopping : PartitionCloseReason.Deleted).ConfigureAwait(false);
                partition.Dispose();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CommitLogException)
            {
                LogRollbackFailed(_logger, ex, name);
            }
        }

        if (committed)
        {
            try
            {
                await _catalog.DeleteAsync(name, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // The stream stays in the metadata with its directory below: the next start opens it as created.
                LogRollbackFailed(_logger, ex, name);
                return;
            }
        }

        try
        {
            if (streamDirectory is not null && Directory.Exists(streamDirectory))
            {
                Directory.Delete(streamDirectory, recursive: true); // this create made it: the name was free on disk
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogRollbackFailed(_logger, ex, name); // CreateStream on the name answers with the repair hint until removed
        }
    }

    public async Task DeleteStreamAsync(string name, CancellationToken cancellationToken)
    {
        if (name is ActivityStreamName or CursorsStreamName)
        {
            throw new InvalidRequestException("Stream is reserved");
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfStopped();
            if (!_streams.TryRemove(name, out var stream))
            {
                throw new NotFoundException("stream does not exist");
            }

            var revision = await _catalog.DeleteAsync(name, CancellationToken.None).ConfigureAwait(false);
            foreach (var partition in stream.Partitions)
            {
                await partition.CloseAsync(PartitionCloseReason.Deleted).ConfigureAwait(false);
                partition.Dispose();
            }

            var directory = Path.Combine(Context.StreamsDirectory, name);
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }

            Cursors.ForgetStream(name);
            LogDeleted(_logger, name);
            await EmitActivityLockedAsync(revision, new ActivityStreamEvent { Op = ActivityStreamOp.DeleteStream, DeleteStreamOp = new DeleteStreamOp { Stream = name } }).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task PauseAsync(string name, IReadOnlyList<int> partitions, bool resumeAll, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfStopped();
            var stream = _streams.TryGetValue(name, out var s) ? s : throw MissingStream(partitions);
            var targets = Resolve(stream, partitions);
            await PauseLockedAsync(stream, targets, resumeAll).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    private async Task PauseLockedAsync(MessageStream stream, IReadOnlyList<Partition> targets, bool resumeAll)
    {
        var now = Partition.NowNanoseconds();
        foreach (var partition in targets)
        {
            partition.MarkPaused(true, now);
            await partition.CloseAsync(PartitionCloseReason.Paused).ConfigureAwait(false);
        }

        stream.Record.ResumeAll = resumeAll;
        var revision = await _catalog.UpdateAsync(stream, targets, includeStream: true, CancellationToken.None).ConfigureAwait(false);
        LogPaused(_logger, stream.Name, string.Join(",", targets.Select(p => p.Id)), resumeAll);
        await EmitActivityLockedAsync(revision, new ActivityStreamEvent
        {
            Op = ActivityStreamOp.PauseStream,
            PauseStreamOp = new PauseStreamOp { Stream = stream.Name, Partitions = { targets.Select(p => p.Id) }, ResumeAll = resumeAll },
        }).ConfigureAwait(false);
    }

    private async Task AutoPauseAsync(Partition partition)
    {
        if (partition.Leadership is not null)
        {
            // A cluster: the leader asks the controller, which pauses the partition on every broker. Not under the
            // broker's lock, which applying that decision here takes.
            if (Forwarder is { } cluster && !_stopped && !partition.IsPaused && partition.ShouldAutoPause())
            {
                await cluster.AutoPauseAsync(partition, _stopping.Token).ConfigureAwait(false);
            }

            return;
        }

        await _lock.WaitAsync(_stopping.Token).ConfigureAwait(false);
        try
        {
            if (_stopped || partition.IsPaused || !partition.ShouldAutoPause() || !_streams.TryGetValue(partition.Stream.Name, out var stream) || stream != partition.Stream)
            {
                return;
            }

            await PauseLockedAsync(stream, [partition], resumeAll: false).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task SetReadonlyAsync(string name, IReadOnlyList<int> partitions, bool value, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfStopped();
            var stream = _streams.TryGetValue(name, out var s) ? s : throw MissingStream(partitions);
            var targets = Resolve(stream, partitions);
            var now = Partition.NowNanoseconds();
            foreach (var partition in targets)
            {
                partition.MarkReadonly(value, now);
            }

            var revision = await _catalog.UpdateAsync(stream, targets, includeStream: false, CancellationToken.None).ConfigureAwait(false);
            await EmitActivityLockedAsync(revision, new ActivityStreamEvent
            {
                Op = ActivityStreamOp.SetStreamReadonly,
                SetStreamReadonlyOp = new SetStreamReadonlyOp { Stream = name, Partitions = { targets.Select(p => p.Id) }, Readonly = value },
            }).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Resumes a paused partition (and every paused partition of its stream when the pause asked for resumeAll).</summary>
    public async Task ResumeAsync(Partition partition, CancellationToken cancellationToken)
    {
        if (partition.Leadership is not null && Forwarder is { } cluster)
        {
            await cluster.ResumeAsync(partition, cancellationToken).ConfigureAwait(false); // the controller decides, every broker applies
            return;
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await ResumeLockedAsync(partition).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    private async Task ResumeLockedAsync(Partition partition)
    {
        ThrowIfStopped();
        var stream = partition.Stream;
        if (!_streams.TryGetValue(stream.Name, out var current) || current != stream)
        {
            throw new NotFoundException($"no such stream: {stream.Name}");
        }

        if (!partition.IsPaused && !ResumesOthers(partition))
        {
            return;
        }

        var targets = stream.Record.ResumeAll ? stream.Partitions.Where(p => p.IsPaused).ToList() : [partition];
        foreach (var target in targets)
        {
            target.MarkPaused(false, 0);
            target.Open(Context, stream.Epoch);
        }

        var resumeAllWasSet = stream.Record.ResumeAll;
        stream.Record.ResumeAll = false;
        var revision = await _catalog.UpdateAsync(stream, targets, includeStream: resumeAllWasSet, CancellationToken.None).ConfigureAwait(false);
        LogResumed(_logger, stream.Name, string.Join(",", targets.Select(p => p.Id)));
        await EmitActivityLockedAsync(revision, new ActivityStreamEvent
        {
            Op = ActivityStreamOp.ResumeStream,
            ResumeStreamOp = new ResumeStreamOp { Stream = stream.Name, Partitions = { targets.Select(p => p.Id) } },
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// After a pause with resumeAll, a publish to any partition of the stream resumes the paused ones, also when
    /// the partition published to was not paused (Liftbridge's behaviour 32).
    /// </summary>
    private static bool ResumesOthers(Partition partition) =>
        partition.Stream.Record.ResumeAll && !partition.IsPaused && partition.Stream.Partitions.Any(p => p.IsPaused);

    /// <summary>Liftbridge expands an empty partition list first, and that lookup has its own message.</summary>
    private static NotFoundException MissingStream(IReadOnlyList<int> partitions) =>
        new(partitions.Count == 0 ? "stream not found" : "stream does not exist");

    private static List<Partition> Resolve(MessageStream stream, IReadOnlyList<int> ids)
    {
        if (ids.Count == 0)
        {
            return [.. stream.Partitions];
        }

        var result = new List<Partition>(ids.Count);
        foreach (var id in ids.Distinct())
        {
            result.Add(stream.TryGetPartition(id, out var p) ? p : throw new NotFoundException("partition does not exist"));
        }

        return result;
    }

    // ---------------------------------------------------------------- publishing

    /// <summary>
    /// Hands a message to a partition, resuming the partition first if it is paused. Completes when
    /// the message is queued (the ack, if any, comes through <see cref="PublishItem.Receiver"/>).
    /// </summary>
    public async ValueTask PublishAsync(Partition partition, PublishItem item, CancellationToken cancellationToken, bool moreComing = false)
    {
        if (partition.Runtime is null && Forwarder is { } forwarder && partition.Leadership is not null
            && await forwarder.ForwardAsync(partition, item, cancellationToken).ConfigureAwait(false))
        {
            return; // led by another broker: its ack came back through the forwarder
        }

        if (ResumesOthers(partition))
        {
            await ResumeAsync(partition, cancellationToken).ConfigureAwait(false);
        }

        var max = Options.Clustering.ReplicationMaxBytes;
        while (!await partition.EnqueueAsync(item, max, cancellationToken, moreComing).ConfigureAwait(false))
        {
            ThrowIfStopped();
            partition.ThrowIfOffline();
            if (partition.Leadership is not null && Forwarder is null)
            {
                // A cluster member whose node has left (a graceful stop in progress): nothing was appended, so say so
                // in the words that let a client send it again to whoever leads.
                throw new BrokerInternalException(Sluice.Protocol.Wire.PublishErrors.ShuttingDown);
            }

            if (partition.Leadership is not null && Forwarder is { } cluster && !partition.IsPaused)
            {
                // The leadership moved away between the check above and the enqueue: send it to the new leader.
                if (await cluster.ForwardAsync(partition, item, cancellationToken).ConfigureAwait(false))
                {
                    return;
                }

                continue;
            }

            if (!partition.IsPaused)
            {
                // Not paused yet not open: deleted under us, or a pause is closing it right now.
                if (!_streams.TryGetValue(partition.Stream.Name, out var s) || s != partition.Stream)
                {
                    throw new NotFoundException($"no such stream: {partition.Stream.Name}");
                }

                await _lock.WaitAsync(cancellationToken).ConfigureAwait(false); // let the pause finish, then resume
                _lock.Release();
                if (partition.Leadership is not null && Forwarder is not null)
                {
                    continue; // a cluster member still applying the metadata: forward or append on the next turn
                }

                if (!partition.IsPaused && partition.Runtime is null)
                {
                    ThrowIfStopped();
                    throw new BrokerInternalException($"partition {partition.Id} of stream {partition.Stream.Name} is not open");
                }

                continue;
            }

            await ResumeAsync(partition, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Publishes an activity event with `activity.stream.publish.ack.policy` and `.timeout`; null without an
    /// ack (policy none). Runs inside a metadata operation (the lock is held), so it resumes without taking the lock.
    /// </summary>
    private async Task<Ack?> PublishActivityLockedAsync(Partition partition, byte[] value, CancellationToken cancellationToken)
    {
        if (partition.IsPaused)
        {
            await ResumeLockedAsync(partition).ConfigureAwait(false);
        }

        var policy = Options.Activity.PublishAckPolicy switch
        {
            PublishAckPolicy.None => AckPolicy.None,
            PublishAckPolicy.Leader => AckPolicy.Leader,
            _ => AckPolicy.All,
        };
        var receiver = new AckWaiter();
        var item = NewInternalItem(partition, null, value, receiver, policy);
        if (!await partition.EnqueueAsync(item, long.MaxValue, cancellationToken).ConfigureAwait(false))
        {
            throw new BrokerInternalException($"partition {partition.Id} of stream {partition.Stream.Name} is not open");
        }

        return policy == AckPolicy.None ? null : await receiver.Task.WaitAsync(Options.Activity.PublishTimeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// An activity event made outside a metadata operation (consumer-group changes), with `activity.stream.publish.ack.policy`
    /// and `.timeout`; in a cluster it goes to the activity stream's leader. Nothing happens while the stream does not exist.
    /// </summary>
    public async Task PublishActivityAsync(byte[] value, CancellationToken cancellationToken)
    {
        if (!_streams.TryGetValue(ActivityStreamName, out var stream))
        {
            return;
        }

        var policy = Options.Activity.PublishAckPolicy switch
        {
            PublishAckPolicy.None => AckPolicy.None,
            PublishAckPolicy.Leader => AckPolicy.Leader,
            _ => AckPolicy.All,
        };
        var receiver = new AckWaiter();
        await PublishAsync(stream.Partitions[0], NewInternalItem(stream.Partitions[0], null, value, receiver, policy), cancellationToken).ConfigureAwait(false);
        if (policy != AckPolicy.None)
        {
            await receiver.Task.WaitAsync(Options.Activity.PublishTimeout, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Publishes a server record (cursor) and waits for its ack.</summary>
    public async Task<Ack> PublishInternalAsync(Partition partition, byte[]? key, byte[] value, CancellationToken cancellationToken)
    {
        var receiver = new AckWaiter();
        await PublishAsync(partition, NewInternalItem(partition, key, value, receiver, AckPolicy.All), cancellationToken).ConfigureAwait(false);
        return await receiver.Task.WaitAsync(InternalPublishTimeout, cancellationToken).ConfigureAwait(false);
    }

    private static PublishItem NewInternalItem(Partition partition, byte[]? key, byte[] value, IAckReceiver receiver, AckPolicy policy) => new()
    {
        Key = key,
        Value = value,
        Headers = PublishItem.BuildHeaders(null, partition.Subject, string.Empty),
        Subject = partition.Subject,
        AckPolicy = policy,
        Receiver = receiver,
    };

    /// <summary>Every partition whose subject matches <paramref name="subject"/>; one per non-empty group (queue-group semantics).</summary>
    public List<Partition> MatchSubject(string subject)
    {
        var result = new List<Partition>();
        var groups = new HashSet<string>(StringComparer.Ordinal);
        foreach (var stream in _streams.Values.OrderBy(s => s.Name, StringComparer.Ordinal))
        {
            foreach (var partition in stream.Partitions)
            {
                if (partition.IsOffline || !Subjects.Matches(partition.Subject, subject))
                {
                    continue; // an offline partition takes nothing, like a paused one that does not subscribe
                }

                if (stream.Group.Length > 0 && !groups.Add(partition.Subject + "\n" + stream.Group))
                {
                    continue; // a queue group delivers each message to one member
                }

                result.Add(partition);
            }
        }

        return result;
    }

    // ---------------------------------------------------------------- activity

    private async Task EmitActivityLockedAsync(long revision, ActivityStreamEvent activity)
    {
        if (!Options.Activity.Enabled || !_streams.TryGetValue(ActivityStreamName, out var stream))
        {
            return;
        }

        activity.Id = (ulong)revision;
        try
        {
            await PublishActivityLockedAsync(stream.Partitions[0], activity.ToByteArray(), _stopping.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or BrokerException or CommitLogException)
        {
            LogActivityFailed(_logger, ex, activity.Op.ToString());
        }
    }

    /// <summary>Saves one partition's state record (after its first message), under the metadata lock like every other write of it.</summary>
    private async Task SaveStateAsync(Partition partition)
    {
        await _lock.WaitAsync(_stopping.Token).ConfigureAwait(false);
        try
        {
            // In a cluster the state records are the controller's (paused, readonly): a leader does not write them.
            if (_stopped || partition.Leadership is not null || !_streams.TryGetValue(partition.Stream.Name, out var stream) || stream != partition.Stream)
            {
                return;
            }

            await _catalog.UpdateAsync(stream, [partition], includeStream: false, CancellationToken.None).ConfigureAwait(false);
            LogStateSaved(_logger, stream.Name, partition.Id);
        }
        finally
        {
            _lock.Release();
        }
    }

    // ---------------------------------------------------------------- metadata views

    public Broker.Counts CountPartitions()
    {
        var partitions = 0;
        foreach (var stream in _streams.Values)
        {
            foreach (var partition in stream.Partitions)
            {
                if (!partition.IsPaused && !partition.IsOffline)
                {
                    partitions++;
                }
            }
        }

        return new Counts(partitions, partitions);
    }

    public readonly record struct Counts(int PartitionCount, int LeaderCount);

    // ---------------------------------------------------------------- lifecycle

    private void ThrowIfStopped()
    {
        if (_stopped)
        {
            throw new BrokerInternalException(Sluice.Protocol.Wire.PublishErrors.ShuttingDown);
        }
    }

    /// <summary>Ends subscriptions (Internal), writes what is queued, saves partition state and closes every log.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            foreach (var stream in _streams.Values)
            {
                // In a cluster the partition states are the controller's: a broker saves none at shutdown.
                var saved = stream.Partitions.Where(p => p.Leadership is null).ToList();
                foreach (var partition in stream.Partitions)
                {
                    await partition.CloseAsync(PartitionCloseReason.Stopping).ConfigureAwait(false);
                    partition.Dispose();
                }

                try
                {
                    if (saved.Count > 0)
                    {
                        await _catalog.UpdateAsync(stream, saved, includeStream: false, CancellationToken.None).ConfigureAwait(false);
                    }
                }
                catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException or MetadataStoreException)
                {
                    // A faulted store (a full disk) must not stop the shutdown: the other streams still close.
                    LogSaveFailed(_logger, ex, stream.Name);
                }
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Created stream {Stream} on subject {Subject} with {Partitions} partition(s)")]
    private static partial void LogCreated(ILogger logger, string stream, string subject, int partitions);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not create stream {Stream}; undoing what was written")]
    private static partial void LogCreateFailed(ILogger logger, Exception exception, string stream);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not undo part of the failed create of stream {Stream}")]
    private static partial void LogRollbackFailed(ILogger logger, Exception exception, string stream);

    [LoggerMessage(Level = LogLevel.Warning, Message = "CreateStream {Stream} refused: {Directory} exists without metadata; 'sluice repair' moves it aside")]
    private static partial void LogOrphanData(ILogger logger, string stream, string directory);

    [LoggerMessage(Level = LogLevel.Information, Message = "Deleted stream {Stream}")]
    private static partial void LogDeleted(ILogger logger, string stream);

    [LoggerMessage(Level = LogLevel.Information, Message = "Paused stream {Stream} partitions [{Partitions}] (resumeAll: {ResumeAll})")]
    private static partial void LogPaused(ILogger logger, string stream, string partitions, bool resumeAll);

    [LoggerMessage(Level = LogLevel.Information, Message = "Resumed stream {Stream} partitions [{Partitions}]")]
    private static partial void LogResumed(ILogger logger, string stream, string partitions);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Saved the state of {Stream}/{Partition} after its first message")]
    private static partial void LogStateSaved(ILogger logger, string stream, int partition);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not publish the {Op} activity event")]
    private static partial void LogActivityFailed(ILogger logger, Exception exception, string op);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not save the state of stream {Stream} at shutdown")]
    private static partial void LogSaveFailed(ILogger logger, Exception exception, string stream);
}

/// <summary>Completes with the message's ack (success or error).</summary>
internal sealed class AckWaiter : TaskCompletionSource<Ack>, IAckReceiver
{
    public AckWaiter()
        : base(TaskCreationOptions.RunContinuationsAsynchronously)
    {
    }

    public void OnAck(PublishItem item, Ack ack) => TrySetResult(ack);
}
