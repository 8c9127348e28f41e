using Microsoft.Extensions.Logging;
using Sluice.Server.Configuration;

namespace Sluice.Server.Tests.Configuration;

public class SourcePrecedenceTests
{
    private static Dictionary<string, string?> Env(params (string Name, string Value)[] variables) =>
        variables.ToDictionary(v => v.Name, v => (string?)v.Value);

    [Fact]
    public void Sluice_environment_variables_override_the_file()
    {
        var options = Load.With("port: 1000\nlogging.level: info", Env(("SLUICE_PORT", "2000"), ("SLUICE_LOGGING_LEVEL", "debug"))).Options;
        Assert.Equal(2000, options.Port);
        Assert.Equal(LogLevel.Debug, options.Logging.Level);
    }

    [Fact]
    public void Liftbridge_environment_variables_work_in_both_spellings()
    {
        Assert.Equal("h1", Load.With(env: Env(("LIFTBRIDGE_HOST", "h1"))).Options.Host);
        Assert.Equal(LogLevel.Warning, Load.With(env: Env(("LIFTBRIDGE_LOGGING_LEVEL", "warn"))).Options.Logging.Level);
        Assert.Equal(LogLevel.Warning, Load.With(env: Env(("LIFTBRIDGE_LOGGING.LEVEL", "warn"))).Options.Logging.Level);
        Assert.Equal(3, Load.With(env: Env(("LIFTBRIDGE_CURSORS_STREAM_PARTITIONS", "3"))).Options.Cursors.Partitions);
    }

    [Fact]
    public void Environment_works_without_a_configuration_file() =>
        Assert.Equal(4000, Load.With(null, Env(("SLUICE_PORT", "4000"))).Options.Port);

    [Fact]
    public void Sluice_prefix_wins_over_Liftbridge_prefix() =>
        Assert.Equal(3000, Load.With(env: Env(("LIFTBRIDGE_PORT", "1"), ("SLUICE_PORT", "3000"))).Options.Port);

    [Fact]
    public void Flags_override_environment_and_file()
    {
        var flags = new ConfigFlags { Port = 5000, Level = "error", DataDir = "/srv/sluice", Namespace = "ns1" };
        var options = Load.With("port: 1000\ndata.dir: /file", Env(("SLUICE_PORT", "2000"), ("SLUICE_LOGGING_LEVEL", "debug")), flags).Options;
        Assert.Equal(5000, options.Port);
        Assert.Equal(LogLevel.Error, options.Logging.Level);
        Assert.Equal("/srv/sluice", options.DataDir);
        Assert.Equal("ns1", options.Clustering.Namespace);
    }

    [Fact]
    public void A_bad_environment_value_names_the_variable()
    {
        var error = Assert.Throws<ConfigurationException>(() => Load.With(env: Env(("SLUICE_PORT", "abc"))));
        Assert.Equal("port", error.Key);
        Assert.Contains("env SLUICE_PORT", error.Message);
    }

    [Fact]
    public void A_bad_flag_value_names_the_flag()
    {
        var error = Assert.Throws<ConfigurationException>(() => Load.With(flags: new ConfigFlags { Level = "loud" }));
        Assert.Equal("logging.level", error.Key);
        Assert.Contains("flag --level", error.Message);
    }

    [Fact]
    public void Nats_server_flags_split_on_commas_and_repeat()
    {
        var flags = new ConfigFlags { NatsServers = ["nats://a:4222,nats://b:4222", "nats://c:4222"] };
        Assert.Equal(["nats://a:4222", "nats://b:4222", "nats://c:4222"], Load.With(flags: flags).Options.Nats.Servers);
    }

    [Fact]
    public void An_empty_environment_variable_counts_as_unset() =>
        Assert.Equal(1000, Load.With("port: 1000", Env(("SLUICE_PORT", ""))).Options.Port);

    [Fact]
    public void Unrelated_environment_variables_are_left_alone() =>
        Assert.Equal(9292, Load.With(env: Env(("LIFTBRIDGE_ENCRYPTION_KEY", "k"), ("PATH", "/bin"), ("SLUICE_UNRELATED", "x"))).Options.Port);
}
