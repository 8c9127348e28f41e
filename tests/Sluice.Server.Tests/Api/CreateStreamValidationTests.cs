using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Server.Streams;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Api;

/// <summary>CreateStream checks every field before it writes anything, and a refused or failed create leaves no trace.</summary>
public sealed class CreateStreamValidationTests
{
    private const long Max = StreamLimits.MaxDurationMilliseconds;

    /// <summary>Inputs that were once saved and then stopped the server from starting, or that no node can run.</summary>
    private static readonly Dictionary<string, Action<CreateStreamRequest>> Refused = new()
    {
        ["name of 256 bytes"] = r => r.Name = new string('a', 256),
        ["name of 201 bytes"] = r => r.Name = new string('a', 201),
        ["name of 10,000 characters"] = r => r.Name = new string('n', 10_000),
        ["name of 101 two-byte characters"] = r => r.Name = new string('é', 101),
        ["name with a slash"] = r => r.Name = "a/b",
        ["name with a backslash"] = r => r.Name = "a\\b",
        ["name with a space"] = r => r.Name = "a b",
        ["name with a comma"] = r => r.Name = "a,b",
        ["name with a colon"] = r => r.Name = "a:b",
        ["name with a wildcard"] = r => r.Name = "a*",
        ["name with NUL"] = r => r.Name = "a\0b",
        ["name with a newline"] = r => r.Name = "a\nb",
        ["hidden name"] = r => r.Name = ".hidden",
        ["dot-dot"] = r => r.Name = "..",
        ["partitions 2^31-1"] = r => r.Partitions = int.MaxValue,
        ["partitions above the maximum"] = r => r.Partitions = StreamLimits.MaxPartitions + 1,
        ["retentionMaxAge 2^63-1"] = r => r.RetentionMaxAge = new NullableInt64 { Value = long.MaxValue },
        ["segmentMaxAge 2^63-1"] = r => r.SegmentMaxAge = new NullableInt64 { Value = long.MaxValue },
        ["cleanerInterval 2^63-1"] = r => r.CleanerInterval = new NullableInt64 { Value = long.MaxValue },
        ["autoPauseTime 2^63-1"] = r => r.AutoPauseTime = new NullableInt64 { Value = long.MaxValue },
        ["retentionMaxAge above the maximum"] = r => r.RetentionMaxAge = new NullableInt64 { Value = Max + 1 },
        ["subject of 2,000 bytes"] = r => r.Subject = new string('s', 2000),
        ["group of 2,000 bytes"] = r => r.Group = new string('g', 2000),
    };

    public static TheoryData<string> RefusedCases => [.. Refused.Keys];

    [Theory]
    [MemberData(nameof(RefusedCases))]
    public async Task A_refused_create_is_InvalidArgument_saves_nothing_and_the_server_restarts(string @case)
    {
        await using var h = await StartAsync();
        var request = new CreateStreamRequest { Name = "s", Subject = "foo" };
        Refused[@case](request);
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync(request));
        Assert.True(ex.Detail.Length < 200, "the answer does not echo the input");
        Assert.DoesNotContain(h.DataDir, ex.Detail, StringComparison.Ordinal);
        Assert.Empty((await h.MetadataAsync()).StreamMetadata);

        await h.RestartAsync();
        Assert.Empty((await h.MetadataAsync()).StreamMetadata);
        Assert.False(Directory.Exists(Path.Combine(h.DataDir, "streams")) && Directory.EnumerateFileSystemEntries(Path.Combine(h.DataDir, "streams")).Any(), "no directory was left");
        await h.CreateStreamAsync("after", "after");
        Assert.NotNull(await h.PublishAsync("after", "x"));
    }

    [Fact]
    public async Task Refusals_name_the_limit()
    {
        await using var h = await StartAsync();
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync(new string('a', 201), "foo"));
        Assert.Equal("Name is too long: 201 bytes in UTF-8, at most 200", ex.Detail);
        ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync("a b", "foo"));
        Assert.Equal("Name is invalid: use letters, digits, '.', '_' and '-' only", ex.Detail);
        ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync("s", "foo", partitions: int.MaxValue));
        Assert.Equal("Invalid partitions 2147483647: at most 10000", ex.Detail);
        ex = await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync("s", "foo", configure: r => r.CleanerInterval = new NullableInt64 { Value = long.MaxValue }));
        Assert.Equal("Invalid cleanerInterval 9223372036854775807: at most 9223372036854 ms", ex.Detail);
    }

    [Fact]
    public async Task Names_at_the_limits_are_accepted_and_survive_a_restart()
    {
        await using var h = await StartAsync();
        string[] names = [new string('a', 200), new string('é', 100), "strœam-Ü_9.x", "-dash", "日本語", "__mine"];
        foreach (var name in names)
        {
            await h.CreateStreamAsync(name, "s" + Array.IndexOf(names, name));
        }

        await h.RestartAsync();
        Assert.Equal(names.Order(StringComparer.Ordinal), (await h.MetadataAsync()).StreamMetadata.Select(s => s.Name));
        foreach (var name in names)
        {
            Assert.NotNull(await h.PublishAsync(name, "x"));
        }
    }

    [Fact]
    public async Task Durations_at_the_maximum_are_accepted_and_survive_a_restart()
    {
        await using var h = await StartAsync();
        await h.CreateStreamAsync("long", "long", configure: r =>
        {
            r.RetentionMaxAge = new NullableInt64 { Value = Max };
            r.SegmentMaxAge = new NullableInt64 { Value = Max };
            r.CleanerInterval = new NullableInt64 { Value = Max }; // longer than a Timer takes: it checks more often instead
            r.AutoPauseTime = new NullableInt64 { Value = Max };
        });
        Assert.NotNull(await h.PublishAsync("long", "x"));
        await h.RestartAsync();
        Assert.NotNull(await h.PublishAsync("long", "y"));
        Assert.Equal(1, (await h.PartitionMetadataAsync("long")).HighWatermark);
    }

    [Fact]
    public async Task A_stream_of_1000_partitions_is_created_paused_and_reloaded()
    {
        await using var h = await StartAsync();
        var slow = TimeSpan.FromMinutes(3); // a thousand logs are created (and later deleted) one file at a time, on a shared CI disk
        await h.CallAsync("CreateStream", new CreateStreamRequest { Name = "wide", Subject = "wide", Partitions = 1000 }, CreateStreamResponse.Parser, slow);
        var metadata = await h.MetadataAsync("wide");
        Assert.Equal(1000, metadata.StreamMetadata[0].Partitions.Count);
        Assert.NotNull(await h.PublishAsync("wide", "x", partition: 999));

        await h.PauseAsync("wide"); // 1000 partition states: more than one metadata transaction holds
        await h.SetReadonlyAsync("wide", true);
        await h.RestartAsync();       // and the shutdown saves them all again
        metadata = await h.MetadataAsync("wide");
        Assert.Equal(1000, metadata.StreamMetadata[0].Partitions.Count);
        Assert.All(metadata.StreamMetadata[0].Partitions.Values, p => Assert.True(p.Paused && p.Readonly));

        await h.CallAsync("DeleteStream", new DeleteStreamRequest { Name = "wide" }, DeleteStreamResponse.Parser, slow);
        await h.RestartAsync();
        Assert.Empty((await h.MetadataAsync()).StreamMetadata);
    }

    [Fact]
    public async Task Data_on_disk_without_metadata_is_refused_with_the_repair_command_and_kept()
    {
        await using var h = await StartAsync();
        var orphan = Path.Combine(h.DataDir, "streams", "foo", "0");
        Directory.CreateDirectory(orphan);
        await File.WriteAllTextAsync(Path.Combine(orphan, "keep.me"), "someone's data");

        var ex = await ThrowsGrpcAsync(GrpcStatusCode.FailedPrecondition, () => h.CreateStreamAsync("foo", "foo"));
        Assert.Contains("sluice repair --data-dir <data dir>", ex.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(h.DataDir, ex.Detail, StringComparison.Ordinal);
        Assert.Equal("someone's data", await File.ReadAllTextAsync(Path.Combine(orphan, "keep.me")));
        Assert.Empty((await h.MetadataAsync()).StreamMetadata);

        await h.RestartAsync();
        Assert.Empty((await h.MetadataAsync()).StreamMetadata);
        Assert.True(File.Exists(Path.Combine(orphan, "keep.me")));
    }

    [Fact]
    public async Task A_create_that_fails_on_disk_leaves_no_trace_before_or_after_a_restart()
    {
        await using var h = await StartAsync();
        var streams = Path.Combine(h.DataDir, "streams");
        if (Directory.Exists(streams))
        {
            Directory.Delete(streams, recursive: true);
        }

        await File.WriteAllTextAsync(streams, "a file where the streams directory belongs"); // every mkdir below it fails
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.Internal, () => h.CreateStreamAsync("x", "x"));
        Assert.Equal("failed to create the stream", ex.Detail);
        Assert.Empty((await h.MetadataAsync()).StreamMetadata);
        await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.PublishAsync("x", "v"));

        File.Delete(streams);
        await h.RestartAsync();
        Assert.Empty((await h.MetadataAsync()).StreamMetadata); // it did not appear after the restart either
        await h.CreateStreamAsync("x", "x");
        Assert.NotNull(await h.PublishAsync("x", "v"));
    }

    [Fact]
    public async Task Unexpected_failures_answer_without_paths_or_exception_types()
    {
        await using var h = await StartAsync();
        var streams = Path.Combine(h.DataDir, "streams");
        if (Directory.Exists(streams))
        {
            Directory.Delete(streams, recursive: true);
        }

        await File.WriteAllTextAsync(streams, "not a directory");
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.Internal, () => h.CreateStreamAsync("x", "x", partitions: 3));
        Assert.DoesNotContain("/", ex.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", ex.Detail, StringComparison.Ordinal);
        File.Delete(streams);
    }

    [Fact]
    public async Task Publishing_after_a_refused_create_of_the_same_name_is_NotFound()
    {
        await using var h = await StartAsync();
        await ThrowsGrpcAsync(GrpcStatusCode.InvalidArgument, () => h.CreateStreamAsync("s", "s", configure: r => r.AutoPauseTime = new NullableInt64 { Value = long.MaxValue }));
        var ex = await ThrowsGrpcAsync(GrpcStatusCode.NotFound, () => h.CallAsync("Publish", new PublishRequest { Stream = "s", Value = ByteString.CopyFromUtf8("v") }, PublishResponse.Parser));
        Assert.Equal("no such stream: s", ex.Detail);
    }
}
