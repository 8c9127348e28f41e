using Sluice.Protocol.Grpc;

namespace Sluice.Protocol.Tests.Grpc;

public class GrpcStatusMessageTests
{
    [Theory]
    [InlineData("plain ascii: ok/fine?", "plain ascii: ok/fine?")]
    [InlineData("100% sure", "100%25 sure")]
    [InlineData("héllo", "h%C3%A9llo")]
    [InlineData("line\nbreak", "line%0Abreak")]
    [InlineData("流", "%E6%B5%81")]
    public void Encoding_follows_the_grpc_spec(string message, string encoded)
    {
        Assert.Equal(encoded, GrpcStatusMessage.Encode(message));
        Assert.Equal(message, GrpcStatusMessage.Decode(encoded));
    }

    [Fact]
    public void Any_text_round_trips()
    {
        var random = new Random(7);
        for (var i = 0; i < 500; i++)
        {
            var chars = Enumerable.Range(0, random.Next(0, 40)).Select(_ => (char)random.Next(1, 0xD7FF)).ToArray();
            var text = new string(chars);
            var encoded = GrpcStatusMessage.Encode(text);
            Assert.All(encoded, c => Assert.InRange(c, (char)0x20, (char)0x7E));
            Assert.Equal(text, GrpcStatusMessage.Decode(encoded));
        }
    }

    [Fact]
    public void Malformed_escapes_are_kept_as_they_are()
    {
        Assert.Equal("50%", GrpcStatusMessage.Decode("50%"));
        Assert.Equal("%zz ok", GrpcStatusMessage.Decode("%zz ok"));
    }
}

public class GrpcTimeoutTests
{
    [Theory]
    [InlineData("1H", 3600_000)]
    [InlineData("2M", 120_000)]
    [InlineData("3S", 3000)]
    [InlineData("299m", 299)]
    [InlineData("5000u", 5)]
    [InlineData("7000000n", 7)]
    [InlineData("99999999S", 99_999_999_000)]
    public void Parses_every_unit(string header, long milliseconds)
    {
        Assert.True(GrpcTimeout.TryParse(header, out var timeout));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), timeout);
    }

    [Theory]
    [InlineData("")]
    [InlineData("S")]
    [InlineData("10")]
    [InlineData("10x")]
    [InlineData("-1S")]
    [InlineData("123456789S")]
    [InlineData("1.5S")]
    public void Rejects_malformed_values(string header) => Assert.False(GrpcTimeout.TryParse(header, out _));

    [Theory]
    [InlineData(0.0005)]
    [InlineData(1)]
    [InlineData(250)]
    [InlineData(30_000)]
    [InlineData(86_400_000)]
    [InlineData(1e13)]
    public void Formats_within_8_digits_and_never_shorter(double milliseconds)
    {
        var timeout = TimeSpan.FromMilliseconds(milliseconds);
        var header = GrpcTimeout.Format(timeout);
        Assert.InRange(header.Length, 2, 9);
        Assert.True(GrpcTimeout.TryParse(header, out var back));
        Assert.True(back >= timeout, $"{header} -> {back} < {timeout}");
    }

    [Fact]
    public void Formats_exact_milliseconds_exactly()
    {
        Assert.Equal("30000000n", GrpcTimeout.Format(TimeSpan.FromMilliseconds(30)));
        Assert.Equal("5000000u", GrpcTimeout.Format(TimeSpan.FromSeconds(5)));
    }
}
