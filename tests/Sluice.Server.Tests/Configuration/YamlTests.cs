using Microsoft.Extensions.Logging;
using Sluice.Server.Configuration;

namespace Sluice.Server.Tests.Configuration;

public class YamlTests
{
    [Fact]
    public void Flat_keys_load()
    {
        var options = Load.Options("""
            logging.level: debug
            streams.segment.max.bytes: 1048576
            clustering.namespace: tenant-a
            """);
        Assert.Equal(LogLevel.Debug, options.Logging.Level);
        Assert.Equal(1_048_576, options.Streams.SegmentMaxBytes);
        Assert.Equal("tenant-a", options.Clustering.Namespace);
    }

    [Fact]
    public void Nested_keys_load()
    {
        var options = Load.Options("""
            logging:
              level: warn
            streams:
              retention:
                max:
                  messages: 1000
            """);
        Assert.Equal(LogLevel.Warning, options.Logging.Level);
        Assert.Equal(1000, options.Streams.RetentionMaxMessages);
    }

    [Fact]
    public void Mixed_flat_and_nested_keys_load()
    {
        var options = Load.Options("""
            streams:
              retention.max.age: 24h
              compact.enabled: true
            cursors.stream:
              partitions: 3
            storage: {durability: interval, fsync.interval: 200ms}
            grpc: {transport: kestrel, max.connections: 500}
            """);
        Assert.Equal(TimeSpan.FromHours(24), options.Streams.RetentionMaxAge);
        Assert.Equal(Sluice.Server.Grpc.GrpcServerTransport.Kestrel, options.GrpcTransport);
        Assert.Equal(500, options.GrpcMaxConnections);
        Assert.True(options.Streams.CompactEnabled);
        Assert.Equal(3, options.Cursors.Partitions);
        Assert.Equal(DurabilityMode.Interval, options.Storage.Durability);
        Assert.Equal(TimeSpan.FromMilliseconds(200), options.Storage.FsyncInterval);
    }

    [Fact]
    public void A_real_Liftbridge_configuration_loads()
    {
        var loaded = Load.Yaml("""
            # A Liftbridge server configuration, as in Liftbridge's documentation.
            listen: 0.0.0.0:9293
            host: broker-1.example.com
            port: 9293
            data.dir: /var/lib/liftbridge
            metadata.cache.max.age: 5m
            logging:
              level: debug
              recovery: true
              raft: true
            batch.max.messages: 512
            batch.max.time: 10ms
            tls:
              key: /etc/liftbridge/server.key
              cert: /etc/liftbridge/server.crt
              client.auth.enabled: true
              client.auth.ca: /etc/liftbridge/ca.crt
              client.authz.enabled: false
            nats:
              servers:
                - nats://nats-1:4222
                - nats://nats-2:4222
              user: liftbridge
              password: secret
            streams:
              retention.max.age: 24h
              retention.max.bytes: 1073741824
              cleaner.interval: 1m
              segment.max.bytes: 67108864
              segment.max.age: 1h
              compact.enabled: true
              compact.max.goroutines: 4
              auto.pause.time: 10m
              auto.pause.disable.if.subscribers: true
              concurrency.control: false
              encryption: false
            clustering:
              server.id: broker-1
              namespace: prod
              raft.bootstrap.seed: true
              raft.snapshot.retain: 3
              replica.max.lag.time: 20s
              min.insync.replicas: 2
              replication.max.bytes: 2097152
            activity.stream:
              enabled: true
              publish.timeout: 10s
              publish.ack.policy: leader
            cursors.stream.partitions: 4
            cursors.stream.replication.factor: 3
            cursors.stream.auto.pause.time: 2m
            groups:
              consumer.timeout: 30s
              coordinator.timeout: 20s
            telemetry.enabled: false
            """);
        var o = loaded.Options;
        Assert.Equal(new HostPort("0.0.0.0", 9293), o.ListenEndpoint);
        Assert.Equal(new HostPort("broker-1.example.com", 9293), o.AdvertisedAddress);
        Assert.Equal("/var/lib/liftbridge", o.DataDir);
        Assert.Equal(TimeSpan.FromMinutes(5), o.Metadata.CacheMaxAge);
        Assert.Equal(LogLevel.Debug, o.Logging.Level);
        Assert.True(o.Logging.Recovery);
        Assert.Equal(512, o.Batch.MaxMessages);
        Assert.Equal(TimeSpan.FromMilliseconds(10), o.Batch.MaxTime);
        Assert.True(o.Tls.Enabled);
        Assert.True(o.Tls.ClientAuthEnabled);
        Assert.Equal("/etc/liftbridge/ca.crt", o.Tls.ClientAuthCa);
        Assert.Equal(["nats://nats-1:4222", "nats://nats-2:4222"], o.Nats.Servers);
        Assert.Equal("secret", o.Nats.Password);
        Assert.Equal(1_073_741_824, o.Streams.RetentionMaxBytes);
        Assert.Equal(TimeSpan.FromHours(1), o.Streams.EffectiveSegmentMaxAge);
        Assert.Equal(4, o.Streams.CompactMaxGoroutines);
        Assert.True(o.Streams.AutoPauseDisableIfSubscribers);
        Assert.Equal("broker-1", o.Clustering.ServerId);
        Assert.Equal("prod", o.Clustering.Namespace);
        Assert.True(o.Clustering.RaftBootstrapSeed);
        Assert.Equal(2, o.Clustering.MinInsyncReplicas);
        Assert.True(o.Activity.Enabled);
        Assert.Equal(PublishAckPolicy.Leader, o.Activity.PublishAckPolicy);
        Assert.Equal(4, o.Cursors.Partitions);
        Assert.Equal(3, o.Cursors.ReplicationFactor);
        Assert.Equal(TimeSpan.FromSeconds(30), o.Groups.ConsumerTimeout);
        Assert.Contains(loaded.IgnoredSettings, s => s.Key == "clustering.raft.bootstrap.seed");
        Assert.Contains(loaded.IgnoredSettings, s => s.Key == "telemetry.enabled");
        // Keys one server cannot act on are reported, not silently kept.
        Assert.Contains(loaded.IgnoredSettings, s => s.Key == "metadata.cache.max.age");
        Assert.Contains(loaded.IgnoredSettings, s => s.Key == "logging.recovery");
        Assert.Contains(loaded.IgnoredSettings, s => s.Key == "streams.compact.max.goroutines");
        Assert.DoesNotContain(loaded.IgnoredSettings, s => s.Key == "clustering.replication.max.bytes");
        Assert.Contains(loaded.Warnings, w => w.Contains("cursors.stream.replication.factor\" = 3", StringComparison.Ordinal));
        Assert.Contains(loaded.Warnings, w => w.Contains("clustering.min.insync.replicas\" = 2", StringComparison.Ordinal));
    }

    [Fact]
    public void Keys_are_case_insensitive_like_viper() =>
        Assert.Equal(LogLevel.Error, Load.Options("Logging.Level: ERROR").Logging.Level);

    [Fact]
    public void Empty_file_and_empty_sections_give_defaults()
    {
        Assert.Equal(9292, Load.Options("# nothing set\n").Port);
        Assert.Equal(9292, Load.Options("logging:\nport:\n").Port);
    }

    [Fact]
    public void A_list_may_also_be_comma_separated() =>
        Assert.Equal(["nats://a:4222", "nats://b:4222"], Load.Options("nats.servers: nats://a:4222, nats://b:4222").Nats.Servers);

    [Fact]
    public void The_same_key_twice_is_an_error()
    {
        var error = Load.Failure("logging.level: debug\nlogging:\n  level: info\n");
        Assert.Contains("\"logging.level\"", error.Message);
        Assert.Contains("twice", error.Message);
    }

    [Fact]
    public void Malformed_yaml_names_the_line()
    {
        var error = Load.Failure("logging:\n  level: [debug\n");
        Assert.Contains("YAML", error.Message);
        Assert.Contains("line", error.Message);
    }

    [Fact]
    public void A_file_that_is_not_a_mapping_is_rejected() =>
        Assert.Contains("mapping", Load.Failure("- port: 1\n").Message);

    [Fact]
    public void LoadFile_reads_a_file_and_reports_a_missing_one()
    {
        var path = Path.Combine(Path.GetTempPath(), $"sluice-config-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, "port: 7000\n");
        try
        {
            Assert.Equal(7000, ConfigLoader.LoadFile(path, Load.NoEnvironment, ConfigFlags.None).Options.Port);
        }
        finally
        {
            File.Delete(path);
        }

        var error = Assert.Throws<ConfigurationException>(() => ConfigLoader.LoadFile(path, Load.NoEnvironment, ConfigFlags.None));
        Assert.Contains(path, error.Message);
    }
}
