using Sluice.Server.Configuration;

namespace Sluice.Server.Tests.Configuration;

public class IgnoredSettingsTests
{
    [Fact]
    public void Keys_sluice_does_not_honour_are_reported_once_each()
    {
        var loaded = Load.With(
            """
            clustering.raft.bootstrap.seed: true
            clustering.replica.max.leader.timeout: 30s
            nats.embedded.config: nats.conf
            telemetry.enabled: true
            groups.consumer.timeout: 1m
            port: 9300
            """,
            new Dictionary<string, string?> { ["SLUICE_CLUSTERING_RAFT_BOOTSTRAP_SEED"] = "true" },
            new ConfigFlags { RaftBootstrapSeed = true });

        var keys = loaded.IgnoredSettings.Select(s => s.Key).ToList();
        Assert.Equal(
            ["clustering.raft.bootstrap.seed", "clustering.replica.max.leader.timeout", "telemetry.enabled"],
            keys);
        var seed = loaded.IgnoredSettings.Single(s => s.Key == "clustering.raft.bootstrap.seed");
        Assert.Equal("flag --raft-bootstrap-seed", seed.Source);
        Assert.Contains("ignored for now", seed.Message);
        Assert.Contains("etcd replaces Raft", seed.Message);
        Assert.Equal(9300, loaded.Options.Port);
    }

    [Fact]
    public void Honoured_keys_are_not_reported() =>
        Assert.Empty(Load.Yaml("port: 1\nlogging.level: debug\nstreams.retention.max.age: 1h\nstorage.durability: always\ngroups.consumer.timeout: 1m\ngroups.coordinator.timeout: 1m").IgnoredSettings);

    [Fact]
    public void Replication_keys_are_honoured_now() =>
        Assert.Empty(Load.Yaml("clustering.replica.max.lag.time: 30s\nclustering.replica.max.idle.wait: 1s\nclustering.replica.fetch.timeout: 2s").IgnoredSettings);

    [Fact]
    public void Nats_keys_are_honoured_now()
    {
        var loaded = Load.Yaml("nats.servers: nats://127.0.0.1:4222\nnats.user: u\nnats.password: p\nnats.embedded.config: nats.conf\nlogging.nats: true");
        Assert.Empty(loaded.IgnoredSettings);
        Assert.True(loaded.Options.Nats.Embedded);
        Assert.Equal("nats.conf", loaded.Options.Nats.EmbeddedConfig);
    }

    [Fact]
    public void An_ignored_key_with_a_bad_value_does_not_stop_startup()
    {
        var loaded = Load.Yaml("telemetry.enabled: perhaps\nclustering.replica.max.leader.timeout: soon");
        Assert.Equal(2, loaded.IgnoredSettings.Count);
        Assert.All(loaded.IgnoredSettings, s => Assert.Contains("not valid", s.Reason));
    }

    [Fact]
    public void Telemetry_is_accepted_and_listed_as_never_sent()
    {
        Assert.Contains("telemetry.enabled", ConfigLoader.IgnoredKeys.Keys);
        Assert.Contains("never sends telemetry", ConfigLoader.IgnoredKeys["telemetry.enabled"]);
    }
}
