using System.CommandLine;
using Sluice.Server.Configuration;

namespace Sluice.Cli.Commands;

/// <summary>
/// Liftbridge's server flags (main.go), plus `--host`. Go's single-dash spellings (`-config`, `-nc`) are
/// rewritten before parsing by <see cref="GoStyleArguments"/>.
/// </summary>
internal sealed class ServeFlags
{
    public Option<string> Config { get; } = Flag<string>("config", "Load configuration from this YAML file", "c");
    public Option<string> ServerId { get; } = Flag<string>("server-id",
        "ID of this server (default: the id persisted in the data dir, else a random one)", "id");
    public Option<string> Namespace { get; } = Flag<string>("namespace",
        $"Cluster namespace (default: {ClusteringOptions.DefaultNamespace})", "ns");
    public Option<string[]> NatsServers { get; } = Flag<string[]>("nats-servers",
        "Attach to NATS at ADDR[,ADDR] (repeatable): streams capture what NATS publishers send to their subjects", "n");
    public Option<bool> EmbeddedNats { get; } = Flag<bool>("embedded-nats",
        "Run nats-server (from PATH) as a child process on 127.0.0.1 and attach to it", "e");
    public Option<string> EmbeddedNatsConfig { get; } = Flag<string>("embedded-nats-config",
        "Configuration file for the embedded nats-server (implies --embedded-nats)", "nc");
    public Option<string> DataDir { get; } = Flag<string>("data-dir",
        $"Store data in this directory (default: {ServerOptions.DefaultDataDir})", "d");
    public Option<int> Port { get; } = Flag<int>("port", $"Port to bind to; 0 picks a free one (default: {ServerOptions.DefaultPort})", "p");
    public Option<string> Host { get; } = Flag<string>("host", "Host to bind to and advertise (default: bind 0.0.0.0, advertise localhost)");
    public Option<string> TlsCert { get; } = Flag<string>("tls-cert", "Server certificate file (PEM)");
    public Option<string> TlsKey { get; } = Flag<string>("tls-key", "Private key file of the server certificate (PEM)");
    public Option<string> Level { get; } = Flag<string>("level", "Logging level: debug, info, warn or error (default: info)", "l");
    public Option<bool> RaftBootstrapSeed { get; } = Flag<bool>("raft-bootstrap-seed",
        "Bootstrap the cluster with this server as leader (accepted and ignored: single node)");
    public Option<string[]> RaftBootstrapPeers { get; } = Flag<string[]>("raft-bootstrap-peers",
        "Bootstrap the cluster with these peer ids (accepted and ignored: single node)");
    public Option<string[]> EtcdEndpoints { get; } = Flag<string[]>("etcd-endpoints",
        "Keep the metadata in etcd at URL[,URL] (repeatable) instead of the data dir: for brokers that form a cluster");
    public Option<string> MonitorListen { get; } = Flag<string>("monitor-listen",
        "Serve /metrics, /healthz, /readyz and JSON views on HOST:PORT (default: off)");

    private IEnumerable<Option> All =>
    [
        Config, ServerId, Namespace, NatsServers, EmbeddedNats, EmbeddedNatsConfig, DataDir, Port, Host,
        TlsCert, TlsKey, Level, RaftBootstrapSeed, RaftBootstrapPeers, EtcdEndpoints, MonitorListen,
    ];

    public void AddTo(Command command)
    {
        foreach (var option in All)
        {
            command.Options.Add(option);
        }
    }

    /// <summary>The flags that were given on the command line; absent ones stay null.</summary>
    public ConfigFlags Read(ParseResult parsed) => new()
    {
        ServerId = Given(parsed, ServerId),
        Namespace = Given(parsed, Namespace),
        NatsServers = Given(parsed, NatsServers),
        EmbeddedNats = IsGiven(parsed, EmbeddedNats) ? parsed.GetValue(EmbeddedNats) : null,
        EmbeddedNatsConfig = Given(parsed, EmbeddedNatsConfig),
        DataDir = Given(parsed, DataDir),
        Port = IsGiven(parsed, Port) ? parsed.GetValue(Port) : null,
        Host = Given(parsed, Host),
        TlsCert = Given(parsed, TlsCert),
        TlsKey = Given(parsed, TlsKey),
        Level = Given(parsed, Level),
        RaftBootstrapSeed = IsGiven(parsed, RaftBootstrapSeed) ? parsed.GetValue(RaftBootstrapSeed) : null,
        RaftBootstrapPeers = Given(parsed, RaftBootstrapPeers),
        EtcdEndpoints = Given(parsed, EtcdEndpoints),
        MonitorListen = Given(parsed, MonitorListen),
    };

    private static T? Given<T>(ParseResult parsed, Option<T> option)
        where T : class =>
        IsGiven(parsed, option) ? parsed.GetValue(option) : null;

    // Bool options report an implicit result even when absent; only an explicit one overrides the file.
    private static bool IsGiven(ParseResult parsed, Option option) => parsed.GetResult(option) is { Implicit: false };

    private static Option<T> Flag<T>(string name, string description, params string[] shortNames)
    {
        var aliases = shortNames.Select(n => (n.Length == 1 ? "-" : "--") + n).ToArray();
        var option = new Option<T>("--" + name, aliases) { Description = description };
        if (typeof(T) == typeof(string[]))
        {
            option.Arity = ArgumentArity.OneOrMore;
        }

        return option;
    }
}
