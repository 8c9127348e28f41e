namespace Sluice.Server.Configuration;

/// <summary>
/// The command-line flags of `sluice serve` (Liftbridge's flags plus `--host`). Null means "not given"; a given
/// flag overrides the file and the environment.
/// </summary>
public sealed record ConfigFlags
{
    public static ConfigFlags None { get; } = new();

    public string? ServerId { get; init; }
    public string? Namespace { get; init; }

    /// <summary>Each item may itself be comma-separated (`-n a,b -n c`).</summary>
    public IReadOnlyList<string>? NatsServers { get; init; }

    public bool? EmbeddedNats { get; init; }
    public string? EmbeddedNatsConfig { get; init; }
    public string? DataDir { get; init; }
    public int? Port { get; init; }
    public string? Host { get; init; }
    public string? TlsCert { get; init; }
    public string? TlsKey { get; init; }
    public string? Level { get; init; }
    public bool? RaftBootstrapSeed { get; init; }
    public IReadOnlyList<string>? RaftBootstrapPeers { get; init; }

    /// <summary>`--etcd-endpoints`: each item may itself be comma-separated.</summary>
    public IReadOnlyList<string>? EtcdEndpoints { get; init; }

    /// <summary>`--monitor-listen`: the monitoring port's host:port.</summary>
    public string? MonitorListen { get; init; }

    /// <summary>The flags that were given, as (key, flag name, value).</summary>
    internal IEnumerable<(string Key, string Flag, RawSetting Value)> Settings()
    {
        static RawSetting S(string flag, string value) => new("flag " + flag, value, null);
        static RawSetting L(string flag, IReadOnlyList<string> items) => new("flag " + flag, null, items);
        static string B(bool value) => value ? "true" : "false";

        if (ServerId is not null) { yield return ("clustering.server.id", "--server-id", S("--server-id", ServerId)); }
        if (Namespace is not null) { yield return ("clustering.namespace", "--namespace", S("--namespace", Namespace)); }
        if (NatsServers is not null) { yield return ("nats.servers", "--nats-servers", L("--nats-servers", NatsServers)); }
        if (EmbeddedNats is { } embedded) { yield return ("nats.embedded", "--embedded-nats", S("--embedded-nats", B(embedded))); }
        if (EmbeddedNatsConfig is not null) { yield return ("nats.embedded.config", "--embedded-nats-config", S("--embedded-nats-config", EmbeddedNatsConfig)); }
        if (DataDir is not null) { yield return ("data.dir", "--data-dir", S("--data-dir", DataDir)); }
        if (Port is { } port) { yield return ("port", "--port", S("--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture))); }
        if (Host is not null) { yield return ("host", "--host", S("--host", Host)); }
        if (TlsCert is not null) { yield return ("tls.cert", "--tls-cert", S("--tls-cert", TlsCert)); }
        if (TlsKey is not null) { yield return ("tls.key", "--tls-key", S("--tls-key", TlsKey)); }
        if (Level is not null) { yield return ("logging.level", "--level", S("--level", Level)); }
        if (RaftBootstrapSeed is { } seed) { yield return ("clustering.raft.bootstrap.seed", "--raft-bootstrap-seed", S("--raft-bootstrap-seed", B(seed))); }
        if (RaftBootstrapPeers is not null) { yield return ("clustering.raft.bootstrap.peers", "--raft-bootstrap-peers", L("--raft-bootstrap-peers", RaftBootstrapPeers)); }
        if (EtcdEndpoints is not null) { yield return ("clustering.etcd.endpoints", "--etcd-endpoints", L("--etcd-endpoints", EtcdEndpoints)); }
        if (MonitorListen is not null) { yield return ("monitor.listen", "--monitor-listen", S("--monitor-listen", MonitorListen)); }
    }
}
