namespace Sluice.Server.Tests.Configuration;

public class ErrorTests
{
    [Theory]
    [InlineData("loging.level: debug", "loging.level", "logging.level")]
    [InlineData("streams:\n  retention.max.agee: 1h", "streams.retention.max.agee", "streams.retention.max.age")]
    [InlineData("log.level: debug", "log.level", "logging.level")]
    [InlineData("tls.client.auth: true", "tls.client.auth", "tls.client.auth.enabled")]
    [InlineData("cursors_stream_partitions: 1", "cursors_stream_partitions", "cursors.stream.partitions")]
    public void A_misspelt_key_is_named_with_a_suggestion(string yaml, string key, string suggestion)
    {
        var error = Load.Failure(yaml);
        Assert.StartsWith($"Unknown configuration setting \"{key}\"", error.Message);
        Assert.Contains($"did you mean \"{suggestion}\"?", error.Message);
        Assert.Equal(key, error.Key);
    }

    [Fact]
    public void A_key_far_from_any_known_one_gets_no_suggestion()
    {
        var error = Load.Failure("completely.unrelated.thing: 1");
        Assert.Equal("Unknown configuration setting \"completely.unrelated.thing\" (config file test.yaml)", error.Message);
    }

    [Theory]
    [InlineData("port: abc", "port", "abc", "port number")]
    [InlineData("port: 70000", "port", "70000", "port number")]
    [InlineData("streams.retention.max.bytes: -1", "streams.retention.max.bytes", "-1", "integer >= 0")]
    [InlineData("streams.segment.max.bytes: -5", "streams.segment.max.bytes", "-5", "integer >= 1")]
    [InlineData("logging.level: verbose", "logging.level", "verbose", "debug, info, warn, error")]
    [InlineData("streams.retention.max.age: 5 minutes", "streams.retention.max.age", "5 minutes", "duration")]
    [InlineData("streams.retention.max.age: 5d", "streams.retention.max.age", "5d", "duration")]
    [InlineData("streams.retention.max.age: -5m", "streams.retention.max.age", "-5m", "duration")]
    [InlineData("storage.durability: sometimes", "storage.durability", "sometimes", "never, interval, always")]
    [InlineData("storage.fsync.interval: 0s", "storage.fsync.interval", "0s", "greater than zero")]
    [InlineData("grpc.max.connections: 0", "grpc.max.connections", "0", "an integer from 1 to 1000000")]
    [InlineData("streams.compact.enabled: maybe", "streams.compact.enabled", "maybe", "true or false")]
    [InlineData("activity.stream.publish.ack.policy: some", "activity.stream.publish.ack.policy", "some", "none, leader, all")]
    [InlineData("cursors.stream.replication.factor: 0", "cursors.stream.replication.factor", "0", "-1")]
    [InlineData("listen: nowhere", "listen", "nowhere", "host:port")]
    [InlineData("clustering.server.id: \"a b\"", "clustering.server.id", "a b", "without spaces")]
    [InlineData("port: [1, 2]", "port", "[1, 2]", "single value")]
    public void A_bad_value_names_the_key_the_value_and_what_is_expected(string yaml, string key, string value, string expected)
    {
        var error = Load.Failure(yaml);
        Assert.Equal(key, error.Key);
        Assert.Contains($"\"{key}\"", error.Message);
        Assert.Contains($"\"{value}\"", error.Message);
        Assert.Contains(expected, error.Message);
        Assert.Contains("test.yaml", error.Message);
    }

    [Fact]
    public void A_mapping_where_a_value_belongs_is_rejected()
    {
        var error = Load.Failure("port:\n  number: 1\n");
        Assert.Equal("port", error.Key);
    }

    [Fact]
    public void Tls_needs_both_certificate_and_key()
    {
        Assert.Equal("tls.key", Load.Failure("tls.cert: server.crt").Key);
        Assert.Equal("tls.cert", Load.Failure("tls.key: server.key").Key);
    }

    [Fact]
    public void Client_authentication_without_tls_is_rejected() =>
        Assert.Equal("tls.client.auth.enabled", Load.Failure("tls.client.auth.enabled: true").Key);
}
