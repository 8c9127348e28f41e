using System.Net;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;
using Sluice.TestKit;

namespace Sluice.Client.Tests;

/// <summary>A real Sluice server in-process (port 0, temp data directory), restartable on the same port.</summary>
internal sealed class RealServer : IAsyncDisposable
{
    private readonly TempDirectory _dir = new("sluice-client");
    private ServerOptions _options = null!;

    public SluiceServer Server { get; private set; } = null!;

    /// <summary>The bound address (<c>127.0.0.1:port</c>), which is also the advertised one unless the options say otherwise.</summary>
    public string Address => $"127.0.0.1:{Server.Port}";

    /// <summary>The bound endpoint, e.g. for a <see cref="TcpProxy"/> to forward to.</summary>
    public IPEndPoint EndPoint => new(IPAddress.Loopback, Server.Port);

    /// <summary>Starts a server; <paramref name="configure"/> adjusts the test defaults (TLS, NATS, limits...).</summary>
    public static async Task<RealServer> StartAsync(Func<ServerOptions, ServerOptions>? configure = null)
    {
        var server = new RealServer();
        try
        {
            var options = ServerOptions.Default with
            {
                Host = "127.0.0.1",
                Port = 0,
                DataDir = server._dir.Path,
                Cursors = CursorsOptions.Default with { Partitions = 3 },
            };
            options = configure?.Invoke(options) ?? options;
            server.Server = await SluiceServer.StartAsync(options);

            // A restart binds the same port again, so the client's addresses stay valid.
            server._options = options.Listen is { } listen
                ? options with { Listen = listen with { Port = server.Server.Port } }
                : options with { Port = server.Server.Port };
            return server;
        }
        catch
        {
            server._dir.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts a server that advertises <paramref name="proxy"/>'s address and points the proxy at it,
    /// so every call the client makes (to seeds and to the leaders the metadata names) crosses the proxy.
    /// </summary>
    public static async Task<RealServer> StartBehindAsync(TcpProxy proxy, Func<ServerOptions, ServerOptions>? configure = null)
    {
        var server = await StartAsync(o => (configure?.Invoke(o) ?? o) with
        {
            Listen = new HostPort("127.0.0.1", 0),
            Host = "127.0.0.1",
            Port = proxy.Port,
        });
        proxy.Target = server.EndPoint;
        return server;
    }

    public Task StopAsync() => Server.DisposeAsync().AsTask();

    public async Task RestartAsync() => Server = await SluiceServer.StartAsync(_options);

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        _dir.Dispose();
    }
}
