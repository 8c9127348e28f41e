using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Sluice.Client.Grpc;
using Sluice.Client.Tests.Fakes;
using Sluice.Server.Grpc;
using Sluice.TestKit;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>The TLS options, connection options and logging.</summary>
public sealed class TlsAndLoggingTests
{
    [Theory]
    [InlineData(GrpcTransport.Native)]
    [InlineData(GrpcTransport.HttpClient)]
    public async Task Tls_with_a_ca_file_or_a_validation_callback_connects_and_without_trust_fails(GrpcTransport transport)
    {
        using var dir = new TempDirectory("sluice-tls");
        var (certPath, keyPath) = TestCertificate.CreateSelfSigned(dir);
        await using var cluster = await FakeCluster.StartAsync(tls: new GrpcServerTlsOptions { CertificatePemPath = certPath, KeyPemPath = keyPath });
        var options = FastOptions with { MaxConnectionsPerBroker = 3, KeepAliveTime = TimeSpan.FromSeconds(5), ConnectTimeout = TimeSpan.FromSeconds(3), Transport = transport };

        await using (var client = await SluiceClient.ConnectAsync(cluster.Addresses, options with { TlsCertificateFile = certPath }))
        {
            await client.CreateStreamAsync("foo", "foo");
            Assert.Equal(0, (await client.PublishAsync("foo", Bytes("secret")))!.Offset);
            Assert.Equal("secret", (await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest()).TakeAsync(1))[0].GetValueAsString());
        }

        var validated = 0;
        var callback = new GrpcClientTlsOptions { ServerCertificateValidation = (_, certificate, _, _) => Interlocked.Increment(ref validated) > 0 && certificate is not null };
        await using (var client = await SluiceClient.ConnectAsync(cluster.Addresses, options with { Tls = callback }))
        {
            Assert.NotNull(await client.PublishAsync("foo", Bytes("again")));
            Assert.True(validated > 0);
        }

        // Plain h2c against a TLS port, and TLS without trusting the self-signed certificate, both fail.
        await Assert.ThrowsAnyAsync<SluiceException>(() => SluiceClient.ConnectAsync(cluster.Addresses, options));
        await Assert.ThrowsAnyAsync<SluiceException>(() => SluiceClient.ConnectAsync(cluster.Addresses, options with { Tls = new GrpcClientTlsOptions() }));
    }

    [Fact]
    public async Task Resubscribing_is_logged_through_the_logger_factory()
    {
        var provider = new CapturingLoggerProvider();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(provider).SetMinimumLevel(LogLevel.Debug));
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster, FastOptions with { LoggerFactory = loggerFactory });
        await client.CreateStreamAsync("foo", "foo");
        await using var subscription = await client.SubscribeCoreAsync("foo");
        var read = subscription.TakeAsync(1);
        await cluster[0].StopAsync();
        await WaitUntilAsync(() => provider.Messages.Any(m => m.Contains("resubscribing from offset 0", StringComparison.Ordinal)), "the resubscription is logged");
        await cluster[0].StartAsync();
        // Nothing was delivered, so it resubscribes with its original start (new only): publish after that.
        await WaitUntilAsync(() => provider.Messages.Any(m => m.Contains("re-established", StringComparison.Ordinal)), "the recovery is logged");
        await client.PublishAsync("foo", Bytes("x"));
        Assert.Single(await read);
        Assert.Contains(provider.Messages, m => m.StartsWith("Information Connected to 1 broker(s)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_broker_outage_logs_the_reopened_publish_stream_once_not_once_per_attempt()
    {
        var provider = new CapturingLoggerProvider();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(provider).SetMinimumLevel(LogLevel.Debug));
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster, FastOptions with { LoggerFactory = loggerFactory });
        await client.CreateStreamAsync("foo", "foo");
        Assert.NotNull(await client.PublishAsync("foo", Bytes("before")));
        await cluster[0].StopAsync();
        for (var i = 0; i < 10; i++)
        {
            using var attempt = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
            await Assert.ThrowsAnyAsync<Exception>(() => client.PublishAsync("foo", Bytes("during"), cancellationToken: attempt.Token));
        }

        await cluster[0].StartAsync();
        SluiceAck? after = null;
        for (var deadline = DateTime.UtcNow.AddSeconds(20); after is null && DateTime.UtcNow < deadline;)
        {
            try
            {
                after = await client.PublishAsync("foo", Bytes("after"));
            }
            catch (SluiceException)
            {
                await Task.Delay(50);
            }
        }

        Assert.NotNull(after);

        var reopened = provider.Messages.Where(m => m.Contains("Reopened the publish stream", StringComparison.Ordinal)).ToList();
        Assert.True(reopened.Count(m => m.StartsWith("Information", StringComparison.Ordinal)) <= 1, string.Join(Environment.NewLine, reopened));
        Assert.NotEmpty(reopened);
    }

    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public ConcurrentQueue<string> Messages { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(Messages);

        public void Dispose()
        {
        }

        private sealed class Logger(ConcurrentQueue<string> messages) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                messages.Enqueue($"{logLevel} {formatter(state, exception)}");
        }
    }
}
