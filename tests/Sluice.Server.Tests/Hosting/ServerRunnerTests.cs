using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Sluice.Client.Grpc;
using Sluice.Protocol.Api;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Hosting;

public class ServerRunnerTests
{
    [Fact]
    public async Task Serves_the_broker_on_the_bound_port_and_stops_on_cancellation()
    {
        using var dir = new TempDirectory("sluice-runner");
        var sink = new LineSink();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(sink));
        using var stop = new CancellationTokenSource();
        var options = ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dir.Path };
        var run = ServerRunner.RunAsync(options, loggers, stop.Token);

        var line = await sink.WaitForAsync("serving proto.API on 127.0.0.1:", TimeSpan.FromSeconds(30));
        var port = int.Parse(line[(line.LastIndexOf(':') + 1)..].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);

        using (var channel = new GrpcChannel(new Uri($"http://127.0.0.1:{port}")))
        {
            await channel.UnaryAsync("/proto.API/CreateStream", new CreateStreamRequest { Name = "s", Subject = "s" }, CreateStreamResponse.Parser, TimeSpan.FromSeconds(10));
            var metadata = await channel.UnaryAsync("/proto.API/FetchMetadata", new FetchMetadataRequest(), FetchMetadataResponse.Parser, TimeSpan.FromSeconds(10));
            Assert.Equal(port, Assert.Single(metadata.Brokers).Port);
            Assert.Equal("s", Assert.Single(metadata.StreamMetadata).Name);
        }

        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(Directory.Exists(Path.Combine(dir.Path, "streams", "s", "0")));
    }

    [Fact]
    public async Task A_port_in_use_fails_with_exit_code_1_and_one_line()
    {
        using var occupier = new TcpListener(IPAddress.Loopback, 0);
        occupier.Start();
        var port = ((IPEndPoint)occupier.LocalEndpoint).Port;
        var sink = new LineSink();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(sink));

        using var dir = new TempDirectory("sluice-runner");
        var code = await ServerRunner.RunAsync(ServerOptions.Default with { Host = "127.0.0.1", Port = port, DataDir = dir.Path }, loggers, CancellationToken.None)
            .WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(1, code);
        Assert.Contains(sink.Lines, l => l.Contains($"Cannot listen on 127.0.0.1:{port}", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(Sluice.Server.Grpc.GrpcServerTransport.Native)]
    [InlineData(Sluice.Server.Grpc.GrpcServerTransport.Kestrel)]
    public async Task A_second_server_on_the_port_of_a_running_one_exits_1_with_address_in_use(Sluice.Server.Grpc.GrpcServerTransport transport)
    {
        using var firstDir = new TempDirectory("sluice-runner");
        using var secondDir = new TempDirectory("sluice-runner");
        await using var first = await SluiceServer.StartAsync(ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = firstDir.Path, GrpcTransport = transport });
        var sink = new LineSink();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(sink));
        using var stop = new CancellationTokenSource();

        var second = ServerRunner.RunAsync(ServerOptions.Default with { Host = "127.0.0.1", Port = first.Port, DataDir = secondDir.Path, GrpcTransport = transport }, loggers, stop.Token);
        var finished = await Task.WhenAny(second, sink.WaitForAsync("serving proto.API", TimeSpan.FromSeconds(30)));
        if (finished != second)
        {
            await stop.CancelAsync(); // it bound the port beside the first: stop it before failing
            await second.WaitAsync(TimeSpan.FromSeconds(30));
        }

        Assert.Equal(1, await second.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains(sink.Lines, l => l.Contains($"Cannot listen on 127.0.0.1:{first.Port}", StringComparison.Ordinal) && l.Contains("address already in use", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>Every formatted log line, exception messages included.</summary>
    internal sealed class LineSink : ILoggerProvider, ILogger
    {
        private readonly List<string> _lines = [];
        private readonly SemaphoreSlim _added = new(0);

        public IReadOnlyList<string> Lines
        {
            get
            {
                lock (_lines)
                {
                    return [.. _lines];
                }
            }
        }

        public async Task<string> WaitForAsync(string text, TimeSpan timeout)
        {
            using var deadline = new CancellationTokenSource(timeout);
            while (true)
            {
                var match = Lines.FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal));
                if (match is not null)
                {
                    return match;
                }

                await _added.WaitAsync(deadline.Token);
            }
        }

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_lines)
            {
                _lines.Add(formatter(state, exception));
            }

            _added.Release();
        }

        public void Dispose() => _added.Dispose();
    }
}
