using System.CommandLine;

namespace Sluice.Cli;

/// <summary>
/// Liftbridge parses flags with Go's flag package, where `-config x` and `--config x`, `-nc f` and `--nc f`,
/// `-c x` and `--c x` all mean the same. Existing launch lines must keep working, so such tokens are rewritten to
/// the spelling System.CommandLine knows before parsing.
/// </summary>
internal static class GoStyleArguments
{
    public static string[] Normalize(Command root, IReadOnlyList<string> args)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        Collect(root, names);

        var result = new string[args.Count];
        var endOfOptions = false;
        for (var i = 0; i < args.Count; i++)
        {
            var token = args[i];
            endOfOptions |= token == "--";
            result[i] = endOfOptions ? token : Rewrite(token, names);
        }

        return result;
    }

    private static string Rewrite(string token, HashSet<string> names)
    {
        var equals = token.IndexOf('=', StringComparison.Ordinal);
        var name = equals < 0 ? token : token[..equals];
        var rest = equals < 0 ? "" : token[equals..];
        if (names.Contains(name))
        {
            return token;
        }

        if (name.StartsWith("--", StringComparison.Ordinal) && names.Contains(name[1..]))
        {
            return name[1..] + rest;         // --c → -c
        }

        if (name.Length > 2 && name[0] == '-' && name[1] != '-' && names.Contains("-" + name))
        {
            return "-" + name + rest;        // -config → --config, -nc → --nc
        }

        return token;
    }

    private static void Collect(Command command, HashSet<string> names)
    {
        foreach (var option in command.Options)
        {
            names.Add(option.Name);
            foreach (var alias in option.Aliases)
            {
                names.Add(alias);
            }
        }

        foreach (var child in command.Subcommands)
        {
            Collect(child, names);
        }
    }
}
