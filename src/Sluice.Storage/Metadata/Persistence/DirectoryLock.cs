namespace Sluice.Storage.Metadata.Persistence;

/// <summary>
/// The exclusive lock on a metadata directory: its LOCK file held open with no sharing (an advisory flock on
/// POSIX), released when the process exits however it exits. The server and `sluice repair` both take it.
/// </summary>
public static class DirectoryLock
{
    public const string FileName = "LOCK";

    // What the OS reports when the lock is held: EWOULDBLOCK on Linux (11) and macOS (35),
    // ERROR_SHARING_VIOLATION and ERROR_LOCK_VIOLATION on Windows.
    private static readonly int[] HeldErrors = [11, 35, unchecked((int)0x80070020), unchecked((int)0x80070021)];

    /// <exception cref="MetadataStoreLockedException">Another process (or store) holds the lock.</exception>
    public static FileStream Acquire(string directory)
    {
        try
        {
            return new FileStream(Path.Combine(directory, FileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (Array.IndexOf(HeldErrors, e.HResult) >= 0)
        {
            throw new MetadataStoreLockedException(directory, e);
        }
    }
}
