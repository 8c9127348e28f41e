using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Spectre.Console;

namespace Sluice.Cli.Output;

/// <summary>
/// Standard output of a command. Tables go through Spectre.Console, which drops colours and cursor
/// control when stdout is redirected; JSON is written one object per line so that `jq` and line-based
/// tools can follow a stream of results.
/// </summary>
internal sealed class CommandOutput
{
    // A redirected Spectre console assumes 80 columns and would wrap long stream names; files have no width.
    private const int RedirectedWidth = 4096;

    private readonly TextWriter _out;
    private readonly Lazy<IAnsiConsole> _ansi;

    public CommandOutput(OutputFormat format, TextWriter? writer = null)
    {
        Format = format;
        _out = writer ?? Console.Out;
        IsTerminal = writer is null && !Console.IsOutputRedirected;
        // Spectre.Console is loaded only by commands that draw tables or progress: JSON and line output start faster.
        _ansi = new Lazy<IAnsiConsole>(() =>
        {
            var console = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Ansi = IsTerminal ? AnsiSupport.Detect : AnsiSupport.No,
                ColorSystem = IsTerminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
                Interactive = IsTerminal ? InteractionSupport.Yes : InteractionSupport.No,
                Out = new AnsiConsoleOutput(_out),
            });
            if (!IsTerminal)
            {
                console.Profile.Width = RedirectedWidth;
            }

            return console;
        });
    }

    public OutputFormat Format { get; }

    public bool IsJson => Format == OutputFormat.Json;

    /// <summary>True when stdout is a terminal a person is watching (progress displays make sense).</summary>
    public bool IsTerminal { get; }

    public IAnsiConsole Ansi => _ansi.Value;

    public void WriteLine(string line) => _out.WriteLine(line);

    public void WriteJson<T>(T value, JsonTypeInfo<T> type) => _out.WriteLine(JsonSerializer.Serialize(value, type));

    public void Write(Table table) => Ansi.Write(table);

    public Task FlushAsync() => _out.FlushAsync();

    /// <summary>A borderless-looking table that reads well in a terminal and greps well in a file.</summary>
    public static Table CreateTable(params string[] columns)
    {
        var table = new Table().Border(TableBorder.Simple);
        foreach (var column in columns)
        {
            table.AddColumn(new TableColumn(Markup.Escape(column)).NoWrap());
        }

        return table;
    }

    public static void AddRow(Table table, params string[] cells) =>
        table.AddRow(cells.Select(c => (Spectre.Console.Rendering.IRenderable)new Text(c)).ToArray());
}
