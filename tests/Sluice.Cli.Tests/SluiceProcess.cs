using System.Diagnostics;
using System.Reflection;

namespace Sluice.Cli.Tests;

/// <summary>The built `sluice` run as `dotnet sluice.dll ...`, with its output collected line by line.</summary>
internal sealed class SluiceProcess : IAsyncDisposable
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly List<string> _stdout = [];
    private readonly List<string> _stderr = [];
    private readonly SemaphoreSlim _lineAdded = new(0);

    private SluiceProcess(Process process)
    {
        _process = process;
    }

    public IReadOnlyList<string> Stdout => Snapshot(_stdout);

    public IReadOnlyList<string> Stderr => Snapshot(_stderr);

    public static string SluiceDll { get; } = FindSluiceDll();

    public static SluiceProcess Start(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(SluiceDll);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // The developer's own settings must not leak into what the test asserts.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("SLUICE_", StringComparison.OrdinalIgnoreCase)
                     || k.StartsWith("LIFTBRIDGE_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

        var process = new Process { StartInfo = start };
        var result = new SluiceProcess(process);
        process.OutputDataReceived += (_, e) => result.Add(result._stdout, e.Data);
        process.ErrorDataReceived += (_, e) => result.Add(result._stderr, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return result;
    }

    /// <summary>Runs to completion and returns the exit code.</summary>
    public static async Task<(int ExitCode, SluiceProcess Process)> RunAsync(params string[] args)
    {
        var process = Start(args);
        return (await process.WaitForExitAsync(), process);
    }

    public async Task<string> WaitForLineAsync(string text, TimeSpan? timeout = null)
    {
        using var deadline = new CancellationTokenSource(timeout ?? DefaultTimeout);
        while (true)
        {
            var match = Stdout.Concat(Stderr).FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal));
            if (match is not null)
            {
                return match;
            }

            if (_process.HasExited)
            {
                await _process.WaitForExitAsync(); // drain the output readers before the last look
                match = Stdout.Concat(Stderr).FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal));
                return match ?? throw new Xunit.Sdk.XunitException(
                    $"sluice exited ({_process.ExitCode}) without printing \"{text}\":\n{Transcript()}");
            }

            try
            {
                await _lineAdded.WaitAsync(TimeSpan.FromMilliseconds(250), deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new Xunit.Sdk.XunitException($"no line with \"{text}\" within the timeout:\n{Transcript()}");
            }
        }
    }

    /// <summary>Sends SIGTERM, as `kill` and service managers do (Process.Kill would be SIGKILL).</summary>
    public async Task TerminateAsync()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
        Assert.Equal(0, kill.ExitCode);
    }

    public async Task<int> WaitForExitAsync(TimeSpan? timeout = null)
    {
        using var deadline = new CancellationTokenSource(timeout ?? DefaultTimeout);
        try
        {
            await _process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            throw new Xunit.Sdk.XunitException($"sluice did not exit within the timeout:\n{Transcript()}");
        }

        return _process.ExitCode;
    }

    public string Transcript() =>
        "--- stdout ---\n" + string.Join('\n', Stdout) + "\n--- stderr ---\n" + string.Join('\n', Stderr);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        _lineAdded.Dispose();
    }

    private static IReadOnlyList<string> Snapshot(List<string> lines)
    {
        lock (lines)
        {
            return [.. lines];
        }
    }

    private void Add(List<string> lines, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (lines)
        {
            lines.Add(line);
        }

        _lineAdded.Release();
    }

    private static string FindSluiceDll()
    {
        // Same configuration and target framework as this test assembly, built by the same solution build.
        var configuration = typeof(SluiceProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        var framework = new DirectoryInfo(AppContext.BaseDirectory).Name;
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Sluice.slnx")))
        {
            dir = dir.Parent;
        }

        if (dir is null)
        {
            throw new InvalidOperationException("Sluice.slnx not found above " + AppContext.BaseDirectory);
        }

        var path = Path.Combine(dir.FullName, "src", "Sluice.Cli", "bin", configuration, framework, "sluice.dll");
        return File.Exists(path) ? path : throw new FileNotFoundException("Build the solution first; sluice.dll not found", path);
    }
}
