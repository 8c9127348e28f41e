using Microsoft.Extensions.Logging;

namespace Sluice.Cli;

/// <summary>Console logging for the server: one line per entry, UTC timestamps, errors on stderr.</summary>
internal static class ConsoleLogging
{
    public static ILoggerFactory Create(LogLevel level) => LoggerFactory.Create(builder => builder
        .SetMinimumLevel(level)
        // Kestrel's and the host's informational chatter would drown the server's own lines.
        .AddFilter("Microsoft", level > LogLevel.Warning ? level : LogLevel.Warning)
        // The host logs a failed start with a stack trace; ServerRunner reports it in one line instead.
        .AddFilter("Microsoft.Extensions.Hosting", LogLevel.None)
        .AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Error)
        .AddSimpleConsole(format =>
        {
            format.SingleLine = true;
            format.UseUtcTimestamp = true;
            format.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z' ";
            format.IncludeScopes = false;
        }));
}
