using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;

namespace Sluice.Server.Tests.Hosting;

public class ServerRunnerTests
{
    [Fact]
    public async Task Serves_the_API_on_the_bound_port_and_stops_on_cancellation()
    {
        var sink = new LineSink();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(sink));
        using var stop = new CancellationTokenSource();
        var options = ServerOptions.Default with { Host = "127.0.0.1", Port = 0 };
        var run = ServerRunner.RunAsync(options, loggers, stop.Token);

        var line = await sink.WaitForAsync("listening on 127.0.0.1:", TimeSpan.FromSeconds(30));
        var port = int.Parse(new string(line[(line.IndexOf("127.0.0.1:", StringComparison.Ordinal) + 10)..].TakeWhile(char.IsAsciiDigit).ToArray()));

        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port}/proto.API/FetchMetadata")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact, // h2c with prior knowledge, as gRPC clients do
            Content = new ByteArrayContent([0, 0, 0, 0, 0]),
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/grpc", response.Content.Headers.ContentType?.MediaType);
        Assert.NotEmpty(await response.Content.ReadAsByteArrayAsync()); // the real API answers with metadata
        Assert.Equal("0", Assert.Single(response.TrailingHeaders.GetValues("grpc-status")));

        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task A_port_in_use_fails_with_exit_code_1_and_one_line()
    {
        using var occupier = new TcpListener(IPAddress.Loopback, 0);
        occupier.Start();
        var port = ((IPEndPoint)occupier.LocalEndpoint).Port;
        var sink = new LineSink();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(sink));

        var code = await ServerRunner.RunAsync(ServerOptions.Default with { Host = "127.0.0.1", Port = port }, loggers, CancellationToken.None)
            .WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(1, code);
        Assert.Contains(sink.Lines, l => l.Contains($"Cannot start the server on 127.0.0.1:{port}", StringComparison.Ordinal));
    }

    private sealed class LineSink : ILoggerProvider, ILogger
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
