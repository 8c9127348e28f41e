namespace Sluice.Storage.Log;

/// <summary>
/// One message of a partition log. On append the log assigns <see cref="Offset"/> (except on the
/// replication path); on read every field is filled. Key, value and header values read from the
/// log point into the buffer of the <see cref="RecordBatch"/> that returned them and are valid
/// until that batch is disposed.
/// </summary>
public readonly struct LogRecord
{
    /// <summary>Position in the partition: dense on append, sparse after compaction.</summary>
    public long Offset { get; init; }

    /// <summary>Unix time in nanoseconds, as Liftbridge stores it.</summary>
    public long Timestamp { get; init; }

    /// <summary>Leader epoch of the broker that appended the record.</summary>
    public long LeaderEpoch { get; init; }

    /// <summary>
    /// Compaction key; <c>null</c> when the message has none. Note that assigning a null
    /// <c>byte[]</c> gives an empty key, not a null one (C# converts it to an empty memory first).
    /// </summary>
    public ReadOnlyMemory<byte>? Key { get; init; }

    /// <summary>Payload; <c>null</c> when the message has none.</summary>
    public ReadOnlyMemory<byte>? Value { get; init; }

    /// <summary>Headers in append order; <c>null</c> or empty when there are none.</summary>
    public IReadOnlyList<RecordHeader>? Headers { get; init; }
}

/// <summary>A named header of a <see cref="LogRecord"/>.</summary>
/// <param name="Name">Header name (UTF-8 on disk, at most 65,535 bytes).</param>
/// <param name="Value">Header value bytes.</param>
public readonly record struct RecordHeader(string Name, ReadOnlyMemory<byte> Value);
