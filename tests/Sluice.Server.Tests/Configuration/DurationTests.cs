using Sluice.Server.Configuration;

namespace Sluice.Server.Tests.Configuration;

public class DurationTests
{
    public static TheoryData<string, long> GoForms => new()
    {
        { "0", 0 },
        { "0s", 0 },
        { "1ns", 1 },
        { "250us", 250_000 },
        { "250µs", 250_000 },
        { "100ms", 100_000_000 },
        { "1.5s", 1_500_000_000 },
        { "5m", 300_000_000_000 },
        { "168h", 604_800_000_000_000 },
        { "1h30m", 5_400_000_000_000 },
        { "2h45m30.5s", 9_930_500_000_000 },
        { ".5s", 500_000_000 },
        { "-1m", -60_000_000_000 },
    };

    [Theory]
    [MemberData(nameof(GoForms))]
    public void Go_durations_parse_like_time_ParseDuration(string text, long nanoseconds)
    {
        Assert.True(GoDuration.TryParseNanoseconds(text, out var parsed));
        Assert.Equal(nanoseconds, parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData("5")]
    [InlineData("5 minutes")]
    [InlineData("5d")]
    [InlineData("m")]
    [InlineData("1..5s")]
    [InlineData("9999999999h")]
    public void Non_durations_are_rejected(string text) => Assert.False(GoDuration.TryParseNanoseconds(text, out _));

    [Theory]
    [InlineData("streams.retention.max.age: 5m", 300)]
    [InlineData("streams.retention.max.age: 1h30m", 5400)]
    [InlineData("streams.retention.max.age: \"168h\"", 604800)]
    [InlineData("streams.retention.max.age: 0", 0)]
    public void Duration_settings_accept_Go_strings(string yaml, int seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), Load.Options(yaml).Streams.RetentionMaxAge);

    [Fact]
    public void One_nanosecond_stays_non_zero()
    {
        var age = Load.Options("streams.retention.max.age: 1ns").Streams.RetentionMaxAge;
        Assert.Equal(TimeSpan.FromTicks(1), age);
    }

    [Fact]
    public void A_plain_integer_is_nanoseconds_like_Liftbridge_and_warns()
    {
        var loaded = Load.Yaml("batch.max.time: 1000000");
        Assert.Equal(TimeSpan.FromMilliseconds(1), loaded.Options.Batch.MaxTime);
        var warning = Assert.Single(loaded.Warnings);
        Assert.Contains("batch.max.time", warning);
        Assert.Contains("nanoseconds", warning);
    }

    [Fact]
    public void Segment_age_below_a_second_is_raised_to_one_second()
    {
        var loaded = Load.Yaml("streams.segment.max.age: 100ms");
        Assert.Equal(TimeSpan.FromSeconds(1), loaded.Options.Streams.EffectiveSegmentMaxAge);
        Assert.Contains(loaded.Warnings, w => w.Contains("streams.segment.max.age", StringComparison.Ordinal));
    }

    [Fact]
    public void Segment_age_follows_retention_age_when_not_given()
    {
        Assert.Equal(TimeSpan.FromHours(2), Load.Options("streams.retention.max.age: 2h").Streams.EffectiveSegmentMaxAge);
        Assert.Equal(TimeSpan.FromMinutes(10),
            Load.Options("streams: {retention.max.age: 2h, segment.max.age: 10m}").Streams.EffectiveSegmentMaxAge);
    }

    [Theory]
    [InlineData(0, "0s")]
    [InlineData(1_500, "1.5s")]
    [InlineData(100, "100ms")]
    [InlineData(5_400_000, "1h30m0s")]
    public void Format_writes_Go_style(int milliseconds, string expected) =>
        Assert.Equal(expected, GoDuration.Format(TimeSpan.FromMilliseconds(milliseconds)));
}
