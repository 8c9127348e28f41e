using Sluice.Protocol.Api;
using Sluice.Protocol.Internal;
using Sluice.Server.Configuration;
using Sluice.Server.Encryption;
using Sluice.Storage.Log;
using Sluice.Storage.Log.Files;

namespace Sluice.Server.Streams;

/// <summary>What every part of the broker shares: options, identity, the file-handle budget, the encryption master key.</summary>
internal sealed class BrokerContext
{
    public BrokerContext(ServerOptions options, string serverId)
    {
        Options = options;
        ServerId = serverId;
        FileHandles = new FileHandleBudget(Math.Max(16, options.Storage.MaxOpenFiles));
        StreamsDirectory = Path.Combine(Path.GetFullPath(options.DataDir), "streams");
        EncryptionKey = MasterKey.Parse(MasterKey.Read(options.EncryptionKeySource), out var error);
        EncryptionKeyError = error;
    }

    public ServerOptions Options { get; }

    public string ServerId { get; }

    public FileHandleBudget FileHandles { get; }

    public string StreamsDirectory { get; }

    /// <summary>
    /// fsync of a directory, called for a new stream's directories and their parents under durability
    /// <c>always</c> before the create is acknowledged. Replaceable so a test can see the calls.
    /// </summary>
    public Action<string> SyncDirectory { get; init; } = Sluice.Storage.Log.Files.FileSync.Directory;

    /// <summary>The NATS link when NATS is configured: open partitions subscribe through it. Null runs everything in-process.</summary>
    public Nats.NatsAttachment? Nats { get; init; }

    /// <summary>The server's instruments (the monitoring port reads them); null in tests that build a broker alone.</summary>
    public Monitoring.ServerMetrics? Metrics { get; init; }

    /// <summary>The encryption master key read at start, or null; then <see cref="EncryptionKeyError"/> says why.</summary>
    public byte[]? EncryptionKey { get; }

    public string? EncryptionKeyError { get; }

    /// <summary>A partition's value cipher; throws <see cref="PreconditionFailedException"/> without a usable key.</summary>
    public ValueCipher CreateCipher() => EncryptionKey is { } key
        ? new ValueCipher(key)
        : throw new PreconditionFailedException($"Failed on preconditions for stream's encryption handler: {EncryptionKeyError}");
}

/// <summary>A stream: a name, a subject, settings and its partitions (ids 0..N-1).</summary>
internal sealed class MessageStream
{
    public MessageStream(StreamRecord record, long epoch, StreamSettings settings)
    {
        Record = record;
        Epoch = epoch;
        Settings = settings;
        NameUtf8 = System.Text.Encoding.UTF8.GetBytes(record.Request.Name);
    }

    public StreamRecord Record { get; }

    public string Name => Record.Request.Name;

    /// <summary><see cref="Name"/> as UTF-8, encoded once for acks and subscriptions. Do not change it.</summary>
    public byte[] NameUtf8 { get; }

    public string Subject => Record.Request.Subject;

    public string Group => Record.Request.Group;

    public long CreationTimestamp => Record.CreationTimestamp;

    /// <summary>The metadata revision that created the stream: its partitions' leader epoch.</summary>
    public long Epoch { get; }

    public StreamSettings Settings { get; }

    public Partition[] Partitions { get; set; } = [];

    private CommitLogOptions? _logOptions;

    /// <summary>The log options of this stream's partitions: one instance shared by all of them (the settings do not change).</summary>
    public CommitLogOptions LogOptions(BrokerContext context)
    {
        var observer = context.Metrics?.FsyncObserver;
        var options = Volatile.Read(ref _logOptions);
        if (options is null || !ReferenceEquals(options.FileHandles, context.FileHandles) || !ReferenceEquals(options.FsyncObserver, observer))
        {
            options = Settings.ToLogOptions(context.Options, context.FileHandles, observer);
            Volatile.Write(ref _logOptions, options);
        }

        return options;
    }

    public bool IsInternal => Name is Broker.ActivityStreamName or Broker.CursorsStreamName;

    public bool TryGetPartition(int id, out Partition partition)
    {
        if ((uint)id < (uint)Partitions.Length)
        {
            partition = Partitions[id];
            return true;
        }

        partition = null!;
        return false;
    }

    public StreamMetadata ToMetadata(string serverId)
    {
        var metadata = new StreamMetadata { Name = Name, Subject = Subject, CreationTimestamp = CreationTimestamp };
        foreach (var partition in Partitions)
        {
            metadata.Partitions.Add(partition.Id, partition.ToMetadata(serverId));
        }

        return metadata;
    }
}
