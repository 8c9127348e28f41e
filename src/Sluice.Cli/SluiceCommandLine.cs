using System.CommandLine;
using System.Reflection;
using Sluice.Cli.Commands;

namespace Sluice.Cli;

/// <summary>The `sluice` command tree. Each command lives in its own file under Commands/.</summary>
internal static class SluiceCommandLine
{
    /// <summary>Exit code for a bad command line or a bad configuration.</summary>
    public const int UsageError = 2;

    /// <summary>The product version without the source revision suffix.</summary>
    public static string Version { get; } =
        (typeof(SluiceCommandLine).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0")
        .Split('+')[0];

    public static RootCommand Build()
    {
        var root = new RootCommand(
            "Sluice: durable, replicated message streams, wire-compatible with Liftbridge.\n"
            + "Run without a command, `sluice [flags]` serves exactly like `liftbridge [flags]` and `sluice serve [flags]`.\n"
            + "The other commands talk to a running server (--servers, or SLUICE_SERVERS; default 127.0.0.1:9292).");

        // Liftbridge's launch command has no subcommand, so its flags work on the root command too.
        ServeCommand.Attach(root);
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(StreamCommand.Create());
        root.Subcommands.Add(PubCommand.Create());
        root.Subcommands.Add(SubCommand.Create());
        root.Subcommands.Add(MetadataCommand.Create());
        root.Subcommands.Add(RepairCommand.Create());
        return root;
    }

    public static async Task<int> InvokeAsync(string[] args)
    {
        var root = Build();
        var parsed = root.Parse(GoStyleArguments.Normalize(root, args));
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors)
            {
                await Console.Error.WriteLineAsync($"sluice: {error.Message}").ConfigureAwait(false);
            }

            await Console.Error.WriteLineAsync("Run 'sluice --help' for the list of commands and flags.").ConfigureAwait(false);
            return UsageError;
        }

        // Commands handle SIGTERM/SIGINT themselves (graceful stop, exit 0), so System.CommandLine must not.
        var invocation = new InvocationConfiguration { ProcessTerminationTimeout = null };
        return await parsed.InvokeAsync(invocation).ConfigureAwait(false);
    }
}
