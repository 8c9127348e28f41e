namespace Sluice.Cli.Output;

/// <summary>What a data or admin command prints: tables and lines for people, or JSON for scripts.</summary>
internal enum OutputFormat
{
    Text,
    Json,
}
