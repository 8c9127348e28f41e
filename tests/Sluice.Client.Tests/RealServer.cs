using System.Net;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;
using Sluice.TestKit;

namespace Sluice.Client.Tests;

/// <summary>
/// A real Sluice server in-process (port 0, temp data directory), restartable on the same port.
/// With <see cref="LiftbridgeProcess.BinaryVariable"/> set (scripts/client-vs-liftbridge.sh) it is a real
/// Liftbridge node instead, so the same scenarios check the client against the server it is compatible with.
/// </summary>
internal sealed class RealServer : IAsyncDisposable
{
    private readonly TempDirectory _dir = new("sluice-client");
    private ServerOptions _options = null!;
    private SluiceServer? _server;
    private LiftbridgeProcess? _liftbridge;

    /// <summary>The in-process Sluice server; a scenario that uses it is Sluice-only.</summary>
    public SluiceServer Server => _server ?? throw new InvalidOperationException("This scenario reaches into the Sluice server; mark it [SluiceOnly(reason)].");

    private int Port => _liftbridge?.ListenPort ?? Server.Port;

    /// <summary>The bound address (<c>127.0.0.1:port</c>), which is also the advertised one unless the options say otherwise.</summary>
    public string Address => $"127.0.0.1:{Port}";

    /// <summary>The bound endpoint, e.g. for a <see cref="TcpProxy"/> to forward to.</summary>
    public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);

    /// <summary>Starts a server; <paramref name="configure"/> adjusts the test defaults (TLS, NATS, limits...).</summary>
    public static Task<RealServer> StartAsync(Func<ServerOptions, ServerOptions>? configure = null) => StartAsync(configure, advertisedPort: null);

    private static async Task<RealServer> StartAsync(Func<ServerOptions, ServerOptions>? configure, int? advertisedPort)
    {
        var server = new RealServer();
        try
        {
            var defaults = ServerOptions.Default with
            {
                Host = "127.0.0.1",
                Port = 0,
                DataDir = server._dir.Path,
                Cursors = CursorsOptions.Default with { Partitions = 3 },
            };
            var options = configure?.Invoke(defaults) ?? defaults;
            if (LiftbridgeProcess.Binary is { } binary)
            {
                server._liftbridge = await StartLiftbridgeAsync(binary, defaults, options, advertisedPort);
                return server;
            }

            server._server = await SluiceServer.StartAsync(options);

            // A restart binds the same port again, so the client's addresses stay valid.
            server._options = options.Listen is { } listen
                ? options with { Listen = listen with { Port = server._server.Port } }
                : options with { Port = server._server.Port };
            return server;
        }
        catch
        {
            server._dir.Dispose();
            throw;
        }
    }

    /// <summary>Liftbridge gets the options that have a Liftbridge key; any other change is a Sluice-only scenario.</summary>
    private static Task<LiftbridgeProcess> StartLiftbridgeAsync(string binary, ServerOptions defaults, ServerOptions options, int? advertisedPort)
    {
        var translatable = defaults with
        {
            Cursors = options.Cursors,
            Clustering = defaults.Clustering with { ReplicationMaxBytes = options.Clustering.ReplicationMaxBytes },
            Listen = options.Listen,
            Port = options.Port,
        };
        if (translatable != options)
        {
            throw new InvalidOperationException("This scenario sets server options the Liftbridge run does not translate; mark it [SluiceOnly(reason)].");
        }

        var maxBytes = options.Clustering.ReplicationMaxBytes == defaults.Clustering.ReplicationMaxBytes ? (long?)null : options.Clustering.ReplicationMaxBytes;
        return LiftbridgeProcess.StartAsync(binary, options.Cursors.Partitions, maxBytes, advertisedPort);
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
        }, advertisedPort: proxy.Port);
        proxy.Target = server.EndPoint;
        return server;
    }

    public Task StopAsync() => _liftbridge?.StopAsync() ?? Server.DisposeAsync().AsTask();

    public async Task RestartAsync()
    {
        if (_liftbridge is not null)
        {
            await _liftbridge.RestartAsync();
            return;
        }

        _server = await SluiceServer.StartAsync(_options);
    }

    public async ValueTask DisposeAsync()
    {
        if (_liftbridge is not null)
        {
            await _liftbridge.DisposeAsync();
        }
        else if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _dir.Dispose();
    }
}
