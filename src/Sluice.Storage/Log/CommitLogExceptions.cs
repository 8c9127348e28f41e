namespace Sluice.Storage.Log;

/// <summary>Base type of the commit log's own errors.</summary>
public abstract class CommitLogException : Exception
{
    private protected CommitLogException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}

/// <summary>The log was closed (disposed, or closed by a failed fsync). The broker maps it to Internal.</summary>
public sealed class CommitLogClosedException : CommitLogException
{
    public CommitLogClosedException(string directory, Exception? cause = null)
        : base(cause is null
            ? $"The commit log at '{directory}' is closed."
            : $"The commit log at '{directory}' was closed after an I/O failure: {cause.Message}", cause)
    {
        Directory = directory;
    }

    /// <summary>Directory of the closed log.</summary>
    public string Directory { get; }
}

/// <summary>The log was deleted. The broker maps it to NotFound.</summary>
public sealed class CommitLogDeletedException : CommitLogException
{
    public CommitLogDeletedException(string directory)
        : base($"The commit log at '{directory}' was deleted.")
    {
        Directory = directory;
    }

    /// <summary>Directory the deleted log lived in.</summary>
    public string Directory { get; }
}

/// <summary>
/// An optimistic-concurrency append named an expected offset that is not the offset the first
/// record would get. The broker maps it to INCORRECT_OFFSET.
/// </summary>
public sealed class IncorrectOffsetException : CommitLogException
{
    public IncorrectOffsetException(long expectedOffset, long nextOffset)
        : base($"Incorrect expected offset {expectedOffset}: the next offset is {nextOffset}.")
    {
        ExpectedOffset = expectedOffset;
        NextOffset = nextOffset;
    }

    /// <summary>The offset the caller expected the first record to get.</summary>
    public long ExpectedOffset { get; }

    /// <summary>The offset the first record would have got.</summary>
    public long NextOffset { get; }
}

/// <summary>
/// Stored bytes failed their checksum or structure check somewhere other than a torn tail, or a
/// segment the log had is missing or shorter than when it was sealed. The message names the file
/// (for the server log); <see cref="Description"/> names only the segment, for clients.
/// </summary>
public sealed class CorruptLogException : CommitLogException
{
    public CorruptLogException(string filePath, long position, long offset, string reason)
        : base($"Corrupt commit log file '{filePath}' at byte {position}" +
               (offset >= 0 ? $" (near offset {offset})" : string.Empty) + $": {reason}")
    {
        FilePath = filePath;
        Position = position;
        Offset = offset;
        Reason = reason;
        var name = System.IO.Path.GetFileName(filePath);
        SegmentBaseOffset = name.Length >= 20 && long.TryParse(name.AsSpan(0, 20), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var b) ? b : -1;
        Description = (SegmentBaseOffset >= 0 ? $"segment {name} (base offset {SegmentBaseOffset})" : $"file {name}") +
                      $" at byte {position}" + (offset >= 0 ? $" (near offset {offset})" : string.Empty) + $": {reason}";
    }

    /// <summary>The damaged file.</summary>
    public string FilePath { get; }

    /// <summary>Byte position of the damage in <see cref="FilePath"/>.</summary>
    public long Position { get; }

    /// <summary>The offset expected at <see cref="Position"/>, or -1 when unknown.</summary>
    public long Offset { get; }

    /// <summary>Base offset of the damaged segment, or -1 when the file is not a segment.</summary>
    public long SegmentBaseOffset { get; }

    /// <summary>What is wrong, without the file.</summary>
    public string Reason { get; }

    /// <summary>The damage without server paths: segment file name and base offset, byte position, offset, reason.</summary>
    public string Description { get; }
}

/// <summary>No record satisfies a timestamp lookup (e.g. a timestamp before the first record).</summary>
public sealed class OffsetNotFoundException : CommitLogException
{
    public OffsetNotFoundException(string message)
        : base(message)
    {
    }
}
