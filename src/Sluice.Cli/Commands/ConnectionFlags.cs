using System.CommandLine;
using Sluice.Cli.Output;

namespace Sluice.Cli.Commands;

/// <summary>The flags every data and admin command takes: which brokers to talk to and how to print.</summary>
internal sealed class ConnectionFlags
{
    public const string DefaultServers = "127.0.0.1:9292";
    public const string ServersVariable = "SLUICE_SERVERS";

    public Option<string> Servers { get; } = new("--servers", "-s")
    {
        Description = $"Brokers to connect to, comma-separated host:port (env {ServersVariable}; default {DefaultServers})",
        HelpName = "host:port,...",
    };

    public Option<OutputFormat> Output { get; } = new("--output", "-o")
    {
        // No default value factory: help would print the enum member's name; Text is the enum's default.
        Description = "Output format: text (tables, for people; the default) or json (one object per line, for scripts)",
        HelpName = "text|json",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Servers);
        command.Options.Add(Output);
    }

    /// <summary>The flag, else SLUICE_SERVERS (empty counts as unset), else the default; split on commas.</summary>
    public IReadOnlyList<string> ReadServers(ParseResult parsed)
    {
        var text = parsed.GetValue(Servers);
        if (string.IsNullOrWhiteSpace(text))
        {
            text = Environment.GetEnvironmentVariable(ServersVariable);
        }

        if (string.IsNullOrWhiteSpace(text))
        {
            text = DefaultServers;
        }

        var servers = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return servers.Length > 0 ? servers : throw new UsageException("--servers needs at least one host:port");
    }
}
