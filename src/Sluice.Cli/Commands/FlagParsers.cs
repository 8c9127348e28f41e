using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Sluice.Server.Configuration;

namespace Sluice.Cli.Commands;

/// <summary>Option factories for the value shapes the commands share (Go durations, partition lists).</summary>
internal static class FlagParsers
{
    /// <summary>A Go-style duration (`90s`, `1h30m`, `500ms`), as Liftbridge users write them.</summary>
    public static Option<TimeSpan?> Duration(string name, string description) => new(name)
    {
        Description = description,
        HelpName = "duration",
        CustomParser = result => ParseDuration(result, result.Tokens.Single().Value, name),
    };

    /// <summary>Partition numbers: `--partitions 0,1` or `--partitions 0 --partitions 1`.</summary>
    public static Option<int[]> PartitionList(string description) => new("--partitions")
    {
        Description = description,
        HelpName = "n,n,...",
        Arity = ArgumentArity.OneOrMore,
        AllowMultipleArgumentsPerToken = false,
        CustomParser = result =>
        {
            var partitions = new List<int>();
            foreach (var part in result.Tokens.SelectMany(t => t.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
            {
                if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var partition))
                {
                    result.AddError($"--partitions: \"{part}\" is not a partition number");
                    return [];
                }

                partitions.Add(partition);
            }

            return [.. partitions.Distinct()];
        },
    };

    public static TimeSpan? ParseDuration(ArgumentResult result, string text, string name)
    {
        if (GoDuration.TryParseNanoseconds(text, out var nanoseconds) && nanoseconds >= 0)
        {
            return GoDuration.FromNanoseconds(nanoseconds);
        }

        result.AddError($"{name}: \"{text}\" is not a duration (examples: 90s, 1h30m, 500ms)");
        return null;
    }

    /// <summary>Rejects negative numbers at parse time (exit 2).</summary>
    public static Option<T> NotNegative<T>(this Option<T> option)
        where T : struct, IComparable<T>
    {
        option.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<T>().CompareTo(default) < 0)
            {
                result.AddError($"{option.Name} cannot be negative");
            }
        });
        return option;
    }

    /// <summary>True when the flag was written on the command line (bool flags report an implicit result too).</summary>
    public static bool IsGiven(this ParseResult parsed, Option option) => parsed.GetResult(option) is { Implicit: false };
}
