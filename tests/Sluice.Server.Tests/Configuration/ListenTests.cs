using Sluice.Server.Configuration;

namespace Sluice.Server.Tests.Configuration;

public class ListenTests
{
    [Theory]
    [InlineData("port: 9000", "0.0.0.0:9000", "localhost:9000")]
    [InlineData("host: 10.0.0.5\nport: 9000", "10.0.0.5:9000", "10.0.0.5:9000")]
    [InlineData("listen: 127.0.0.1:7000\nhost: 10.0.0.5\nport: 9000", "127.0.0.1:7000", "10.0.0.5:9000")]
    [InlineData("listen: 127.0.0.1:7000\nport: 9000", "127.0.0.1:7000", "127.0.0.1:7000")]
    [InlineData("listen: \"[::1]:7000\"", "[::1]:7000", "[::1]:7000")]
    [InlineData("listen: 7000", "0.0.0.0:7000", "0.0.0.0:7000")]
    [InlineData("listen: \":7000\"", "0.0.0.0:7000", "0.0.0.0:7000")]
    [InlineData("port: 0", "0.0.0.0:0", "localhost:0")]
    public void Listen_beats_host_and_port_which_beat_all_interfaces(string yaml, string bind, string advertised)
    {
        var options = Load.Options(yaml);
        Assert.Equal(bind, options.ListenEndpoint.ToString());
        Assert.Equal(advertised, options.AdvertisedAddress.ToString());
    }

    [Fact]
    public void The_host_flag_sets_the_bind_and_advertised_host()
    {
        var options = Load.With(flags: new ConfigFlags { Host = "127.0.0.1", Port = 0 }).Options;
        Assert.Equal(new HostPort("127.0.0.1", 0), options.ListenEndpoint);
        Assert.Equal(new HostPort("127.0.0.1", 0), options.AdvertisedAddress);
    }
}

public class MonitorListenTests
{
    [Fact]
    public void The_monitoring_port_is_off_unless_monitor_listen_is_set()
    {
        Assert.Null(Load.Options("port: 9000").Monitor.Listen);
        Assert.Equal(1000, Load.Options("port: 9000").Monitor.PartitionSeriesMax);
    }

    [Fact]
    public void Monitor_listen_and_the_partition_series_cap_come_from_yaml_and_the_flag_wins()
    {
        var yaml = "monitor:\n  listen: 127.0.0.1:9293\n  partition.series.max: 50\n";
        var options = Load.Options(yaml);
        Assert.Equal(new HostPort("127.0.0.1", 9293), options.Monitor.Listen);
        Assert.Equal(50, options.Monitor.PartitionSeriesMax);
        Assert.Equal(new HostPort("0.0.0.0", 9400), Load.With(yaml, flags: new ConfigFlags { MonitorListen = "0.0.0.0:9400" }).Options.Monitor.Listen);
    }

    [Fact]
    public void A_monitor_listen_that_is_not_host_and_port_is_refused()
    {
        var error = Load.Failure("monitor.listen: nowhere");
        Assert.Contains("monitor.listen", error.Message, StringComparison.Ordinal);
    }
}

public class MonitorOtlpSettingsTests
{
    [Fact]
    public void Otlp_export_is_off_by_default_and_set_by_endpoint_protocol_and_interval()
    {
        Assert.Null(Load.Options("port: 9000").Monitor.OtlpEndpoint);
        var options = Load.Options("monitor:\n  otlp.endpoint: http://127.0.0.1:4318\n  otlp.protocol: http/protobuf\n  otlp.interval: 15s\n").Monitor;
        Assert.Equal(new Uri("http://127.0.0.1:4318"), options.OtlpEndpoint);
        Assert.Equal(OtlpProtocol.HttpProtobuf, options.OtlpProtocol);
        Assert.Equal(TimeSpan.FromSeconds(15), options.OtlpInterval);
    }

    [Fact]
    public void Trace_export_is_off_by_default_and_set_with_a_sample_ratio()
    {
        var defaults = Load.Options("monitor.otlp.endpoint: http://127.0.0.1:4317").Monitor;
        Assert.False(defaults.OtlpTraces);
        Assert.Equal(0.01, defaults.TraceSampleRatio);
        var options = Load.Options("monitor:\n  otlp:\n    endpoint: http://127.0.0.1:4317\n    traces:\n      enabled: true\n      sample.ratio: 0.25\n").Monitor;
        Assert.True(options.OtlpTraces);
        Assert.Equal(0.25, options.TraceSampleRatio);
    }

    [Fact]
    public void Traces_without_a_collector_are_refused()
    {
        var error = Load.Failure("monitor.otlp.traces.enabled: true");
        Assert.Contains("monitor.otlp.traces.enabled", error.Message, StringComparison.Ordinal);
        Assert.Contains("monitor.otlp.endpoint", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("monitor.otlp.endpoint: collector:4317")]
    [InlineData("monitor.otlp.protocol: http/json")]
    [InlineData("monitor.otlp.interval: 0s")]
    [InlineData("monitor.otlp.traces.sample.ratio: 1.5")]
    [InlineData("monitor.otlp.traces.sample.ratio: some")]
    [InlineData("monitor.otlp.traces.enabled: maybe")]
    public void A_bad_otlp_setting_is_refused(string yaml) =>
        Assert.Contains("monitor.otlp", Load.Failure(yaml).Message, StringComparison.Ordinal);
}
