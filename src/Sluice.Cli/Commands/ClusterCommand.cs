using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Sluice.Etcd;

namespace Sluice.Cli.Commands;

/// <summary>
/// `sluice cluster --brokers N [--base-port P] [--data-dir D]`: a local cluster for development: one etcd
/// (<see cref="LocalEtcd"/>, data in D/etcd) and N `sluice serve` children of this same executable (b1..bN on
/// 127.0.0.1, ports P..P+N-1, data in D/bK), until Ctrl-C or SIGTERM, which stops them all by PID.
/// </summary>
internal static partial class ClusterCommand
{
    // A child that ignores SIGTERM this long is killed.
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    public static Command Create()
    {
        var brokers = new Option<int>("--brokers", "-n") { Description = "How many brokers to run", Required = true };
        var basePort = new Option<int>("--base-port", "-p")
        {
            Description = "Port of b1; bK listens on base+K-1 (0: each picks a free port)",
            DefaultValueFactory = _ => 9292,
        };
        var dataDir = new Option<string>("--data-dir", "-d")
        {
            Description = "Where etcd and each broker keep their data (D/etcd, D/b1..)",
            DefaultValueFactory = _ => "./cluster-data",
        };
        var command = new Command("cluster", "Run a local development cluster: one etcd and N brokers on 127.0.0.1, until Ctrl-C")
        {
            brokers,
            basePort,
            dataDir,
        };
        command.SetAction((parsed, ct) => RunAsync(parsed.GetValue(brokers), parsed.GetValue(basePort), Path.GetFullPath(parsed.GetValue(dataDir)!), ct));
        command.Subcommands.Add(ClusterStatusCommand.Create());
        return command;
    }

    private static async Task<int> RunAsync(int brokers, int basePort, string dataDir, CancellationToken ct)
    {
        if (brokers is < 1 or > 64 || basePort is < 0 || basePort + brokers - 1 > 65535)
        {
            await Console.Error.WriteLineAsync("sluice: --brokers must be 1 to 64, and the ports base-port..base-port+brokers-1 must be valid").ConfigureAwait(false);
            return SluiceCommandLine.UsageError;
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);

        LocalEtcd etcd;
        try
        {
            etcd = await LocalEtcd.StartAsync(Path.Combine(dataDir, "etcd"), cancellationToken: stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return 0;
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or IOException)
        {
            await Console.Error.WriteLineAsync("sluice: cannot start etcd: " + e.Message).ConfigureAwait(false);
            return 1;
        }

        var children = new List<Broker>();
        await using (etcd.ConfigureAwait(false))
        {
            Console.WriteLine($"etcd {etcd.ClientUrl} (pid {etcd.ProcessId}), data in {etcd.DataDirectory}");
            try
            {
                for (var k = 1; k <= brokers; k++)
                {
                    var port = basePort == 0 ? 0 : basePort + k - 1;
                    children.Add(Broker.Start($"b{k}", port, Path.Combine(dataDir, $"b{k}"), etcd.ClientUrl));
                }

                foreach (var child in children)
                {
                    var address = await child.Serving.WaitAsync(StartTimeout, stop.Token).ConfigureAwait(false);
                    Console.WriteLine($"{child.Name} {address} (pid {child.Process.Id})");
                }

                Console.WriteLine($"cluster up: {brokers} broker(s); Ctrl-C stops it");
                await Task.WhenAny(children.Select(c => c.Process.WaitForExitAsync(stop.Token))).ConfigureAwait(false);
                if (!stop.IsCancellationRequested)
                {
                    var dead = children.First(c => c.Process.HasExited);
                    await Console.Error.WriteLineAsync($"sluice: broker {dead.Name} exited with code {dead.Process.ExitCode}; stopping the cluster").ConfigureAwait(false);
                    return 1;
                }

                return 0;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return 0;
            }
            catch (Exception e) when (e is TimeoutException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                await Console.Error.WriteLineAsync("sluice: cannot start the cluster: " + e.Message).ConfigureAwait(false);
                return 1;
            }
            finally
            {
                await Task.WhenAll(children.Select(c => c.StopAsync())).ConfigureAwait(false);
                Console.WriteLine("cluster stopped");
            }
        }

        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }
    }

    /// <summary>One `sluice serve` child; its output is passed on with a "[bK] " prefix.</summary>
    private sealed partial class Broker
    {
        private readonly TaskCompletionSource<string> _serving = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private Broker(string name, Process process)
        {
            Name = name;
            Process = process;
        }

        public string Name { get; }

        public Process Process { get; }

        /// <summary>The address the broker serves on, once it says so; faults if it exits first.</summary>
        public Task<string> Serving => _serving.Task;

        public static Broker Start(string name, int port, string dataDir, string etcdUrl)
        {
            var start = new ProcessStartInfo(Environment.ProcessPath ?? "dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };

            // Run as `dotnet sluice.dll`, the same executable is the host plus the entry assembly (next to it on disk).
            // A Native AOT `sluice` is one file: ProcessPath is the binary itself and takes no assembly argument.
            if (Path.GetFileNameWithoutExtension(start.FileName) == "dotnet")
            {
                start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "sluice.dll"));
            }

            foreach (var argument in new[]
            {
                "serve", "--server-id", name, "--host", "127.0.0.1", "--port", port.ToString(CultureInfo.InvariantCulture),
                "--data-dir", dataDir, "--etcd-endpoints", etcdUrl,
            })
            {
                start.ArgumentList.Add(argument);
            }

            var process = Process.Start(start) ?? throw new InvalidOperationException($"broker {name} did not start");
            var broker = new Broker(name, process);
            process.OutputDataReceived += (_, e) => broker.Pass(e.Data, Console.Out);
            process.ErrorDataReceived += (_, e) => broker.Pass(e.Data, Console.Error);
            process.EnableRaisingEvents = true;
            process.Exited += (_, _) => broker._serving.TrySetException(new InvalidOperationException($"broker {name} exited with code {process.ExitCode} before serving"));
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return broker;
        }

        private void Pass(string? line, TextWriter to)
        {
            if (line is null)
            {
                return;
            }

            to.WriteLine($"[{Name}] {line}");
            if (ServingLine().Match(line) is { Success: true } match)
            {
                _serving.TrySetResult(match.Groups[1].Value);
            }
        }

        /// <summary>SIGTERM (a graceful stop), then a kill of its tree if it is still there after the grace period.</summary>
        public async Task StopAsync()
        {
            try
            {
                if (!Process.HasExited)
                {
                    _ = SendSignal(Process.Id, SigTerm);
                    using var grace = new CancellationTokenSource(StopGrace);
                    try
                    {
                        await Process.WaitForExitAsync(grace.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        Process.Kill(entireProcessTree: true);
                        await Process.WaitForExitAsync().ConfigureAwait(false);
                    }
                }
            }
            finally
            {
                Process.Dispose();
            }
        }

        [GeneratedRegex(@"serving proto\.API on (\S+:\d+)")]
        private static partial Regex ServingLine();
    }

    private const int SigTerm = 15;

    // DllImport with blittable arguments, as DirectorySync does: LibraryImport would need unsafe code.
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int SendSignal(int pid, int signal);
}
