using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Server.Hosting;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Configuration;

public class ServerIdentityTests
{
    [Fact]
    public void New_ids_are_22_base62_characters_and_differ()
    {
        var a = ServerIdentity.NewId();
        Assert.Equal(22, a.Length);
        Assert.All(a, c => Assert.True(char.IsAsciiLetterOrDigit(c)));
        Assert.NotEqual(a, ServerIdentity.NewId());
    }

    [Fact]
    public void A_generated_id_is_persisted_and_reused()
    {
        using var dir = new TempDirectory();
        var first = ServerIdentity.Resolve(dir.Path, null, NullLogger.Instance);
        Assert.Equal(first, File.ReadAllText(dir.Sub(ServerIdentity.FileName)).Trim());
        Assert.Equal(first, ServerIdentity.Resolve(dir.Path, null, NullLogger.Instance));
    }

    [Fact]
    public void A_configured_id_wins_over_the_persisted_one_and_replaces_it()
    {
        using var dir = new TempDirectory();
        var generated = ServerIdentity.Resolve(dir.Path, null, NullLogger.Instance);
        Assert.Equal("broker-7", ServerIdentity.Resolve(dir.Path, "broker-7", NullLogger.Instance));
        Assert.Equal("broker-7", ServerIdentity.Resolve(dir.Path, null, NullLogger.Instance));
        Assert.NotEqual("broker-7", generated);
    }
}
