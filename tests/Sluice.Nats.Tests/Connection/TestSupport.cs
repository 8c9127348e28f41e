using System.Diagnostics;
using Sluice.TestKit;

namespace Sluice.Nats.Tests.Connection;

/// <summary>One nats-server shared by the tests of a class.</summary>
public sealed class NatsServerFixture : IAsyncLifetime
{
    public NatsServerProcess Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await NatsServerProcess.StartAsync(new NatsServerProcessOptions { JetStream = true });

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

internal static class Wait
{
    /// <summary>Generous: the machine is shared and slow; a passing test never waits this long.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    public static NatsOptions Options(string url) => NatsOptions.Default with
    {
        Servers = [url],
        ConnectTimeout = TimeSpan.FromSeconds(10), // the machine is shared; tests that time connects out set their own
        ReconnectWait = TimeSpan.FromMilliseconds(50),
        ReconnectWaitMax = TimeSpan.FromMilliseconds(250),
        ReconnectJitter = TimeSpan.FromMilliseconds(20),
        MaxReconnectAttempts = -1,
    };

    public static async Task UntilAsync(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Timeout)
            {
                Assert.Fail($"Timed out waiting until {what}.");
            }

            // Re-check pace only; the condition is what the test waits for.
            await Task.Delay(10);
        }
    }

    public static async Task<List<NatsMsg>> ReadAsync(NatsSubscription sub, int count)
    {
        using var cts = new CancellationTokenSource(Timeout);
        var result = new List<NatsMsg>();
        while (result.Count < count)
        {
            result.Add(await sub.Msgs.ReadAsync(cts.Token));
        }

        return result;
    }
}
