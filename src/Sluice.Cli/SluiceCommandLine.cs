using System.CommandLine;
using System.CommandLine.Parsing;
using System.Reflection;
using Sluice.Cli.Commands;

namespace Sluice.Cli;

/// <summary>The `sluice` command tree. Each command lives in its own file under Commands/.</summary>
internal static class SluiceCommandLine
{
    /// <summary>Exit code for a bad command line or a bad configuration.</summary>
    public const int UsageError = 2;

    /// <summary>The version as `--version` prints it: the product version, then + and the source revision when built from git.</summary>
    public static string FullVersion { get; } =
        typeof(SluiceCommandLine).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";

    /// <summary>The product version without the source revision suffix.</summary>
    public static string Version { get; } = FullVersion.Split('+')[0];

    public static RootCommand Build()
    {
        var root = new RootCommand(
            "Sluice: durable, partitioned message streams, wire-compatible with Liftbridge. One node today; clustering is being built.\n"
            + "Run without a command, `sluice [flags]` serves exactly like `liftbridge [flags]` and `sluice serve [flags]`.\n"
            + "The other commands talk to a running server (--servers, or SLUICE_SERVERS; default 127.0.0.1:9292).");

        // Liftbridge's launch command has no subcommand, so its flags work on the root command too.
        ServeCommand.Attach(root);
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(StreamCommand.Create());
        root.Subcommands.Add(GroupCommand.Create());
        root.Subcommands.Add(PubCommand.Create());
        root.Subcommands.Add(SubCommand.Create());
        root.Subcommands.Add(MetadataCommand.Create());
        root.Subcommands.Add(TopCommand.Create());
        root.Subcommands.Add(RepairCommand.Create());
        root.Subcommands.Add(ClusterCommand.Create());
        root.Subcommands.Add(HelpCommand(root));
        root.Subcommands.Add(VersionCommand());
        return root;
    }

    public static async Task<int> InvokeAsync(string[] args)
    {
        var root = Build();
        var parsed = root.Parse(GoStyleArguments.Normalize(root, args));
        var errors = parsed.Errors.Select(e => e.Message).Concat(UnknownFlagsTakenAsValues(parsed)).ToList();
        if (errors.Count > 0)
        {
            var command = parsed.CommandResult.Command;
            if (command.Action is null && command.Subcommands.Count > 0)
            {
                // A command group alone (`sluice stream`): say what it offers rather than only that something is missing.
                await Console.Error.WriteLineAsync($"sluice: '{CommandPath(parsed.CommandResult)}' needs one of these commands:").ConfigureAwait(false);
                var width = command.Subcommands.Max(c => c.Name.Length) + 2;
                foreach (var sub in command.Subcommands.Where(c => !c.Hidden))
                {
                    await Console.Error.WriteLineAsync($"  {sub.Name.PadRight(width)}{sub.Description}").ConfigureAwait(false);
                }

                await Console.Error.WriteLineAsync($"Run '{CommandPath(parsed.CommandResult)} COMMAND --help' for its flags.").ConfigureAwait(false);
                return UsageError;
            }

            foreach (var error in errors)
            {
                await Console.Error.WriteLineAsync($"sluice: {error}").ConfigureAwait(false);
            }

            await Console.Error.WriteLineAsync("Run 'sluice --help' for the list of commands and flags.").ConfigureAwait(false);
            return UsageError;
        }

        // Commands handle SIGTERM/SIGINT themselves (graceful stop, exit 0), so System.CommandLine must not.
        var invocation = new InvocationConfiguration { ProcessTerminationTimeout = null };
        return await parsed.InvokeAsync(invocation).ConfigureAwait(false);
    }

    /// <summary>
    /// A misspelt flag (`--parttion 1`) would otherwise become a value of a variadic argument such as pub's values:
    /// an argument that looks like a flag is refused unless it comes after `--`.
    /// </summary>
    private static List<string> UnknownFlagsTakenAsValues(ParseResult parsed)
    {
        var doubleDash = -1;
        for (var i = 0; i < parsed.Tokens.Count; i++)
        {
            if (parsed.Tokens[i].Type == TokenType.DoubleDash)
            {
                doubleDash = i;
                break;
            }
        }

        var beforeDoubleDash = doubleDash < 0 ? parsed.Tokens : parsed.Tokens.Take(doubleDash);
        var flagLike = new HashSet<Token>(beforeDoubleDash.Where(t => t.Type == TokenType.Argument && t.Value.Length > 1 && t.Value[0] == '-'),
            ReferenceEqualityComparer.Instance);
        if (flagLike.Count == 0)
        {
            return [];
        }

        return parsed.CommandResult.Children.OfType<ArgumentResult>()
            .SelectMany(a => a.Tokens)
            .Where(flagLike.Contains)
            .Select(t => $"unknown flag {t.Value} (a value that starts with - goes after --: `-- {t.Value}`)")
            .ToList();
    }

    private static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is CommandResult c; r = c.Parent)
        {
            names.Add(c.Command is RootCommand ? "sluice" : c.Command.Name);
        }

        names.Reverse();
        return string.Join(' ', names);
    }

    /// <summary>`sluice help [command...]`: the same text as `sluice [command...] --help`.</summary>
    private static Command HelpCommand(RootCommand root)
    {
        var path = new Argument<string[]>("command") { Description = "The command to describe, e.g. `stream create`", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("help", "Show the help of sluice or of one of its commands") { path };
        command.SetAction(async (parsed, ct) =>
        {
            var names = parsed.GetValue(path) ?? [];
            Command target = root;
            foreach (var name in names)
            {
                var next = target.Subcommands.FirstOrDefault(c => c.Name == name || c.Aliases.Contains(name));
                if (next is null)
                {
                    await Console.Error.WriteLineAsync($"sluice: unknown command '{name}'; run 'sluice help' for the list of commands").ConfigureAwait(false);
                    return UsageError;
                }

                target = next;
            }

            return await root.Parse([.. names, "--help"]).InvokeAsync(cancellationToken: ct).ConfigureAwait(false);
        });
        return command;
    }

    private static Command VersionCommand()
    {
        var command = new Command("version", "Print the version (as --version does)");
        command.SetAction(parsed =>
        {
            parsed.InvocationConfiguration.Output.WriteLine(FullVersion);
            return 0;
        });
        return command;
    }
}
