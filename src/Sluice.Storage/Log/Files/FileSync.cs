// Failure policy: an fsync failure is thrown to the caller, which closes the log (the kernel may
// have dropped the dirty pages, so retrying the fsync could falsely succeed).
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Sluice.Storage.Log.Files;

/// <summary>fsync of files and of directories (so that a created or renamed name survives a power loss).</summary>
public static partial class FileSync
{
    /// <summary>fsync of an open file's data and metadata.</summary>
    public static void File(SafeFileHandle handle) => RandomAccess.FlushToDisk(handle);

    /// <summary>fsync of a directory (its entries); nothing on Windows. Throws <see cref="IOException"/> on failure.</summary>
    public static void Directory(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            return; // Windows has no directory fsync; NTFS journals metadata.
        }

        var fd = NativeMethods.open(path, 0 /* O_RDONLY */);
        if (fd < 0)
        {
            throw new IOException($"Cannot open directory '{path}' for fsync (errno {Marshal.GetLastPInvokeError()}).");
        }

        try
        {
            if (NativeMethods.fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory '{path}' failed (errno {Marshal.GetLastPInvokeError()}).");
            }
        }
        finally
        {
            _ = NativeMethods.close(fd);
        }
    }

    private static class NativeMethods
    {
        [DllImport("libc", SetLastError = true)]
        public static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

        [DllImport("libc", SetLastError = true)]
        public static extern int fsync(int fd);

        [DllImport("libc", SetLastError = true)]
        public static extern int close(int fd);
    }
}
