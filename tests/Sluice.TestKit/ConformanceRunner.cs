using System.Diagnostics;

namespace Sluice.TestKit;

/// <summary>What a conformance script did: its exit code and everything it printed.</summary>
/// <param name="Program">The interpreter that ran it (node, python3).</param>
/// <param name="ExitCode">The process's exit code (0: every check passed).</param>
/// <param name="StandardOutput">What it printed on stdout.</param>
/// <param name="StandardError">What it printed on stderr.</param>
public sealed record ConformanceResult(string Program, int ExitCode, string StandardOutput, string StandardError)
{
    /// <summary>Exit code and both streams, for an assertion message.</summary>
    public override string ToString() => $"{Program} exit code {ExitCode}\n{StandardOutput}\n{StandardError}";
}

/// <summary>
/// Runs a script of the conformance suites in <c>tests/conformance</c> against a server the test
/// started: grpc-js scripts with node, grpcio (gRPC's C core) scripts with Debian's python3. Both are
/// gRPC implementations independent of .NET's. A missing interpreter or package fails loudly with
/// the fix; a script that hangs is killed after the timeout.
/// </summary>
public static class ConformanceRunner
{
    private static readonly string[] Candidates = ["/usr/bin/node", "/usr/local/bin/node"];

    /// <summary>Debian's python3, where apt installs python3-grpcio (a pyenv python on PATH lacks it).</summary>
    private const string DebianPython = "/usr/bin/python3";

    /// <summary>How long a script may run before it is killed (the suites take seconds).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(120);

    /// <summary>The <c>tests/conformance</c> directory of this checkout.</summary>
    public static string ConformanceDirectory => Path.Combine(FindRepoRoot(), "tests", "conformance");

    /// <summary>
    /// Runs <c>node <paramref name="script"/> <paramref name="arguments"/></c> in <see cref="ConformanceDirectory"/>
    /// and returns when it exits.
    /// </summary>
    /// <exception cref="InvalidOperationException">node or the suite's npm packages are not installed.</exception>
    /// <exception cref="TimeoutException">The script ran longer than <paramref name="timeout"/> (it was killed).</exception>
    public static Task<ConformanceResult> RunNodeAsync(string script, IEnumerable<string> arguments, TimeSpan? timeout = null)
    {
        var directory = ConformanceDirectory;
        if (!Directory.Exists(Path.Combine(directory, "node_modules", "@grpc", "grpc-js")))
        {
            throw new InvalidOperationException($"grpc-js is not installed: run `npm ci` in {directory} (test.sh does this).");
        }

        return RunAsync(FindNode(), script, arguments, timeout);
    }

    /// <summary>
    /// Runs <c>python3 <paramref name="script"/> <paramref name="arguments"/></c> (Debian's, with grpcio) in
    /// <see cref="ConformanceDirectory"/> and returns when it exits.
    /// </summary>
    /// <exception cref="InvalidOperationException">python3, grpcio or grpc_tools is not installed.</exception>
    /// <exception cref="TimeoutException">The script ran longer than <paramref name="timeout"/> (it was killed).</exception>
    public static async Task<ConformanceResult> RunPythonAsync(string script, IEnumerable<string> arguments, TimeSpan? timeout = null)
    {
        var python = Environment.GetEnvironmentVariable("PYTHON_GRPC_BIN") is { Length: > 0 } fromEnv ? fromEnv : DebianPython;
        if (!File.Exists(python))
        {
            throw new InvalidOperationException($"{python} was not found. Install it: apt-get install -y python3 python3-grpcio python3-grpc-tools");
        }

        var result = await RunAsync(python, script, arguments, timeout).ConfigureAwait(false);
        if (result.StandardError.Contains("No module named 'grpc", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"grpcio is not installed for {python}: apt-get install -y python3-grpcio python3-grpc-tools (test.sh does this).\n{result}");
        }

        return result;
    }

    private static async Task<ConformanceResult> RunAsync(string program, string script, IEnumerable<string> arguments, TimeSpan? timeout)
    {
        ArgumentException.ThrowIfNullOrEmpty(script);
        ArgumentNullException.ThrowIfNull(arguments);
        var directory = ConformanceDirectory;
        var name = Path.GetFileName(program);
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(script);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {start.FileName}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var limit = timeout ?? DefaultTimeout;
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync().ConfigureAwait(false);
            throw new TimeoutException($"{name} {script} did not finish within {limit.TotalSeconds} s and was killed:\n{await stdout.ConfigureAwait(false)}\n{await stderr.ConfigureAwait(false)}");
        }

        return new ConformanceResult(name, process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }

    /// <summary>Path of the node binary ($NODE_BIN, $PATH, /usr/bin), or an exception that says how to install it.</summary>
    public static string FindNode()
    {
        var fromEnv = Environment.GetEnvironmentVariable("NODE_BIN");
        if (!string.IsNullOrEmpty(fromEnv) && File.Exists(fromEnv))
        {
            return fromEnv;
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, "node");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return Candidates.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("node was not found (looked at $NODE_BIN, $PATH and /usr/bin). Install it: apt-get install -y nodejs npm");
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Sluice.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"Sluice.slnx not found above {AppContext.BaseDirectory}");
    }
}
