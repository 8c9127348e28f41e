// Failure policy: an open that fails (missing file, EMFILE) throws to the operation that needed
// the handle and leaves the budget unchanged; nothing here touches file contents.
using Microsoft.Win32.SafeHandles;

namespace Sluice.Storage.Log.Files;

/// <summary>
/// A process-wide cap on the segment files that logs keep open. Idle handles are closed in
/// least-recently-used order once the cap is reached and reopened on the next access, so a node
/// can hold many thousands of partitions. Handles in use are never closed, so the cap can be
/// exceeded briefly by as many files as there are concurrent operations.
/// Share one instance between all logs of a process through <see cref="CommitLogOptions.FileHandles"/>.
/// </summary>
public sealed class FileHandleBudget
{
    private readonly Lock _gate = new();
    private readonly LinkedList<PooledFile> _idle = new();
    private int _open;
    private long _reopens;

    /// <summary>Creates a budget of <paramref name="maxOpenFiles"/> handles.</summary>
    public FileHandleBudget(int maxOpenFiles)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxOpenFiles, 1);
        MaxOpenFiles = maxOpenFiles;
    }

    /// <summary>The default budget of 512 handles: half of the common 1024 soft limit, leaving room for sockets.</summary>
    public static FileHandleBudget Shared { get; } = new(512);

    /// <summary>The cap.</summary>
    public int MaxOpenFiles { get; }

    /// <summary>Handles open right now.</summary>
    public int OpenFiles
    {
        get
        {
            lock (_gate)
            {
                return _open;
            }
        }
    }

    /// <summary>How many times a file had to be opened (first opens and reopens after eviction).</summary>
    public long Opens => Interlocked.Read(ref _reopens);

    internal SafeFileHandle Acquire(PooledFile file)
    {
        lock (_gate)
        {
            if (file.Retired)
            {
                throw new FileRetiredException(file.Path);
            }

            if (file.Handle is null)
            {
                file.Handle = File.OpenHandle(file.Path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
                _open++;
                _reopens++;
            }
            else if (file.Leases == 0)
            {
                _idle.Remove(file.IdleNode);
            }

            file.Leases++;
            EvictOverBudget();
            return file.Handle;
        }
    }

    internal void Release(PooledFile file)
    {
        lock (_gate)
        {
            file.Leases--;
            if (file.Leases > 0)
            {
                return;
            }

            if (file.Retired)
            {
                CloseLocked(file);
            }
            else
            {
                _idle.AddLast(file.IdleNode);
                EvictOverBudget();
            }
        }
    }

    internal void Retire(PooledFile file)
    {
        lock (_gate)
        {
            if (file.Retired)
            {
                return;
            }

            file.Retired = true;
            if (file.Leases == 0 && file.Handle is not null)
            {
                _idle.Remove(file.IdleNode);
                CloseLocked(file);
            }
        }
    }

    private void EvictOverBudget()
    {
        while (_open > MaxOpenFiles && _idle.First is { } oldest)
        {
            _idle.RemoveFirst();
            CloseLocked(oldest.Value);
        }
    }

    private void CloseLocked(PooledFile file)
    {
        if (file.Handle is null)
        {
            return;
        }

        file.Handle.Dispose();
        file.Handle = null;
        _open--;
    }
}

/// <summary>A file whose handle is managed by a <see cref="FileHandleBudget"/>.</summary>
internal sealed class PooledFile
{
    public PooledFile(string path, FileHandleBudget budget)
    {
        Path = path;
        Budget = budget;
        IdleNode = new LinkedListNode<PooledFile>(this);
    }

    public string Path { get; }

    public FileHandleBudget Budget { get; }

    // Guarded by the budget's lock.
    internal SafeFileHandle? Handle { get; set; }

    internal int Leases { get; set; }

    internal bool Retired { get; set; }

    internal LinkedListNode<PooledFile> IdleNode { get; }

    public bool IsRetired => Volatile.Read(ref _retiredFlag) != 0;

    private int _retiredFlag;

    /// <summary>A handle that stays open until the lease is disposed.</summary>
    public FileLease Lease() => new(this, Budget.Acquire(this));

    /// <summary>Closes the handle once unused and refuses new leases (the file is being replaced or deleted).</summary>
    public void Retire()
    {
        Volatile.Write(ref _retiredFlag, 1);
        Budget.Retire(this);
    }
}

/// <summary>A handle borrowed from a <see cref="FileHandleBudget"/>.</summary>
internal readonly struct FileLease : IDisposable
{
    private readonly PooledFile _file;

    public FileLease(PooledFile file, SafeFileHandle handle)
    {
        _file = file;
        Handle = handle;
    }

    public SafeFileHandle Handle { get; }

    public void Dispose() => _file?.Budget.Release(_file);
}

/// <summary>Thrown internally when a segment file was replaced or deleted under a reader; the reader retries on a fresh segment list.</summary>
internal sealed class FileRetiredException : Exception
{
    public FileRetiredException(string path)
        : base($"The file '{path}' was replaced or deleted.")
    {
    }
}
