using System.Diagnostics;
using Sluice.TestKit;

namespace Sluice.Cli.Tests;

/// <summary>
/// ./test.sh on a machine with only the .NET SDK: run on a copy of the script with stand-ins for apt-get, npm and
/// dotnet on a PATH without node, npm, nats-server or etcd, so what it would install and print is observable.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class TestScriptTests
{
    [Fact]
    public async Task On_a_fresh_machine_test_sh_installs_node_and_npm_and_announces_each_stage()
    {
        using var dir = new TempDirectory("sluice-test-sh");
        var root = Directory.GetParent(typeof(TestScriptTests).Assembly.Location);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Sluice.slnx")))
        {
            root = root.Parent;
        }

        Assert.NotNull(root);
        File.Copy(Path.Combine(root.FullName, "test.sh"), dir.Sub("test.sh"));
        Directory.CreateDirectory(dir.Sub("tests/conformance"));
        await File.WriteAllTextAsync(dir.Sub("tests/conformance/package.json"), "{}\n");

        var bin = Directory.CreateDirectory(dir.Sub("bin")).FullName;
        foreach (var tool in new[] { "dirname", "date", "id", "mktemp", "tee", "grep", "head", "sed", "rm", "mkdir", "cat", "chmod" })
        {
            var path = new[] { "/usr/bin", "/bin" }.Select(d => Path.Combine(d, tool)).First(File.Exists);
            File.CreateSymbolicLink(Path.Combine(bin, tool), path);
        }

        var log = dir.Sub("apt.log");
        // apt-get "installs" node and npm by putting stand-ins on the PATH, as the real packages would put the real ones.
        await Script(bin, "apt-get", $"""
            echo "$*" >> '{log}'
            for p in "$@"; do
              case "$p" in
                nodejs) printf '#!/bin/bash\nexit 0\n' > '{bin}/node'; chmod +x '{bin}/node' ;;
                npm) printf '#!/bin/bash\nmkdir -p node_modules\n' > '{bin}/npm'; chmod +x '{bin}/npm' ;;
              esac
            done
            """);
        // dotnet: build and format succeed; test leaves one trx with one passed test in the results directory.
        await Script(bin, "dotnet", """
            if [ "$1" = test ]; then
              while [ $# -gt 0 ]; do [ "$1" = --results-directory ] && out="$2"; shift; done
              echo '<TestRun><ResultSummary><Counters total="1" executed="1" passed="1" failed="0" notExecuted="0" /></ResultSummary></TestRun>' > "$out/run.trx"
            fi
            exit 0
            """);

        var start = new ProcessStartInfo("/bin/bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(dir.Sub("test.sh"));
        start.Environment["PATH"] = bin;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await process.WaitForExitAsync(deadline.Token);
        var output = await stdout;
        var transcript = output + "\n--- stderr ---\n" + await stderr;

        if (Environment.UserName != "root")
        {
            // Not root: the script names what is missing and stops.
            Assert.Equal(1, process.ExitCode);
            Assert.Contains("nodejs", transcript, StringComparison.Ordinal);
            return;
        }

        Assert.True(process.ExitCode == 0, transcript);
        var installed = (await File.ReadAllTextAsync(log)).Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("nodejs", installed);
        Assert.Contains("npm", installed);
        Assert.True(Directory.Exists(dir.Sub("tests/conformance/node_modules")), transcript); // npm ci ran with the npm just installed

        var lines = output.Split('\n');
        var stages = lines.Where(l => l.StartsWith("==== ", StringComparison.Ordinal)).Select(l => l.Split(' ')[1].TrimEnd(':')).ToArray();
        Assert.Equal(["install", "build", "format", "test"], stages);
        Assert.Contains("tests: 1 passed, 0 failed, 0 skipped", lines);
    }

    private static async Task Script(string bin, string name, string body)
    {
        var path = Path.Combine(bin, name);
        await File.WriteAllTextAsync(path, "#!/bin/bash\n" + body + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }
}
