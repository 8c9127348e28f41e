using System.Diagnostics;
using Sluice.TestKit;

namespace Sluice.Server.Tests;

/// <summary>A small tmpfs to run out of space on (needs root, as in CI), and filling it.</summary>
internal static class FullDisk
{
    /// <summary>Fills the file system holding <paramref name="path"/> to its last block, with one file at <paramref name="path"/>.</summary>
    public static void Fill(string path)
    {
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0);
        var chunk = new byte[64 * 1024];
        try
        {
            while (true)
            {
                file.Write(chunk);
            }
        }
        catch (IOException)
        {
            // ENOSPC: the file system is full.
        }

        var page = new byte[512];
        try
        {
            while (true)
            {
                file.Write(page);
            }
        }
        catch (IOException)
        {
            // Every last block taken.
        }
    }

    /// <summary>A tmpfs of a fixed size on a fresh directory, unmounted and removed on dispose.</summary>
    public sealed class TmpfsMount : IDisposable
    {
        private TmpfsMount(string path) => Path = path;

        public string Path { get; }

        public static TmpfsMount Create(int megabytes)
        {
            var dir = new TempDirectory("sluice-tmpfs");
            Run("mount", "-t", "tmpfs", "-o", $"size={megabytes}m", "tmpfs", dir.Path);
            return new TmpfsMount(dir.Path);
        }

        public void Dispose()
        {
            Run("umount", "-l", Path);
            Directory.Delete(Path, recursive: true);
        }

        private static void Run(string command, params string[] arguments)
        {
            var start = new ProcessStartInfo(command) { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var argument in arguments)
            {
                start.ArgumentList.Add(argument);
            }

            using var process = Process.Start(start)!;
            var error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            Assert.True(process.ExitCode == 0, $"{command} {string.Join(' ', arguments)} failed (this test needs root, as in CI): {error}");
        }
    }
}
