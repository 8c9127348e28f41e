using System.Text;
using System.Text.Json;
using Sluice.Client;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;

namespace Sluice.Bench.Tests;

/// <summary>The modes bench/cluster.sh uses, against a single in-process server (a one-broker "cluster").</summary>
public sealed class ClusterModesTests : IAsyncLifetime
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), $"sluice-bench-modes-{Guid.NewGuid():N}");
    private SluiceServer? _server;

    private string Address => $"127.0.0.1:{_server!.Port}";

    public async Task InitializeAsync()
    {
        _server = await SluiceServer.StartAsync(ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = _dataDir });
        await using var client = await SluiceClient.ConnectAsync([Address]);
        await client.CreateStreamAsync("modes", "modes", StreamOptions.Default);
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        Directory.Delete(_dataDir, recursive: true);
    }

    [Fact]
    public async Task Partition_state_prints_the_leader_replicas_and_isr_as_one_json_line()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        using var output = new StringWriter();
        using var error = new StringWriter();
        Assert.Equal(0, await Program.RunAsync(["partition-state", "-s", Address, "--stream", "modes"], output, error, timeout.Token));
        using var json = JsonDocument.Parse(output.ToString());
        var leader = json.RootElement.GetProperty("leader").GetString();
        Assert.False(string.IsNullOrEmpty(leader));
        Assert.Equal([leader], json.RootElement.GetProperty("replicas").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal([leader], json.RootElement.GetProperty("isr").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task Partition_state_of_an_unknown_stream_exits_1_without_a_leader()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        using var output = new StringWriter();
        using var error = new StringWriter();
        Assert.Equal(1, await Program.RunAsync(["partition-state", "-s", Address, "--stream", "absent"], output, error, timeout.Token));
        using var json = JsonDocument.Parse(output.ToString());
        Assert.False(json.RootElement.TryGetProperty("leader", out _));
    }

    [Fact]
    public async Task Pulse_publishes_until_stopped_and_reports_acks()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var output = new LineWatcher("ack ");
        using var error = new StringWriter();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var run = Program.RunAsync(["pulse", "-s", Address, "--stream", "modes", "--ack-policy", "all", "--ms", "16"], output, error, stop.Token);

        // The heartbeat comes once a second while acks flow: wait for it, then stop.
        await output.Seen.WaitAsync(TimeSpan.FromSeconds(60), timeout.Token);
        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30), timeout.Token));

        var lines = output.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.StartsWith("pulse modes ack all from ", lines[0], StringComparison.Ordinal);
        var summary = lines[^1].Split(' ');
        Assert.Equal("acked", summary[0]);
        Assert.True(long.Parse(summary[1], System.Globalization.CultureInfo.InvariantCulture) > 0, lines[^1]);
        Assert.Equal("errors", summary[2]);
        Assert.Equal("0", summary[3]);

        await using var client = await SluiceClient.ConnectAsync([Address], cancellationToken: timeout.Token);
        var metadata = await client.FetchMetadataAsync(null, timeout.Token);
        Assert.True(metadata.GetStream("modes")!.GetPartition(0)!.NewestOffset >= 0);
    }

    /// <summary>Collects what is written (from any thread) and completes <see cref="Seen"/> once a line starts with a prefix.</summary>
    private sealed class LineWatcher(string prefix) : TextWriter
    {
        private readonly Lock _lock = new();
        private readonly StringBuilder _text = new();
        private readonly TaskCompletionSource _seen = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override Encoding Encoding => Encoding.UTF8;

        public Task Seen => _seen.Task;

        public string Text
        {
            get
            {
                lock (_lock)
                {
                    return _text.ToString();
                }
            }
        }

        public override void Write(char value)
        {
            lock (_lock)
            {
                _text.Append(value);
            }
        }

        public override void Write(string? value)
        {
            lock (_lock)
            {
                _text.Append(value);
            }
        }

        public override void WriteLine(string? value)
        {
            lock (_lock)
            {
                _text.Append(value).Append('\n');
            }

            if (value is not null && value.StartsWith(prefix, StringComparison.Ordinal))
            {
                _seen.TrySetResult();
            }
        }

        public override Task WriteLineAsync(string? value)
        {
            WriteLine(value);
            return Task.CompletedTask;
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
