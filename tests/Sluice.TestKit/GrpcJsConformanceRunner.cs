using System.Diagnostics;

namespace Sluice.TestKit;

/// <summary>What a conformance script did: its exit code and everything it printed.</summary>
/// <param name="ExitCode">The node process's exit code (0: every check passed).</param>
/// <param name="StandardOutput">What it printed on stdout.</param>
/// <param name="StandardError">What it printed on stderr.</param>
public sealed record GrpcJsConformanceResult(int ExitCode, string StandardOutput, string StandardError)
{
    /// <summary>Exit code and both streams, for an assertion message.</summary>
    public override string ToString() => $"node exit code {ExitCode}\n{StandardOutput}\n{StandardError}";
}

/// <summary>
/// Runs a script of the grpc-js conformance suite (<c>tests/conformance</c>: an independent gRPC
/// implementation) with node against a server the test started. A missing node or a missing
/// <c>npm ci</c> fails loudly with the fix; a script that hangs is killed after the timeout.
/// </summary>
public static class GrpcJsConformanceRunner
{
    private static readonly string[] Candidates = ["/usr/bin/node", "/usr/local/bin/node"];

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
    public static async Task<GrpcJsConformanceResult> RunAsync(string script, IEnumerable<string> arguments, TimeSpan? timeout = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(script);
        ArgumentNullException.ThrowIfNull(arguments);
        var directory = ConformanceDirectory;
        if (!Directory.Exists(Path.Combine(directory, "node_modules", "@grpc", "grpc-js")))
        {
            throw new InvalidOperationException($"grpc-js is not installed: run `npm ci` in {directory} (test.sh does this).");
        }

        var start = new ProcessStartInfo(FindNode())
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

        using var node = Process.Start(start) ?? throw new InvalidOperationException($"could not start {start.FileName}");
        var stdout = node.StandardOutput.ReadToEndAsync();
        var stderr = node.StandardError.ReadToEndAsync();
        var limit = timeout ?? DefaultTimeout;
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await node.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            node.Kill(entireProcessTree: true);
            await node.WaitForExitAsync().ConfigureAwait(false);
            throw new TimeoutException($"node {script} did not finish within {limit.TotalSeconds} s and was killed:\n{await stdout.ConfigureAwait(false)}\n{await stderr.ConfigureAwait(false)}");
        }

        return new GrpcJsConformanceResult(node.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
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
