using System.Diagnostics;

namespace Sluice.TestKit;

/// <summary>
/// A tmpfs of a fixed size mounted on a fresh temp directory, to make a real "no space left on device" happen.
/// Needs root (as the CI containers run); a failed mount fails the test loudly rather than skipping it.
/// </summary>
public sealed class SmallTmpfs : IDisposable
{
    private readonly TempDirectory _dir;

    public SmallTmpfs(long bytes, string prefix = "sluice-tmpfs")
    {
        _dir = new TempDirectory(prefix);
        Run("mount", "-t", "tmpfs", "-o", $"size={bytes}", "tmpfs", _dir.Path);
    }

    public string Path => _dir.Path;

    /// <summary>Writes a file of zeros until the file system is full and returns its path (delete it to free the space).</summary>
    public string Fill(string name = "filler")
    {
        var path = System.IO.Path.Combine(Path, name);
        var block = new byte[4096];
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        try
        {
            while (true)
            {
                file.Write(block);
            }
        }
        catch (IOException)
        {
            // No space left: the point.
        }

        var small = new byte[512];
        try
        {
            while (true)
            {
                file.Write(small); // whatever a whole block no longer fits in
            }
        }
        catch (IOException)
        {
        }

        return path;
    }

    public void Dispose()
    {
        Run("umount", "-l", _dir.Path);
        _dir.Dispose();
    }

    private static void Run(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed ({process.ExitCode}): {error} (this test needs root)");
        }
    }
}
