using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;

namespace Sluice.Benchmarks.Metadata;

/// <summary>
/// <c>dotnet run -c Release --project bench/Sluice.Benchmarks -- metadata [--seconds N] [--rounds N] [--etcd PATH]</c>:
/// put, range and txn operations per second (1 and 16 callers) and watch latency, for the embedded store and for a
/// local etcd driven through its JSON gateway with the same operation mix. Prints medians over the rounds.
/// </summary>
public static class MetadataBench
{
    private const int KeySpace = 1000;
    private static readonly byte[] Value = Encoding.ASCII.GetBytes(new string('v', 64)); // a typical metadata record

    public static async Task RunAsync(string[] args)
    {
        var seconds = double.Parse(Arg(args, "--seconds", "3"), CultureInfo.InvariantCulture);
        var rounds = int.Parse(Arg(args, "--rounds", "3"), CultureInfo.InvariantCulture);
        var etcdPath = Arg(args, "--etcd", "/usr/bin/etcd");
        var duration = TimeSpan.FromSeconds(seconds);
        Console.WriteLine($"metadata bench: {seconds}s per case, median of {rounds} rounds, {Environment.ProcessorCount} cores");

        var ours = new Dictionary<string, double>();
        var dir = Path.Combine(Path.GetTempPath(), $"sluice-bench-meta-{Guid.NewGuid():N}");
        try
        {
            await using var store = await EmbeddedMetadataStore.OpenAsync(dir);
            var target = new EmbeddedTarget(store);
            await target.PutAsync(0);
            foreach (var (name, value) in await RunCasesAsync(target, duration, rounds))
            {
                ours[name] = value;
            }

            ours["watch p50 ms"] = await WatchLatencyAsync(store, 500);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        Dictionary<string, double>? etcd = null;
        if (File.Exists(etcdPath))
        {
            await using var server = await EtcdProcess.StartAsync(etcdPath);
            using var target = new EtcdTarget(server.ClientUrl);
            await target.PutAsync(0);
            etcd = await RunCasesAsync(target, duration, rounds);
            etcd["watch p50 ms"] = await target.WatchLatencyAsync(500);
        }
        else
        {
            Console.WriteLine($"etcd not found at {etcdPath}; comparison skipped");
        }

        Console.WriteLine();
        Console.WriteLine("| case | Sluice embedded | etcd 3.4 (JSON gateway) | ratio |");
        Console.WriteLine("|---|---:|---:|---:|");
        foreach (var (name, value) in ours)
        {
            var other = etcd?.GetValueOrDefault(name);
            var ratio = other is > 0 ? (name.Contains("ms", StringComparison.Ordinal) ? other.Value / value : value / other.Value) : double.NaN;
            Console.WriteLine($"| {name} | {value:N1} | {(other is null ? "-" : other.Value.ToString("N1", CultureInfo.InvariantCulture))} | {ratio:N1}x |");
        }
    }

    private static async Task<Dictionary<string, double>> RunCasesAsync(ITarget target, TimeSpan duration, int rounds)
    {
        var results = new Dictionary<string, double>();
        foreach (var op in new[] { "put", "range", "txn" })
        {
            foreach (var callers in new[] { 1, 16 })
            {
                var samples = new List<double>();
                for (var r = 0; r < rounds; r++)
                {
                    samples.Add(await ThroughputAsync(target, op, callers, duration));
                }

                samples.Sort();
                var name = $"{op} ops/s, {callers} caller{(callers > 1 ? "s" : "")}";
                results[name] = samples[samples.Count / 2];
                Console.WriteLine($"{target.Name,-8} {name,-24} median {results[name],10:N0}  (rounds: {string.Join(", ", samples.Select(s => s.ToString("N0", CultureInfo.InvariantCulture)))})");
            }
        }

        return results;
    }

    private static async Task<double> ThroughputAsync(ITarget target, string op, int callers, TimeSpan duration)
    {
        long done = 0;
        var stopwatch = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, callers).Select(c => Task.Run(async () =>
        {
            var i = c;
            while (stopwatch.Elapsed < duration)
            {
                var key = i++ % KeySpace;
                await (op switch
                {
                    "put" => target.PutAsync(key),
                    "range" => target.RangeAsync(key),
                    _ => target.TxnAsync(key),
                });
                Interlocked.Increment(ref done);
            }
        })).ToArray();
        await Task.WhenAll(workers);
        return done / stopwatch.Elapsed.TotalSeconds;
    }

    /// <summary>Median time from issuing a put to the watcher receiving its event (the put's fsync included).</summary>
    private static async Task<double> WatchLatencyAsync(EmbeddedMetadataStore store, int count)
    {
        using var cts = new CancellationTokenSource();
        var received = new long[count];
        var seen = 0;
        var all = new TaskCompletionSource();
        var watcher = Task.Run(async () =>
        {
            await foreach (var response in store.WatchPrefixAsync("lat/", cancellationToken: cts.Token))
            {
                foreach (var e in response.Events)
                {
                    received[int.Parse(e.Kv.ValueString, CultureInfo.InvariantCulture)] = Stopwatch.GetTimestamp();
                    if (++seen == count)
                    {
                        all.TrySetResult();
                    }
                }
            }
        });
        var sent = new long[count];
        for (var i = 0; i < count; i++)
        {
            sent[i] = Stopwatch.GetTimestamp();
            await store.PutAsync($"lat/{i % 10}", i.ToString(CultureInfo.InvariantCulture));
        }

        await all.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await cts.CancelAsync();
        try
        {
            await watcher;
        }
        catch (OperationCanceledException)
        {
        }

        return Median(sent, received);
    }

    internal static double Median(long[] sent, long[] received)
    {
        var ms = sent.Zip(received, (s, r) => Stopwatch.GetElapsedTime(s, r).TotalMilliseconds).Order().ToArray();
        Console.WriteLine($"watch latency ms: p50 {ms[ms.Length / 2]:N2}, p99 {ms[(int)(ms.Length * 0.99)]:N2}");
        return ms[ms.Length / 2];
    }

    private static string Arg(string[] args, string name, string fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    private interface ITarget
    {
        string Name { get; }

        Task PutAsync(int key);

        Task RangeAsync(int key);

        Task TxnAsync(int key);
    }

    private static byte[] Key(int key) => Encoding.ASCII.GetBytes($"bench/{key:D4}");

    private sealed class EmbeddedTarget(IMetadataStore store) : ITarget
    {
        public string Name => "sluice";

        public Task PutAsync(int key) => store.PutAsync(new PutRequest(Key(key), Value)).AsTask();

        public Task RangeAsync(int key) => store.RangeAsync(new RangeRequest(Key(key))).AsTask();

        // A compare-and-swap, the shape of leader and ISR updates: if the key exists, overwrite it, else read it.
        public Task TxnAsync(int key)
        {
            var k = Key(key);
            return store.TxnAsync(new TxnRequest
            {
                Compares = [Compare.Version(k, CompareResult.Greater, 0)],
                Success = [RequestOp.ForPut(new PutRequest(k, Value))],
                Failure = [RequestOp.ForRange(new RangeRequest(k))],
            }).AsTask();
        }
    }

    private sealed class EtcdTarget : ITarget, IDisposable
    {
        private readonly HttpClient _http;
        private readonly string _value = Convert.ToBase64String(Value);

        public EtcdTarget(string url)
        {
            _http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64 }) { BaseAddress = new Uri(url) };
        }

        public string Name => "etcd";

        private static string K(int key) => Convert.ToBase64String(Key(key));

        public Task PutAsync(int key) => PostAsync("/v3/kv/put", $"{{\"key\":\"{K(key)}\",\"value\":\"{_value}\"}}");

        public Task RangeAsync(int key) => PostAsync("/v3/kv/range", $"{{\"key\":\"{K(key)}\"}}");

        public Task TxnAsync(int key) => PostAsync("/v3/kv/txn",
            $"{{\"compare\":[{{\"target\":\"VERSION\",\"result\":\"GREATER\",\"key\":\"{K(key)}\",\"version\":\"0\"}}],"
            + $"\"success\":[{{\"request_put\":{{\"key\":\"{K(key)}\",\"value\":\"{_value}\"}}}}],"
            + $"\"failure\":[{{\"request_range\":{{\"key\":\"{K(key)}\"}}}}]}}");

        public async Task<double> WatchLatencyAsync(int count)
        {
            var prefix = Encoding.ASCII.GetBytes("lat/");
            var end = KeyRanges.PrefixEnd(prefix);
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v3/watch")
            {
                Content = new StringContent($"{{\"create_request\":{{\"key\":\"{Convert.ToBase64String(prefix)}\",\"range_end\":\"{Convert.ToBase64String(end)}\"}}}}"),
            };
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            response.EnsureSuccessStatusCode();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            _ = await reader.ReadLineAsync(); // the "created" response
            var received = new long[count];
            var sent = new long[count];
            var readLoop = Task.Run(async () =>
            {
                var seen = 0;
                while (seen < count && await reader.ReadLineAsync() is { } line)
                {
                    using var doc = JsonDocument.Parse(line);
                    if (!doc.RootElement.GetProperty("result").TryGetProperty("events", out var events))
                    {
                        continue;
                    }

                    foreach (var e in events.EnumerateArray())
                    {
                        var value = Encoding.ASCII.GetString(Convert.FromBase64String(e.GetProperty("kv").GetProperty("value").GetString()!));
                        received[int.Parse(value, CultureInfo.InvariantCulture)] = Stopwatch.GetTimestamp();
                        seen++;
                    }
                }
            });
            for (var i = 0; i < count; i++)
            {
                sent[i] = Stopwatch.GetTimestamp();
                var key = Convert.ToBase64String(Encoding.ASCII.GetBytes($"lat/{i % 10}"));
                var value = Convert.ToBase64String(Encoding.ASCII.GetBytes(i.ToString(CultureInfo.InvariantCulture)));
                await PostAsync("/v3/kv/put", $"{{\"key\":\"{key}\",\"value\":\"{value}\"}}");
            }

            await readLoop.WaitAsync(TimeSpan.FromSeconds(60));
            return Median(sent, received);
        }

        private async Task PostAsync(string path, string json)
        {
            using var content = new StringContent(json, Encoding.UTF8, "application/json");
            using var response = await _http.PostAsync(path, content);
            response.EnsureSuccessStatusCode();
            await response.Content.ReadAsByteArrayAsync();
        }

        public void Dispose() => _http.Dispose();
    }

    /// <summary>A throwaway single-member etcd on free loopback ports and a temp data dir, stopped by PID.</summary>
    private sealed class EtcdProcess : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly string _dataDir;

        private EtcdProcess(Process process, string dataDir, string clientUrl)
        {
            _process = process;
            _dataDir = dataDir;
            ClientUrl = clientUrl;
        }

        public string ClientUrl { get; }

        public static async Task<EtcdProcess> StartAsync(string path)
        {
            var client = $"http://127.0.0.1:{FreePort()}";
            var peer = $"http://127.0.0.1:{FreePort()}";
            var dataDir = Path.Combine(Path.GetTempPath(), $"sluice-bench-etcd-{Guid.NewGuid():N}");
            var start = new ProcessStartInfo(path)
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            foreach (var a in new[]
            {
                "--name", "b", "--data-dir", dataDir, "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", $"b={peer}",
            })
            {
                start.ArgumentList.Add(a);
            }

            var process = Process.Start(start)!;
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var etcd = new EtcdProcess(process, dataDir, client);
            using var http = new HttpClient { BaseAddress = new Uri(client) };
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (true)
            {
                try
                {
                    using var body = new StringContent("{\"key\":\"AA==\"}");
                    using var response = await http.PostAsync("/v3/kv/range", body);
                    if (response.IsSuccessStatusCode)
                    {
                        Console.WriteLine($"etcd (pid {process.Id}) ready at {client}");
                        return etcd;
                    }
                }
                catch (HttpRequestException) when (DateTime.UtcNow < deadline)
                {
                }

                if (DateTime.UtcNow > deadline || process.HasExited)
                {
                    await etcd.DisposeAsync();
                    throw new InvalidOperationException("etcd did not become ready");
                }

                await Task.Delay(100);
            }
        }

        private static int FreePort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
            if (Directory.Exists(_dataDir))
            {
                Directory.Delete(_dataDir, recursive: true);
            }
        }
    }
}
