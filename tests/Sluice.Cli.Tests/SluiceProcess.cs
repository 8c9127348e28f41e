using System.Diagnostics;
using Sluice.TestKit;

namespace Sluice.Cli.Tests;

/// <summary>The built `sluice` run as `dotnet sluice.dll ...` (or SLUICE_TEST_BIN), with its output collected line by line.</summary>
public sealed class SluiceProcess : IAsyncDisposable
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly List<string> _stdout = [];
    private readonly List<string> _stderr = [];
    private readonly List<string> _output = [];
    private readonly SemaphoreSlim _lineAdded = new(0);
    private Task _stdinWriter = Task.CompletedTask;

    private SluiceProcess(Process process)
    {
        _process = process;
    }

    public IReadOnlyList<string> Stdout => Snapshot(_stdout);

    public bool HasExited => _process.HasExited;

    public int ProcessId => _process.Id;

    public IReadOnlyList<string> Stderr => Snapshot(_stderr);

    /// <summary>Standard output and error interleaved in the order their lines arrived.</summary>
    public IReadOnlyList<string> Output => Snapshot(_output);

    public static string SluiceDll => SluiceBuild.SluiceDll;

    /// <summary>
    /// A native `sluice` executable to run instead of `dotnet sluice.dll`, from SLUICE_TEST_BIN (e.g. the Native AOT
    /// build of scripts/publish-aot.sh: `SLUICE_TEST_BIN=$PWD/artifacts/aot/linux-x64/sluice dotnet test tests/Sluice.Cli.Tests ...`);
    /// null when unset, the default.
    /// </summary>
    public static string? NativeBinary { get; } = Environment.GetEnvironmentVariable("SLUICE_TEST_BIN") is { Length: > 0 } bin
        ? (File.Exists(bin) ? Path.GetFullPath(bin) : throw new FileNotFoundException("SLUICE_TEST_BIN does not exist", bin))
        : null;

    public static SluiceProcess Start(params string[] args) => Start(args, stdin: null);

    /// <summary>
    /// Starts sluice with <paramref name="stdin"/> as its standard input (closed at once when null, so a command
    /// that reads stdin sees end of input instead of hanging) and extra environment variables.
    /// </summary>
    public static SluiceProcess Start(IReadOnlyList<string> args, string? stdin, IReadOnlyDictionary<string, string>? environment = null) =>
        StartCore(args, stdin is null ? null : System.Text.Encoding.UTF8.GetBytes(stdin), environment);

    /// <summary>Starts sluice with these exact bytes as its standard input.</summary>
    public static SluiceProcess StartWithBytes(IReadOnlyList<string> args, byte[] stdin) => StartCore(args, stdin, environment: null);

    /// <summary>
    /// Starts sluice as the leader of a process group of its own, as a shell starts a foreground job: see
    /// <see cref="InterruptProcessGroupAsync"/>. setsid execs dotnet (or the native binary) in place, so the process id stays sluice's.
    /// </summary>
    public static SluiceProcess StartAsProcessGroup(params string[] args) => StartCore(args, stdin: null, environment: null, processGroup: true);

    private static SluiceProcess StartCore(IReadOnlyList<string> args, byte[]? stdin, IReadOnlyDictionary<string, string>? environment, bool processGroup = false)
    {
        var program = NativeBinary ?? "dotnet";
        var start = new ProcessStartInfo(processGroup ? "setsid" : program)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (processGroup)
        {
            start.ArgumentList.Add(program);
        }

        if (NativeBinary is null)
        {
            start.ArgumentList.Add(SluiceDll);
        }

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

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var process = new Process { StartInfo = start };
        var result = new SluiceProcess(process);
        process.OutputDataReceived += (_, e) => result.Add(result._stdout, e.Data);
        process.ErrorDataReceived += (_, e) => result.Add(result._stderr, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        result._stdinWriter = stdin is null ? Task.CompletedTask : WriteStdinAsync(process, stdin);
        if (stdin is null)
        {
            process.StandardInput.Close();
        }

        return result;
    }

    /// <summary>Runs to completion with <paramref name="stdin"/> as input and returns the exit code.</summary>
    public static async Task<(int ExitCode, SluiceProcess Process)> RunWithInputAsync(string stdin, params string[] args)
    {
        var process = Start(args, stdin);
        return (await process.WaitForExitAsync(), process);
    }

    /// <summary>Runs to completion with these exact bytes as input and returns the exit code.</summary>
    public static async Task<(int ExitCode, SluiceProcess Process)> RunWithInputAsync(byte[] stdin, params string[] args)
    {
        var process = StartWithBytes(args, stdin);
        return (await process.WaitForExitAsync(), process);
    }

    private static async Task WriteStdinAsync(Process process, byte[] stdin)
    {
        // Written concurrently with the output readers: a large input must not deadlock against a full stdout pipe.
        try
        {
            await process.StandardInput.BaseStream.WriteAsync(stdin);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The command exited before reading all of its input (e.g. the stream does not exist); its exit code tells.
        }
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
    public Task TerminateAsync() => SignalAsync("-TERM");

    /// <summary>Sends SIGINT, what Ctrl-C in a terminal does.</summary>
    public Task InterruptAsync() => SignalAsync("-INT");

    /// <summary>Sends SIGHUP (what reloads the authorization policy).</summary>
    public Task HangUpAsync() => SignalAsync("-HUP");

    /// <summary>SIGINT to sluice's whole process group, what Ctrl-C in a terminal does (see <see cref="StartAsProcessGroup"/>).</summary>
    public Task InterruptProcessGroupAsync() => SignalAsync("-INT", group: true);

    private async Task SignalAsync(string signal, bool group = false)
    {
        var pid = _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var kill = Process.Start("kill", group ? [signal, "--", "-" + pid] : [signal, pid]);
        await kill.WaitForExitAsync();
        Assert.Equal(0, kill.ExitCode);
    }

    public async Task<int> WaitForExitAsync(TimeSpan? timeout = null)
    {
        using var deadline = new CancellationTokenSource(timeout ?? DefaultTimeout);
        try
        {
            await _process.WaitForExitAsync(deadline.Token);
            await _stdinWriter;
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

        lock (_output)
        {
            _output.Add(line);
        }

        _lineAdded.Release();
    }
}
