namespace Sluice.Cli.Commands;

/// <summary>A command failed for a reason the user should read on one line; exits 1.</summary>
internal class CommandException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>A flag or argument the parser accepted but the command cannot use; exits 2.</summary>
internal sealed class UsageException(string message) : CommandException(message, SluiceCommandLine.UsageError);
