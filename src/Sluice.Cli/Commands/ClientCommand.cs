using System.CommandLine;
using System.Runtime.InteropServices;
using Sluice.Cli.Output;
using Sluice.Client;
using Sluice.Protocol.Grpc;

namespace Sluice.Cli.Commands;

/// <summary>What a data or admin command works with once it is connected.</summary>
internal sealed class ClientSession(SluiceClient client, CommandOutput output, IReadOnlyList<string> servers, CancellationToken interrupted)
{
    public SluiceClient Client { get; } = client;

    public CommandOutput Output { get; } = output;

    public IReadOnlyList<string> Servers { get; } = servers;

    /// <summary>Cancelled by Ctrl-C (SIGINT) or SIGTERM.</summary>
    public CancellationToken Interrupted { get; } = interrupted;

    /// <summary>The stream's metadata, or a one-line "stream X does not exist" failure.</summary>
    public async Task<StreamInfo> GetStreamAsync(string name)
    {
        var metadata = await Client.FetchMetadataAsync(new FetchMetadataOptions { Streams = [name] }, Interrupted).ConfigureAwait(false);
        return metadata.GetStream(name) ?? throw new CommandException($"stream {name} does not exist");
    }

    /// <summary>Checks partition numbers given on the command line against the stream.</summary>
    public static void CheckPartitions(StreamInfo stream, IEnumerable<int> partitions)
    {
        foreach (var partition in partitions)
        {
            if (!stream.Partitions.ContainsKey(partition))
            {
                throw new CommandException($"stream {stream.Name} has no partition {partition} (it has {stream.Partitions.Count})");
            }
        }
    }
}

/// <summary>
/// Runs a command against the cluster: parses the connection flags, connects, and turns every failure into one
/// line on stderr and an exit code (1 for failures at run time, 2 for unusable arguments).
/// </summary>
internal static class ClientCommand
{
    public static void SetAction(Command command, ConnectionFlags flags, Func<ClientSession, ParseResult, Task<int>> body)
    {
        flags.AddTo(command);
        command.SetAction((parsed, ct) => RunAsync(flags, parsed, body, ct));
    }

    private static async Task<int> RunAsync(ConnectionFlags flags, ParseResult parsed, Func<ClientSession, ParseResult, Task<int>> body, CancellationToken ct)
    {
        using var interrupt = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Interrupt);
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Interrupt);
        IReadOnlyList<string> servers = [];
        try
        {
            servers = flags.ReadServers(parsed);
            var output = new CommandOutput(parsed.GetValue(flags.Output));
            SluiceClient client;
            try
            {
                client = await SluiceClient.ConnectAsync(servers, SluiceClientOptions.Default, interrupt.Token).ConfigureAwait(false);
            }
            catch (BrokerUnavailableException e)
            {
                throw new CommandException($"cannot reach {string.Join(",", servers)}: {Reason(e)}");
            }

            await using (client.ConfigureAwait(false))
            {
                var code = await body(new ClientSession(client, output, servers, interrupt.Token), parsed).ConfigureAwait(false);
                await output.FlushAsync().ConfigureAwait(false);
                return code;
            }
        }
        catch (Exception e)
        {
            var (message, code) = Describe(e, servers, interrupt.IsCancellationRequested);
            await Console.Out.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            await Console.Error.WriteLineAsync("sluice: " + message).ConfigureAwait(false);
            return code;
        }

        void Interrupt(PosixSignalContext context)
        {
            context.Cancel = true; // let the command finish its output and exit by itself
            interrupt.Cancel();
        }
    }

    /// <summary>The one place that words failures for the command line.</summary>
    internal static (string Message, int ExitCode) Describe(Exception e, IReadOnlyList<string> servers, bool interrupted) => e switch
    {
        CommandException c => (c.Message, c.ExitCode),
        OperationCanceledException when interrupted => ("interrupted", 1),
        BrokerUnavailableException b => ($"cannot reach {string.Join(",", servers)}: {Reason(b)}", 1),
        ArgumentException a => (a.Message, SluiceCommandLine.UsageError),
        SluiceException s => (s.Message, 1),
        IOException io => (io.Message, 1),
        _ => ($"unexpected {e.GetType().Name}: {e.Message}", 1),
    };

    private static string Reason(BrokerUnavailableException e) =>
        e.InnerException is GrpcException grpc && !string.IsNullOrEmpty(grpc.Detail) ? grpc.Detail : e.Message;
}
