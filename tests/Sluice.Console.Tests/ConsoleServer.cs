using System.Net;
using System.Text;
using System.Text.Json;
using Sluice.Client;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;
using Sluice.TestKit;

namespace Sluice.Console.Tests;

/// <summary>
/// A real Sluice server in-process (gRPC and monitoring ports on 127.0.0.1:0, temp data directory, activity stream and
/// cursors on) with a client connected to it, and helpers to give it data and read its JSON views.
/// </summary>
public sealed class ConsoleServer : IAsyncDisposable
{
    private readonly TempDirectory _dir = new("sluice-console");

    private ConsoleServer()
    {
    }

    public SluiceServer Server { get; private set; } = null!;

    public SluiceClient Client { get; private set; } = null!;

    /// <summary>What the server logged.</summary>
    public RecordedLog Log { get; } = new();

    public HttpClient Http { get; private set; } = null!;

    public string Scheme { get; private set; } = "http";

    /// <summary>The console's address, e.g. http://127.0.0.1:41234.</summary>
    public string Origin => $"{Scheme}://127.0.0.1:{Server.MonitorPort}";

    public string Sub(string name) => _dir.Sub(name);

    public static async Task<ConsoleServer> StartAsync(Func<ServerOptions, TempDirectory, ServerOptions>? configure = null, Func<ConsoleServer, SluiceClientOptions, SluiceClientOptions>? client = null, HttpMessageHandler? http = null)
    {
        var server = new ConsoleServer { Http = new HttpClient(http ?? new SocketsHttpHandler { UseProxy = false, UseCookies = false }) { Timeout = TimeSpan.FromSeconds(20) } };
        try
        {
            var options = ServerOptions.Default with
            {
                Host = "127.0.0.1",
                Port = 0,
                DataDir = server._dir.Sub("data"),
                Monitor = MonitorOptions.Default with { Listen = new HostPort("127.0.0.1", 0) },
                Activity = ActivityOptions.Default with { Enabled = true },
                Cursors = CursorsOptions.Default with { Partitions = 1 },
            };
            options = configure?.Invoke(options, server._dir) ?? options;
            server.Scheme = options.Tls.Enabled ? "https" : "http";
            var loggers = new Microsoft.Extensions.Logging.LoggerFactory([server.Log]);
            server.Server = await SluiceServer.StartAsync(options, loggers);
            var clientOptions = SluiceClientOptions.Default with { AckWaitTime = TimeSpan.FromSeconds(10), ConnectTimeout = TimeSpan.FromSeconds(5) };
            server.Client = await SluiceClient.ConnectAsync([$"127.0.0.1:{server.Server.Port}"], client?.Invoke(server, clientOptions) ?? clientOptions);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public async Task PublishAsync(string stream, int partition, int count, string prefix = "message")
    {
        for (var i = 0; i < count; i++)
        {
            await Client.PublishAsync(stream, Encoding.UTF8.GetBytes($"{prefix}-{i}"), MessageOptions.Default with { Partition = partition });
        }
    }

    /// <summary>A JSON view of the monitoring port, e.g. "/v1/partitions".</summary>
    public async Task<JsonElement> ViewAsync(string path)
    {
        using var response = await Http.GetAsync(Origin + path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.Clone();
    }

    /// <summary>The partition's entry in /v1/partitions, or null when the stream does not exist.</summary>
    public async Task<JsonElement?> PartitionAsync(string stream, int partition)
    {
        foreach (var p in (await ViewAsync("/v1/partitions")).GetProperty("partitions").EnumerateArray())
        {
            if (p.GetProperty("stream").GetString() == stream && p.GetProperty("partition").GetInt32() == partition)
            {
                return p;
            }
        }

        return null;
    }

    public async Task<bool> StreamExistsAsync(string stream) =>
        (await ViewAsync("/v1/streams")).GetProperty("streams").EnumerateArray().Any(s => s.GetProperty("name").GetString() == stream);

    public async ValueTask DisposeAsync()
    {
        if (Client is not null)
        {
            await Client.DisposeAsync();
        }

        if (Server is not null)
        {
            await Server.DisposeAsync();
        }

        Http?.Dispose();
        _dir.Dispose();
    }
}
