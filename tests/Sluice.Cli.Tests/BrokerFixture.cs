using Sluice.Server.Configuration;
using Sluice.Server.Hosting;

namespace Sluice.Cli.Tests;

/// <summary>A real Sluice server in the test process (127.0.0.1, port 0, temp data dir) for the CLI to talk to.</summary>
public sealed class BrokerFixture : IAsyncLifetime
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sluice-cli-broker-");
    private SluiceServer? _server;

    public SluiceServer Server => _server ?? throw new InvalidOperationException("the broker has not started");

    /// <summary>The value for --servers.</summary>
    public string Servers => $"127.0.0.1:{Server.Port}";

    public async Task InitializeAsync() =>
        _server = await SluiceServer.StartAsync(ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = _dir.FullName });

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _dir.Delete(recursive: true);
    }

    /// <summary>Runs `sluice args... --servers this-broker` to completion.</summary>
    public Task<(int ExitCode, SluiceProcess Process)> RunAsync(params string[] args) => SluiceProcess.RunAsync([.. args, "--servers", Servers]);

    /// <summary>Runs `sluice args... --servers this-broker` with <paramref name="stdin"/> as its input.</summary>
    public Task<(int ExitCode, SluiceProcess Process)> RunWithInputAsync(string stdin, params string[] args) =>
        SluiceProcess.RunWithInputAsync(stdin, [.. args, "--servers", Servers]);

    /// <summary>Runs `sluice args... --servers this-broker` with these exact bytes as its input.</summary>
    public Task<(int ExitCode, SluiceProcess Process)> RunWithInputAsync(byte[] stdin, params string[] args) =>
        SluiceProcess.RunWithInputAsync(stdin, [.. args, "--servers", Servers]);

    /// <summary>Runs a command that must succeed and returns its stdout lines.</summary>
    public async Task<IReadOnlyList<string>> RunOkAsync(params string[] args)
    {
        var (code, process) = await RunAsync(args);
        await using (process)
        {
            Assert.True(code == 0, $"sluice {string.Join(' ', args)} exited {code}:\n{process.Transcript()}");
            return process.Stdout;
        }
    }
}
