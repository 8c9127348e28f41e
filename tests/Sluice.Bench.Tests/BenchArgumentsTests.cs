using Sluice.Bench.Options;

namespace Sluice.Bench.Tests;

public class BenchArgumentsTests
{
    private static BenchOptions Parse(params string[] args) => BenchArguments.Parse(args) ?? throw new InvalidOperationException("help");

    private static string Error(params string[] args) => Assert.Throws<BenchUsageException>(() => BenchArguments.Parse(args)).Message;

    [Fact]
    public void Defaults_are_liftbridges()
    {
        var o = Parse("producer");
        Assert.Equal(BenchMode.Producer, o.Mode);
        Assert.Equal(BenchTarget.Sluice, o.Target);
        Assert.Equal(["127.0.0.1:9292"], o.ServersOrDefault);
        Assert.Equal("bench-stream", o.Stream);
        Assert.Equal("bench-subject", o.Subject);
        Assert.Equal(100_000, o.Messages);
        Assert.Equal(256, o.MessageSize);
        Assert.Equal(1, o.PubBatch);
        Assert.Equal(1, o.Concurrent);
        Assert.Equal(1, o.Connections);
        Assert.Equal(1, o.Partitions);
        Assert.Equal(BenchAckPolicy.Leader, o.AckPolicy);
        Assert.False(o.CreateStream);
        Assert.False(o.DeleteStream);
        Assert.Equal(BenchOutput.Text, o.Output);
    }

    [Fact]
    public void Long_names_short_aliases_and_equals_forms_are_accepted()
    {
        var o = Parse("producer", "-t", "jetstream", "-s", "nats://127.0.0.1:1, nats://127.0.0.1:2", "--stream=s1", "--subject", "sub.x",
            "-n", "1_000", "--ms", "64", "--pb=100", "-c", "4", "--connections", "2", "-p", "3", "--ack-policy", "ALL", "--create-stream", "--delete-stream",
            "-o", "json", "--timeout", "30", "--server-pid", "42", "--seed", "-7");
        Assert.Equal(BenchTarget.JetStream, o.Target);
        Assert.Equal(["nats://127.0.0.1:1", "nats://127.0.0.1:2"], o.ServersOrDefault);
        Assert.Equal("s1", o.Stream);
        Assert.Equal("sub.x", o.Subject);
        Assert.Equal(1000, o.Messages);
        Assert.Equal(64, o.MessageSize);
        Assert.Equal(100, o.PubBatch);
        Assert.Equal(4, o.Concurrent);
        Assert.Equal(2, o.Connections);
        Assert.Equal(3, o.Partitions);
        Assert.Equal(BenchAckPolicy.All, o.AckPolicy);
        Assert.True(o.CreateStream);
        Assert.True(o.DeleteStream);
        Assert.Equal(BenchOutput.Json, o.Output);
        Assert.Equal(TimeSpan.FromSeconds(30), o.Timeout);
        Assert.Equal([42], o.ServerPids);
        Assert.Equal(-7, o.Seed);
    }

    [Fact]
    public void Jetstream_defaults_to_the_local_nats_port_and_consumer_mode_reads_a_partition()
    {
        Assert.Equal(["nats://127.0.0.1:4222"], Parse("producer", "--target", "jetstream").ServersOrDefault);
        var consumer = Parse("consumer", "--expected", "500", "--partition", "2");
        Assert.Equal(BenchMode.Consumer, consumer.Mode);
        Assert.Equal(500, consumer.Messages);
        Assert.Equal(2, consumer.Partition);
    }

    [Fact]
    public void Cluster_flags_and_modes_are_parsed()
    {
        var o = Parse("producer", "--replication-factor", "3", "--min-isr", "2", "--create-stream");
        Assert.Equal(3, o.ReplicationFactor);
        Assert.Equal(2, o.MinIsr);
        Assert.Equal(1, Parse("producer").ReplicationFactor);
        Assert.Null(Parse("producer").MinIsr);
        Assert.Equal(-1, Parse("producer", "--replication-factor", "-1").ReplicationFactor);
        var pulse = Parse("pulse", "-s", "127.0.0.1:1,127.0.0.1:2", "--stream", "f", "--ack-policy", "all", "--gap-ms", "20");
        Assert.Equal(BenchMode.Pulse, pulse.Mode);
        Assert.Equal(20, pulse.GapMilliseconds);
        Assert.Equal(BenchAckPolicy.All, pulse.AckPolicy);
        var state = Parse("partition-state", "--stream", "f", "--partition", "1");
        Assert.Equal(BenchMode.PartitionState, state.Mode);
        Assert.Equal(1, state.Partition);
    }

    [Fact]
    public void Group_mode_takes_its_members_and_fetch_interval_and_needs_a_sluice_server()
    {
        var group = Parse("group", "-s", "127.0.0.1:1", "--stream", "g", "-n", "1000", "-c", "4", "--fetch-interval-ms", "1000");
        Assert.Equal((BenchMode.Group, 4, TimeSpan.FromSeconds(1)), (group.Mode, group.Concurrent, group.FetchInterval));
        Assert.Null(Parse("group").FetchInterval);
        Assert.Contains("group needs a Sluice server", Error("group", "--in-process"), StringComparison.Ordinal);
        Assert.Contains("group needs a Sluice server", Error("group", "-t", "jetstream"), StringComparison.Ordinal);
    }

    [Fact]
    public void Server_pids_are_a_list_and_may_repeat_the_flag()
    {
        Assert.Empty(Parse("producer").ServerPids);
        Assert.Equal([11, 12, 13], Parse("producer", "--server-pid", "11, 12,13").ServerPids);
        Assert.Equal([11, 12, 13], Parse("producer", "--server-pid", "11", "--server-pid=12,13").ServerPids);
    }

    [Fact]
    public void Jetstream_streams_take_a_replication_factor()
    {
        var o = Parse("producer", "-t", "jetstream", "--replication-factor", "3", "--ack-policy", "all", "--create-stream");
        Assert.Equal(3, o.ReplicationFactor);
        Assert.Equal(3, Sluice.Bench.Targets.JetStreamTarget.StreamConfigFor(o, 0).NumReplicas);
        Assert.Equal(1, Sluice.Bench.Targets.JetStreamTarget.StreamConfigFor(Parse("producer", "-t", "jetstream"), 0).NumReplicas);
    }

    [Fact]
    public void Help_returns_null()
    {
        Assert.Null(BenchArguments.Parse(["--help"]));
        Assert.Null(BenchArguments.Parse(["producer", "-h"]));
    }

    [Theory]
    [InlineData("missing mode", new string[0])]
    [InlineData("unknown mode 'publish'", new[] { "publish" })]
    [InlineData("unknown flag '--bogus'", new[] { "producer", "--bogus" })]
    [InlineData("--messages needs a value", new[] { "producer", "--messages" })]
    [InlineData("-n: 'ten' is not a whole number", new[] { "producer", "-n", "ten" })]
    [InlineData("-n: 0 is outside 1..100000000", new[] { "producer", "-n", "0" })]
    [InlineData("--pub-batch: 0 is outside", new[] { "producer", "--pub-batch", "0" })]
    [InlineData("-c: -1 is outside", new[] { "producer", "-c", "-1" })]
    [InlineData("--ms: -1 is outside", new[] { "producer", "--ms", "-1" })]
    [InlineData("--ack-policy: 'some' is not one of none, leader, all", new[] { "producer", "--ack-policy", "some" })]
    [InlineData("--target: 'kafka' is not one of", new[] { "producer", "--target", "kafka" })]
    [InlineData("-o: 'xml' is not one of text, json", new[] { "producer", "-o", "xml" })]
    [InlineData("--create-stream takes no value", new[] { "producer", "--create-stream=yes" })]
    [InlineData("--stream: '' must be non-empty", new[] { "producer", "--stream", "" })]
    [InlineData("must be at least --concurrent", new[] { "producer", "-n", "3", "-c", "4" })]
    [InlineData("apply to producer mode only", new[] { "consumer", "-c", "2" })]
    [InlineData("apply to producer mode only", new[] { "consumer", "--connections", "2" })]
    [InlineData("--connections: 0 is outside", new[] { "producer", "--connections", "0" })]
    [InlineData("--connections (5) cannot exceed --concurrent (4)", new[] { "producer", "-c", "4", "--connections", "5" })]
    [InlineData("--create-stream applies to producer mode only", new[] { "consumer", "--create-stream" })]
    [InlineData("--partition applies to consumer mode only", new[] { "producer", "--partition", "1" })]
    [InlineData("a JetStream stream name cannot contain", new[] { "producer", "-t", "jetstream", "--stream", "a.b" })]
    [InlineData("--in-process runs a Sluice server here", new[] { "producer", "--in-process", "-t", "jetstream" })]
    [InlineData("--in-process runs a Sluice server here", new[] { "producer", "--in-process", "-s", "127.0.0.1:9292" })]
    [InlineData("--replication-factor cannot be 0", new[] { "producer", "--replication-factor", "0" })]
    [InlineData("--min-isr: 0 is outside", new[] { "producer", "--min-isr", "0" })]
    [InlineData("--min-isr does not apply to --target jetstream", new[] { "producer", "-t", "jetstream", "--replication-factor", "3", "--min-isr", "2" })]
    [InlineData("a JetStream stream has 1 to 5 replicas", new[] { "producer", "-t", "jetstream", "--replication-factor", "7" })]
    [InlineData("a JetStream stream has 1 to 5 replicas", new[] { "producer", "-t", "jetstream", "--replication-factor", "-1" })]
    [InlineData("--server-pid: 'x' is not a whole number", new[] { "producer", "--server-pid", "1,x" })]
    [InlineData("--server-pid needs at least one pid", new[] { "producer", "--server-pid", "," })]
    [InlineData("--in-process runs a Sluice server here", new[] { "producer", "--in-process", "--server-pid", "1" })]
    [InlineData("partition-state and pulse need a Sluice cluster", new[] { "pulse", "-t", "jetstream" })]
    public void Bad_command_lines_say_what_is_wrong(string expected, string[] args)
    {
        Assert.Contains(expected, Error(args), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_command_exits_2_with_usage_on_a_bad_flag_and_0_on_help()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        Assert.Equal(2, await Program.RunAsync(["producer", "--nope"], output, error, CancellationToken.None));
        Assert.Contains("unknown flag '--nope'", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("usage: sluice-bench", error.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, await Program.RunAsync(["--help"], output, error, CancellationToken.None));
        Assert.Contains("--pub-batch", output.ToString(), StringComparison.Ordinal);
    }
}
