using Microsoft.Extensions.Logging;
using Sluice.Client.Grpc;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;
using Sluice.TestKit;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Hosting;

/// <summary>A broker with two streams, one of them damaged on disk between a stop and a start.</summary>
public sealed class DamagedPartitionTests
{
    private const string FirstSegment = "00000000000000000000.log";

    public enum Damage
    {
        FlippedByte,
        ZeroedHeader,
        SealedSegmentCutInHalf,
        SealedSegmentDeleted,
        DirectoryDeleted,
    }

    [Theory]
    [InlineData(Damage.FlippedByte, FirstSegment)]
    [InlineData(Damage.ZeroedHeader, FirstSegment)]
    [InlineData(Damage.SealedSegmentCutInHalf, FirstSegment)]
    [InlineData(Damage.SealedSegmentDeleted, FirstSegment)]
    [InlineData(Damage.DirectoryDeleted, "directory is missing")]
    public async Task A_damaged_partition_goes_offline_and_the_other_stream_keeps_serving(Damage damage, string named)
    {
        using var dir = new TempDirectory("sluice-damage");
        var options = ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dir.Path };
        await using (var server = await SluiceServer.StartAsync(options))
        {
            using var channel = Connect(server);
            await CreateAsync(channel, "good");

            // Small segments: the damaged stream has sealed segments too.
            await CreateAsync(channel, "bad", r => r.SegmentMaxBytes = new NullableInt64 { Value = 400 });
            for (var i = 0; i < 30; i++)
            {
                await PublishAsync(channel, "good", $"g{i}");
                await PublishAsync(channel, "bad", $"b{i}");
            }
        }

        var partition = Path.Combine(dir.Path, "streams", "bad", "0");
        var segment = Path.Combine(partition, FirstSegment);
        Assert.True(Directory.GetFiles(partition, "*.log").Length > 1, "the damaged stream has no sealed segment");
        switch (damage)
        {
            case Damage.FlippedByte:
                FlipByte(segment, (int)(new FileInfo(segment).Length / 2));
                break;
            case Damage.ZeroedHeader:
                var bytes = File.ReadAllBytes(segment);
                Array.Clear(bytes, 0, 16);
                File.WriteAllBytes(segment, bytes);
                break;
            case Damage.SealedSegmentCutInHalf:
                using (var file = File.OpenHandle(segment, FileMode.Open, FileAccess.ReadWrite))
                {
                    RandomAccess.SetLength(file, RandomAccess.GetLength(file) / 2);
                }

                break;
            case Damage.SealedSegmentDeleted:
                File.Delete(segment);
                break;
            case Damage.DirectoryDeleted:
                Directory.Delete(partition, recursive: true);
                break;
        }

        using var logs = new ServerRunnerTests.LineSink();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(logs));
        await using (var server = await SluiceServer.StartAsync(options, loggers))
        {
            using var channel = Connect(server);
            var metadata = await channel.UnaryAsync("/proto.API/FetchMetadata", new FetchMetadataRequest(), FetchMetadataResponse.Parser, CallTimeout);
            var good = metadata.StreamMetadata.Single(s => s.Name == "good").Partitions[0];
            var bad = metadata.StreamMetadata.Single(s => s.Name == "bad").Partitions[0];
            Assert.Equal((server.ServerId, 1), (good.Leader, good.Isr.Count));
            Assert.Equal((string.Empty, 0), (bad.Leader, bad.Isr.Count));
            var badPartition = (await channel.UnaryAsync("/proto.API/FetchPartitionMetadata", new FetchPartitionMetadataRequest { Stream = "bad" }, FetchPartitionMetadataResponse.Parser, CallTimeout)).Metadata;
            Assert.Equal((string.Empty, 0), (badPartition.Leader, badPartition.Isr.Count));

            var publish = await ThrowsGrpcAsync(GrpcStatusCode.Unavailable, () => PublishAsync(channel, "bad", "refused"));
            AssertExplains(publish.Detail, named, dir.Path);
            await using (var sub = channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "bad", StartPosition = StartPosition.Earliest }, Message.Parser))
            {
                var subscribe = await ThrowsGrpcAsync(GrpcStatusCode.Unavailable, async () => await sub.MoveNextAsync());
                AssertExplains(subscribe.Detail, named, dir.Path);
            }

            Assert.Contains(logs.Lines, l => l.Contains("bad/0 is offline", StringComparison.Ordinal) && l.Contains(named, StringComparison.Ordinal));

            Assert.Equal(30, (await PublishAsync(channel, "good", "g30")).Offset);
            await using var good1 = channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "good", StartPosition = StartPosition.Earliest, StopPosition = StopPosition.StopLatest }, Message.Parser);
            Assert.True(await good1.MoveNextAsync()); // handshake
            var (messages, end) = await ReadToEndAsync(good1);
            Assert.Equal("Stop offset reached", end?.Detail);
            Assert.Equal(Enumerable.Range(0, 31).Select(i => $"g{i}"), messages.Select(m => m.Value.ToStringUtf8()));
        }
    }

    [Fact]
    public async Task A_deleted_newest_segment_continues_after_the_acknowledged_offsets()
    {
        using var dir = new TempDirectory("sluice-damage");
        var options = ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dir.Path };
        await using (var server = await SluiceServer.StartAsync(options))
        {
            using var channel = Connect(server);
            await CreateAsync(channel, "s", r => r.SegmentMaxBytes = new NullableInt64 { Value = 400 });
            for (var i = 0; i < 30; i++)
            {
                await PublishAsync(channel, "s", $"m{i}");
            }
        }

        var partition = Path.Combine(dir.Path, "streams", "s", "0");
        var segments = Directory.GetFiles(partition, "*.log").Order().ToArray();
        Assert.True(segments.Length > 1);
        File.Delete(segments[^1]);
        var lost = long.Parse(Path.GetFileNameWithoutExtension(segments[^1]), System.Globalization.CultureInfo.InvariantCulture);

        await using (var server = await SluiceServer.StartAsync(options))
        {
            using var channel = Connect(server);
            var metadata = (await channel.UnaryAsync("/proto.API/FetchPartitionMetadata", new FetchPartitionMetadataRequest { Stream = "s" }, FetchPartitionMetadataResponse.Parser, CallTimeout)).Metadata;
            Assert.Equal((server.ServerId, 29L, 29L), (metadata.Leader, metadata.NewestOffset, metadata.HighWatermark));
            Assert.Equal(30, (await PublishAsync(channel, "s", "after")).Offset);
            await using var sub = channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "s", StartPosition = StartPosition.Earliest, StopPosition = StopPosition.StopLatest }, Message.Parser);
            Assert.True(await sub.MoveNextAsync()); // handshake
            var (messages, _) = await ReadToEndAsync(sub);
            Assert.Equal(Enumerable.Range(0, (int)lost).Select(i => (long)i).Append(30), messages.Select(m => m.Offset));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // then only the broker's metadata (PartitionStateRecord.nextOffset) knows how far offsets went
    public async Task A_tail_lost_under_durability_never_continues_after_the_acknowledged_offsets_with_a_reported_gap(bool checkpointLostToo)
    {
        using var dir = new TempDirectory("sluice-damage");
        var options = ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dir.Path };
        await using (var server = await SluiceServer.StartAsync(options))
        {
            using var channel = Connect(server);
            await CreateAsync(channel, "s");
            for (var i = 0; i < 10; i++)
            {
                await PublishAsync(channel, "s", $"m{i}");
            }
        }

        // What an OS crash leaves when the pages of the last records never reached the disk but the checkpoints did.
        var segment = Path.Combine(dir.Path, "streams", "s", "0", FirstSegment);
        using (var file = File.OpenHandle(segment, FileMode.Open, FileAccess.ReadWrite))
        {
            RandomAccess.SetLength(file, RandomAccess.GetLength(file) / 2);
        }

        if (checkpointLostToo)
        {
            File.Delete(Path.Combine(dir.Path, "streams", "s", "0", "high-watermark"));
        }

        using var logs = new ServerRunnerTests.LineSink();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(logs));
        await using (var server = await SluiceServer.StartAsync(options, loggers))
        {
            using var channel = Connect(server);
            var metadata = (await channel.UnaryAsync("/proto.API/FetchPartitionMetadata", new FetchPartitionMetadataRequest { Stream = "s" }, FetchPartitionMetadataResponse.Parser, CallTimeout)).Metadata;
            Assert.Equal((server.ServerId, 9L), (metadata.Leader, metadata.NewestOffset));
            Assert.Equal(10, (await PublishAsync(channel, "s", "after")).Offset);
            Assert.Contains(logs.Lines, l => l.Contains("s/0 lost offsets", StringComparison.Ordinal) && l.Contains("..9", StringComparison.Ordinal));
            await using var sub = channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "s", StartPosition = StartPosition.Earliest, StopPosition = StopPosition.StopLatest }, Message.Parser);
            Assert.True(await sub.MoveNextAsync()); // handshake
            var (messages, _) = await ReadToEndAsync(sub);
            Assert.Equal(10, messages[^1].Offset);
            Assert.True(messages.Count is > 1 and < 11);
            Assert.Equal(Enumerable.Range(0, messages.Count - 1).Select(i => (long)i), messages.SkipLast(1).Select(m => m.Offset));
        }
    }

    [Fact]
    public async Task Damage_found_on_read_serves_the_records_before_it_then_names_the_segment_without_server_paths()
    {
        using var dir = new TempDirectory("sluice-damage");
        var options = ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dir.Path };
        var value = new string('x', 1000);
        await using (var server = await SluiceServer.StartAsync(options))
        {
            using var channel = Connect(server);

            // Sealed segments of 64 KiB and more keep index files, so open trusts them and does not rescan them.
            await CreateAsync(channel, "s", r => r.SegmentMaxBytes = new NullableInt64 { Value = 100_000 });
            for (var i = 0; i < 150; i++)
            {
                await PublishAsync(channel, "s", $"{i:D3}{value}");
            }
        }

        var segment = Path.Combine(dir.Path, "streams", "s", "0", FirstSegment);
        Assert.True(File.Exists(Path.ChangeExtension(segment, ".index")));
        FlipByte(segment, 50_000);

        await using (var server = await SluiceServer.StartAsync(options))
        {
            using var channel = Connect(server);
            await using var sub = channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "s", StartPosition = StartPosition.Earliest }, Message.Parser);
            Assert.True(await sub.MoveNextAsync()); // handshake
            var (messages, error) = await ReadToEndAsync(sub);
            Assert.Equal(GrpcStatusCode.Unavailable, error?.StatusCode);
            Assert.Contains($"damaged: segment {FirstSegment}", error!.Detail, StringComparison.Ordinal);
            Assert.DoesNotContain(dir.Path, error.Detail, StringComparison.Ordinal);
            Assert.InRange(messages.Count, 1, 149);
            Assert.Equal(Enumerable.Range(0, messages.Count).Select(i => (long)i), messages.Select(m => m.Offset));
        }
    }

    [Fact]
    public async Task An_emptied_partition_directory_is_offline_rather_than_served_as_empty()
    {
        using var dir = new TempDirectory("sluice-damage");
        var options = ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dir.Path };
        await using (var server = await SluiceServer.StartAsync(options))
        {
            using var channel = Connect(server);
            await CreateAsync(channel, "s");
            await PublishAsync(channel, "s", "m0");
        }

        foreach (var file in Directory.GetFiles(Path.Combine(dir.Path, "streams", "s", "0")))
        {
            File.Delete(file);
        }

        await using (var server = await SluiceServer.StartAsync(options))
        {
            using var channel = Connect(server);
            var publish = await ThrowsGrpcAsync(GrpcStatusCode.Unavailable, () => PublishAsync(channel, "s", "refused"));
            AssertExplains(publish.Detail, "files are missing", dir.Path, stream: "s");
        }
    }

    [Fact]
    public async Task A_partition_directory_lost_after_a_crash_is_offline_because_its_first_message_saved_its_state()
    {
        using var dir = new TempDirectory("sluice-damage");
        var port = CrashRecoveryTests.FreePort();
        var config = dir.Sub("sluice.yaml");
        await File.WriteAllTextAsync(config, $"host: 127.0.0.1\nport: {port}\ndata.dir: {dir.Sub("data")}\nlogging.level: debug\n");
        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { CrashRecoveryTests.CliPath(), "serve", "--config", config })
        {
            start.ArgumentList.Add(arg);
        }

        var lines = new List<string>();
        void Collect(object sender, System.Diagnostics.DataReceivedEventArgs e)
        {
            lock (lines)
            {
                lines.Add(e.Data ?? string.Empty);
            }
        }

        bool Logged(string text)
        {
            lock (lines)
            {
                return lines.Any(l => l.Contains(text, StringComparison.Ordinal));
            }
        }

        using (var child = System.Diagnostics.Process.Start(start)!)
        {
            child.OutputDataReceived += Collect;
            child.ErrorDataReceived += Collect;
            child.BeginOutputReadLine();
            child.BeginErrorReadLine();
            try
            {
                using var channel = new GrpcChannel(new Uri($"http://127.0.0.1:{port}"));
                await WaitUntilAsync(() => Task.FromResult(Logged("serving proto.API")), "the child server to serve", TimeSpan.FromSeconds(60));
                await CreateAsync(channel, "s");
                await PublishAsync(channel, "s", "m0");
                await WaitUntilAsync(() => Task.FromResult(Logged("Saved the state of s/0")), "the state save after the first message");
            }
            finally
            {
                child.Kill(entireProcessTree: true); // a crash: no shutdown save
                await child.WaitForExitAsync();
            }
        }

        Directory.Delete(Path.Combine(dir.Sub("data"), "streams", "s", "0"), recursive: true);
        await using var server = await SluiceServer.StartAsync(ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dir.Sub("data") });
        using var reader = Connect(server);
        var publish = await ThrowsGrpcAsync(GrpcStatusCode.Unavailable, () => PublishAsync(reader, "s", "refused"));
        AssertExplains(publish.Detail, "directory is missing", dir.Path, stream: "s");
    }

    private static void AssertExplains(string detail, string named, string dataDir, string stream = "bad")
    {
        Assert.Contains($"partition 0 of stream {stream} is offline", detail, StringComparison.Ordinal);
        Assert.Contains(named, detail, StringComparison.Ordinal);
        Assert.DoesNotContain(dataDir, detail, StringComparison.Ordinal);
    }

    private static void FlipByte(string path, int position)
    {
        var bytes = File.ReadAllBytes(path);
        bytes[position] ^= 0x55;
        File.WriteAllBytes(path, bytes);
    }

    private static GrpcChannel Connect(SluiceServer server) => new(new Uri($"http://127.0.0.1:{server.Port}"));

    private static async Task CreateAsync(GrpcChannel channel, string name, Action<CreateStreamRequest>? configure = null)
    {
        var request = new CreateStreamRequest { Name = name, Subject = name };
        configure?.Invoke(request);
        await channel.UnaryAsync("/proto.API/CreateStream", request, CreateStreamResponse.Parser, CallTimeout);
    }

    private static async Task<Ack> PublishAsync(GrpcChannel channel, string stream, string value)
    {
        var response = await channel.UnaryAsync("/proto.API/Publish", new PublishRequest { Stream = stream, Value = Google.Protobuf.ByteString.CopyFromUtf8(value) }, PublishResponse.Parser, CallTimeout);
        return response.Ack;
    }
}
