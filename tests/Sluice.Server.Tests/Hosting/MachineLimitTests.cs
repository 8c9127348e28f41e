using System.Globalization;
using Google.Protobuf;
using Sluice.Client.Grpc;
using Sluice.Protocol.Api;
using Sluice.Server.Configuration;
using Sluice.Server.Grpc;
using Sluice.Server.Hosting;
using Sluice.Server.Tests.Http2;
using Sluice.TestKit;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Hosting;

/// <summary>
/// Limits that follow the machine (<see cref="ServerLimits"/>): the file-handle budget and the connection cap fit the
/// open-file and thread limits the process runs under, computed for given machines and shown on real child servers.
/// </summary>
public sealed class MachineLimitTests
{
    [Fact]
    public void An_open_file_limit_of_1024_halves_what_is_left_after_the_reserve_between_segment_files_and_sockets()
    {
        var limits = ServerLimits.Compute(ServerOptions.Default, new MachineLimits { OpenFiles = 1024 });

        Assert.Equal((1024 - ServerLimits.ReservedFiles) / 2, limits.MaxOpenFiles);
        Assert.Equal(448, limits.MaxOpenFiles);
        Assert.Equal(448, limits.MaxConnections); // the other half: a socket each
        Assert.Equal("the process's open-file limit", limits.MaxConnectionsSource);
        Assert.Contains(limits.Warnings, w => w.StartsWith("storage.max.open.files 1024 lowered to 448", StringComparison.Ordinal) && w.Contains("RLIMIT_NOFILE", StringComparison.Ordinal));
        Assert.Contains(limits.Warnings, w => w.StartsWith("grpc.max.connections 10000 lowered to 448", StringComparison.Ordinal));
    }

    [Fact]
    public void A_generous_machine_leaves_the_configured_limits_alone()
    {
        var options = ServerOptions.Default with { Storage = StorageOptions.Default with { MaxOpenFiles = 5000 }, GrpcMaxConnections = 20_000 };
        var limits = ServerLimits.Compute(options, new MachineLimits { OpenFiles = 1 << 20, ThreadsAvailable = 100_000 });

        Assert.Equal(5000, limits.MaxOpenFiles);
        Assert.Equal(20_000, limits.MaxConnections);
        Assert.Equal("grpc.max.connections", limits.MaxConnectionsSource);
        Assert.Empty(limits.Warnings);
        Assert.Equal(limits, ServerLimits.Compute(options, MachineLimits.Unknown) with { Warnings = limits.Warnings, MaxReaderThreads = limits.MaxReaderThreads });
    }

    [Fact]
    public void A_thread_limit_caps_reader_threads_below_it_with_headroom_and_leaves_connections_alone()
    {
        var machine = new MachineLimits { ThreadsAvailable = 276, ThreadLimitSource = "RLIMIT_NPROC 300 with 24 threads of this user running" };

        var native = ServerLimits.Compute(ServerOptions.Default, machine);
        Assert.Equal(276 - ServerLimits.MinThreadHeadroom, native.MaxReaderThreads);
        Assert.Equal(10_000, native.MaxConnections); // a quiet connection holds no thread
        Assert.Equal("grpc.max.connections", native.MaxConnectionsSource);
        Assert.Contains(native.Warnings, w => w.Contains("RLIMIT_NPROC 300", StringComparison.Ordinal) && w.StartsWith("at most 212 connections get a reader thread", StringComparison.Ordinal));

        var big = ServerLimits.Compute(ServerOptions.Default, new MachineLimits { ThreadsAvailable = 8000 });
        Assert.Equal(7000, big.MaxReaderThreads); // an eighth kept back once that is more than the minimum

        var kestrel = ServerLimits.Compute(ServerOptions.Default with { GrpcTransport = GrpcServerTransport.Kestrel }, machine);
        Assert.Equal(int.MaxValue, kestrel.MaxReaderThreads); // no reader threads there
        Assert.Empty(kestrel.Warnings);
    }

    [Fact]
    public void The_per_address_limit_defaults_to_half_the_connection_limit_and_a_configured_one_is_kept()
    {
        Assert.Equal(5000, ServerLimits.Compute(ServerOptions.Default, MachineLimits.Unknown).MaxConnectionsPerAddress);
        Assert.Equal(25, ServerLimits.Compute(ServerOptions.Default with { GrpcMaxConnections = 50 }, MachineLimits.Unknown).MaxConnectionsPerAddress);
        Assert.Equal(1, ServerLimits.Compute(ServerOptions.Default with { GrpcMaxConnections = 1 }, MachineLimits.Unknown).MaxConnectionsPerAddress);
        Assert.Equal(7, ServerLimits.Compute(ServerOptions.Default with { GrpcMaxConnectionsPerAddress = 7 }, MachineLimits.Unknown).MaxConnectionsPerAddress);
        Assert.Equal(224, ServerLimits.Compute(ServerOptions.Default, new MachineLimits { OpenFiles = 1024 }).MaxConnectionsPerAddress); // half of the lowered cap
    }

    [Fact]
    public async Task Under_an_open_file_limit_of_300_three_streams_of_100_partitions_take_every_publish_and_new_connections()
    {
        using var dir = new TempDirectory("sluice-nofile");
        await using var child = await ChildServer.StartAsync(dir, ["prlimit", "--nofile=300:300", "--"]);
        Assert.Contains(child.Output, l => l.Contains("storage.max.open.files 1024 lowered to 86", StringComparison.Ordinal));

        // Three streams of 100 partitions (one stream's partitions are created in one metadata transaction, which caps them).
        const int Streams = 3;
        const int PerStream = 100;
        using var channel = new GrpcChannel(new Uri($"http://127.0.0.1:{child.Port}"));
        for (var s = 0; s < Streams; s++)
        {
            await channel.UnaryAsync("/proto.API/CreateStream", new CreateStreamRequest { Name = $"wide{s}", Subject = $"wide{s}", Partitions = PerStream }, CreateStreamResponse.Parser, TimeSpan.FromSeconds(60));
        }

        var failures = new List<string>();
        for (var round = 0; round < 3; round++)
        {
            for (var s = 0; s < Streams; s++)
            {
                for (var partition = 0; partition < PerStream; partition++)
                {
                    try
                    {
                        await channel.UnaryAsync(
                            "/proto.API/Publish",
                            new PublishRequest { Stream = $"wide{s}", Partition = partition, Value = ByteString.CopyFromUtf8($"m{round}"), AckPolicy = AckPolicy.Leader },
                            PublishResponse.Parser,
                            CallTimeout);
                    }
                    catch (Sluice.Protocol.Grpc.GrpcException ex)
                    {
                        failures.Add($"wide{s}/{partition}: {ex.StatusCode} {ex.Detail}");
                    }
                }
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {3 * Streams * PerStream} publishes failed, first: {failures.FirstOrDefault()}\n{child.OutputText}");
        await child.WaitServingAsync(TimeSpan.FromSeconds(10)); // a fresh connection is still accepted

        // Messages read back, which reopens files the budget closed.
        for (var partition = 0; partition < Streams * PerStream; partition += 37)
        {
            await using var sub = channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = $"wide{partition / PerStream}", Partition = partition % PerStream, StartPosition = StartPosition.Earliest, StopPosition = StopPosition.StopLatest }, Message.Parser);
            Assert.True(await sub.MoveNextAsync()); // handshake
            var (messages, error) = await ReadToEndAsync(sub);
            Assert.Equal("Stop offset reached", error?.Detail);
            Assert.Equal(["m0", "m1", "m2"], messages.Select(m => m.Value.ToStringUtf8()));
        }
    }

    [Fact]
    public async Task Under_a_thread_limit_of_300_the_server_holds_400_connections_without_a_thread_each_and_serves_them_all_at_once()
    {
        Assert.True(Environment.IsPrivilegedProcess, "this test starts the server as an unprivileged user (root ignores RLIMIT_NPROC), which needs root");
        using var dir = new TempDirectory("sluice-nproc");
        await using var child = await ChildServer.StartAsync(
            dir,
            ["prlimit", "--nproc=300:300", "--", "setpriv", $"--reuid={ChildServer.NobodyId}", $"--regid={ChildServer.NobodyId}", "--clear-groups", "--"],
            asNobody: true,
            extraConfig: "grpc.max.connections.per.address: 1000\n"); // every test connection comes from 127.0.0.1
        Assert.Contains(child.Output, l => l.Contains("connections get a reader thread of their own at once", StringComparison.Ordinal) && l.Contains("RLIMIT_NPROC 300", StringComparison.Ordinal));

        var clients = new List<RawH2Client>();
        try
        {
            for (var i = 0; i < 400; i++)
            {
                var client = await RawH2Client.ConnectAsync(child.Port);
                clients.Add(client);
                await client.HandshakeAsync();
                Assert.False(child.HasExited, $"sluice serve died at connection {i + 1}:\n{child.OutputText}");
            }

            await Task.Delay(500); // past the reader linger: quiet connections give their threads back
            Assert.True(Threads(child.ProcessId) < 150, $"{Threads(child.ProcessId)} threads for 400 quiet connections");

            // Every connection busy at once: past the reader-thread budget they are read on the thread pool.
            await Task.WhenAll(clients.Select(async client =>
            {
                await client.SendRequestAsync(1, endStream: false, "/grpc.health.v1.Health/Check");
                await client.SendDataAsync(1, new byte[5], endStream: true);
                Assert.Equal("0", (await client.ReadResponseAsync(1)).Trailer("grpc-status"));
            }));
            Assert.False(child.HasExited, $"sluice serve died under 400 busy connections:\n{child.OutputText}");
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }

        await child.WaitServingAsync(TimeSpan.FromSeconds(30));
        Assert.False(child.HasExited);
    }

    private static int Threads(int pid) =>
        int.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("Threads:", StringComparison.Ordinal))["Threads:".Length..].Trim(), CultureInfo.InvariantCulture);
}
