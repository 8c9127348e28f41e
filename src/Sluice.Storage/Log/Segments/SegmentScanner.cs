// Failure policy: I/O errors propagate to the caller. A record that fails its checks, or a file
// shorter than the range being scanned, is reported as a step (Corrupt / Torn) so the caller
// decides between truncating a torn tail and reporting damage.
using System.Buffers;
using Sluice.Storage.Log.Files;
using Sluice.Storage.Log.Records;

namespace Sluice.Storage.Log.Segments;

/// <summary>Walks the records of a segment file forward from a position, one checked record at a time.</summary>
internal sealed class SegmentScanner : IDisposable
{
    private readonly FileLease _lease;
    private byte[] _buffer;
    private long _bufferPosition;
    private int _length;
    private int _cursor;
    private long _end;

    public SegmentScanner(FileLease lease, long from, long end, int bufferSize)
    {
        _lease = lease;
        _buffer = ArrayPool<byte>.Shared.Rent(bufferSize);
        _bufferPosition = from;
        _end = end;
    }

    /// <summary>File position of the next record (after <see cref="Next"/>: just past the returned record).</summary>
    public long Position => _bufferPosition + _cursor;

    public ScanStep Next(out RecordInfo info, out ReadOnlySpan<byte> record)
    {
        record = default;
        while (true)
        {
            if (Position >= _end)
            {
                info = default;
                return ScanStep.End;
            }

            var status = RecordFormat.TryParse(_buffer.AsSpan(_cursor, _length - _cursor), out info);
            if (status == ParseStatus.Ok)
            {
                record = _buffer.AsSpan(_cursor, info.Size);
                _cursor += info.Size;
                return ScanStep.Record;
            }

            if (status == ParseStatus.Corrupt)
            {
                return ScanStep.Corrupt;
            }

            if (_bufferPosition + _length >= _end || Position + Math.Max(info.Size, 4) > _end)
            {
                return ScanStep.Torn;
            }

            if (!Fill(Math.Max(info.Size, 4)))
            {
                return ScanStep.Torn;
            }
        }
    }

    private bool Fill(int needed)
    {
        var position = Position;
        var want = (int)Math.Min(_end - position, Math.Max(_buffer.Length, needed));
        if (want > _buffer.Length)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(want);
        }

        var n = SegmentIo.ReadFully(_lease.Handle, _buffer.AsSpan(0, want), position);
        _bufferPosition = position;
        _length = n;
        _cursor = 0;
        if (n < want)
        {
            _end = position + n; // the file is shorter than the range asked for
            return n >= needed;
        }

        return true;
    }

    public void Dispose()
    {
        _lease.Dispose();
        var buffer = Interlocked.Exchange(ref _buffer, null!);
        if (buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

internal enum ScanStep
{
    Record,
    End,
    Torn,
    Corrupt,
}

internal static class SegmentIo
{
    public static int ReadFully(Microsoft.Win32.SafeHandles.SafeFileHandle handle, Span<byte> buffer, long position)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = RandomAccess.Read(handle, buffer[total..], position + total);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        return total;
    }
}
