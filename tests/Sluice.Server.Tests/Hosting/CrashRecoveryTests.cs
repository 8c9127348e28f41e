using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Sluice.Client.Grpc;
using Sluice.Protocol.Api;
using Sluice.Protocol.Health;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;
using Sluice.TestKit;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Hosting;

public sealed class CrashRecoveryTests
{
    internal static string CliPath()
    {
        // tests/Sluice.Server.Tests/bin/<Configuration>/net10.0/ → src/Sluice.Cli/bin/<Configuration>/net10.0/sluice.dll
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory);
        var framework = baseDir.Name;
        var configuration = baseDir.Parent!.Name;
        var root = baseDir.Parent.Parent!.Parent!.Parent!.Parent!.FullName;
        var path = Path.Combine(root, "src", "Sluice.Cli", "bin", configuration, framework, "sluice.dll");
        Assert.True(File.Exists(path), $"the sluice CLI was not built at {path}");
        return path;
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [Fact]
    public async Task Every_acknowledged_message_survives_SIGKILL_under_load_with_durability_always()
    {
        using var dir = new TempDirectory("sluice-crash");
        var port = FreePort();
        var config = dir.Sub("sluice.yaml");
        await File.WriteAllTextAsync(config, $"host: 127.0.0.1\nport: {port}\ndata.dir: {dir.Sub("data")}\nstorage.durability: always\nlogging.level: warn\n");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { CliPath(), "serve", "--config", config })
        {
            start.ArgumentList.Add(arg);
        }

        using var child = Process.Start(start)!;
        child.OutputDataReceived += (_, _) => { };
        child.ErrorDataReceived += (_, _) => { };
        child.BeginOutputReadLine();
        child.BeginErrorReadLine();
        var acked = new Dictionary<long, string>();
        try
        {
            using var channel = new GrpcChannel(new Uri($"http://127.0.0.1:{port}"));
            await WaitUntilAsync(
                async () =>
                {
                    Assert.False(child.HasExited, "sluice serve exited early");
                    try
                    {
                        var health = await channel.UnaryAsync("/grpc.health.v1.Health/Check", new HealthCheckRequest { Service = "proto.API" }, HealthCheckResponse.Parser, TimeSpan.FromSeconds(1));
                        return health.Status == HealthCheckResponse.Types.ServingStatus.Serving;
                    }
                    catch (Exception ex) when (ex is HttpRequestException or Sluice.Protocol.Grpc.GrpcException or OperationCanceledException)
                    {
                        return false;
                    }
                },
                "the child server to serve",
                TimeSpan.FromSeconds(60));
            await channel.UnaryAsync("/proto.API/CreateStream", new CreateStreamRequest { Name = "crash", Subject = "crash" }, CreateStreamResponse.Parser, CallTimeout);

            await using var call = channel.DuplexStreaming<PublishRequest, PublishResponse>("/proto.API/PublishAsync", PublishResponse.Parser);
            var sending = Task.Run(async () =>
            {
                try
                {
                    for (var i = 0; ; i++)
                    {
                        await call.WriteAsync(new PublishRequest { Stream = "crash", CorrelationId = "m" + i, Value = ByteString.CopyFromUtf8("m" + i) });
                    }
                }
                catch (Exception)
                {
                    // The server died under us: that is the point.
                }
            });
            try
            {
                while (await call.MoveNextAsync())
                {
                    var ack = call.Current.Ack;
                    acked[ack.Offset] = ack.CorrelationId;
                    if (acked.Count == 3000)
                    {
                        child.Kill(entireProcessTree: true); // SIGKILL mid-stream, with publishes still in flight
                    }
                }
            }
            catch (Exception ex) when (ex is Sluice.Protocol.Grpc.GrpcException or HttpRequestException or IOException)
            {
                // The connection dropped when the process died.
            }

            await sending;
        }
        finally
        {
            if (!child.HasExited)
            {
                child.Kill(entireProcessTree: true);
            }

            await child.WaitForExitAsync();
        }

        Assert.True(acked.Count >= 3000, $"only {acked.Count} acks before the kill");
        await using var server = await SluiceServer.StartAsync(ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dir.Sub("data") });
        using var reader = new GrpcChannel(new Uri($"http://127.0.0.1:{server.Port}"));
        await using var sub = reader.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "crash", StartPosition = StartPosition.Earliest, StopPosition = StopPosition.StopLatest }, Message.Parser);
        Assert.True(await sub.MoveNextAsync()); // handshake
        var (messages, error) = await ReadToEndAsync(sub);
        Assert.Equal("Stop offset reached", error?.Detail);
        var stored = messages.ToDictionary(m => m.Offset, m => m.Value.ToStringUtf8());
        foreach (var (offset, value) in acked)
        {
            Assert.True(stored.TryGetValue(offset, out var got), $"acked offset {offset} is missing after the crash");
            Assert.Equal(value, got);
        }
    }
}
