using System.Buffers;

namespace Sluice.Storage.Log;

/// <summary>
/// Records returned by one read, in read order, with their bytes in one pooled buffer.
/// Dispose it when done: the records' key, value and header bytes are invalid afterwards.
/// </summary>
public sealed class RecordBatch : IDisposable
{
    private byte[]? _buffer;
    private LogRecord[]? _records;
    private int _count;

    internal RecordBatch(byte[]? buffer, LogRecord[]? records, int count, long nextOffset, int sizeInBytes)
    {
        _buffer = buffer;
        _records = records;
        _count = count;
        NextOffset = nextOffset;
        SizeInBytes = sizeInBytes;
    }

    internal static RecordBatch Empty(long nextOffset) => new(null, null, 0, nextOffset, 0);

    /// <summary>Number of records.</summary>
    public int Count => _count;

    /// <summary>True when the read found nothing.</summary>
    public bool IsEmpty => _count == 0;

    /// <summary>The records, valid until <see cref="Dispose"/>.</summary>
    public ReadOnlySpan<LogRecord> Records
    {
        get
        {
            ObjectDisposedException.ThrowIf(_count > 0 && _records is null, this);
            return _records is null ? default : _records.AsSpan(0, _count);
        }
    }

    /// <summary>The record at <paramref name="index"/>.</summary>
    public LogRecord this[int index] => Records[index];

    /// <summary>
    /// Where the next read in the same direction starts: after the last record of a forward
    /// read (or past a gap with nothing to read), before the last record of a reverse read
    /// (-1 once offset 0 was returned).
    /// </summary>
    public long NextOffset { get; }

    /// <summary>Encoded bytes of the records returned.</summary>
    public int SizeInBytes { get; }

    /// <summary>Returns the buffers to their pools.</summary>
    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        var records = Interlocked.Exchange(ref _records, null);
        if (records is not null)
        {
            ArrayPool<LogRecord>.Shared.Return(records, clearArray: true);
        }

        _count = 0;
    }
}
