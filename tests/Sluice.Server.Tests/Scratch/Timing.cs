using System.Diagnostics;
using Xunit.Abstractions;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Scratch;

public sealed class Timing(ITestOutputHelper output)
{
    [Theory]
    [InlineData(1000)]
    [InlineData(10000)]
    public async Task Wide(int n)
    {
        await using var h = await StartAsync();
        var sw = Stopwatch.StartNew();
        void Lap(string what) { output.WriteLine($"{what}: {sw.ElapsedMilliseconds} ms, RSS {Environment.WorkingSet / 1048576} MiB"); sw.Restart(); }
        await h.CallAsync("CreateStream", new Sluice.Protocol.Api.CreateStreamRequest { Name = "wide", Subject = "wide", Partitions = n }, Sluice.Protocol.Api.CreateStreamResponse.Parser, TimeSpan.FromMinutes(5));
        Lap("create");
        await h.CallAsync("FetchMetadata", new Sluice.Protocol.Api.FetchMetadataRequest(), Sluice.Protocol.Api.FetchMetadataResponse.Parser, TimeSpan.FromMinutes(5));
        Lap("metadata");
        await h.CallAsync("PauseStream", new Sluice.Protocol.Api.PauseStreamRequest { Name = "wide" }, Sluice.Protocol.Api.PauseStreamResponse.Parser, TimeSpan.FromMinutes(5));
        Lap("pause");
        await h.CallAsync("SetStreamReadonly", new Sluice.Protocol.Api.SetStreamReadonlyRequest { Name = "wide", Readonly = true }, Sluice.Protocol.Api.SetStreamReadonlyResponse.Parser, TimeSpan.FromMinutes(5));
        Lap("readonly");
        await h.RestartAsync();
        Lap("restart");
        await h.CallAsync("DeleteStream", new Sluice.Protocol.Api.DeleteStreamRequest { Name = "wide" }, Sluice.Protocol.Api.DeleteStreamResponse.Parser, TimeSpan.FromMinutes(5));
        Lap("delete");
    }
}

public sealed class Timing2(ITestOutputHelper output)
{
    [Fact]
    public void PreOpen()
    {
        using var dir = new Sluice.TestKit.TempDirectory("t2");
        var budget = new Sluice.Storage.Log.Files.FileHandleBudget(1024);
        var opts = Sluice.Storage.Log.CommitLogOptions.Default with { FileHandles = budget };
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < 1000; i++) Sluice.Storage.Log.CommitLog.Open(Path.Combine(dir.Path, i.ToString())).Dispose();
        output.WriteLine($"open+dispose new: {sw.ElapsedMilliseconds} ms"); sw.Restart();
        var fresh = new List<Sluice.Storage.Log.CommitLog>();
        for (var i = 0; i < 1000; i++) fresh.Add(Sluice.Storage.Log.CommitLog.Open(Path.Combine(dir.Path, "n" + i.ToString())));
        output.WriteLine($"open new only: {sw.ElapsedMilliseconds} ms"); sw.Restart();
        foreach (var l in fresh) l.Dispose();
        output.WriteLine($"dispose new: {sw.ElapsedMilliseconds} ms"); sw.Restart();
        for (var i = 0; i < 1000; i++) Directory.CreateDirectory(Path.Combine(dir.Path, "d" + i.ToString()));
        output.WriteLine($"mkdir only: {sw.ElapsedMilliseconds} ms"); sw.Restart();
        var logs = new List<Sluice.Storage.Log.CommitLog>();
        for (var i = 0; i < 1000; i++) logs.Add(Sluice.Storage.Log.CommitLog.Open(Path.Combine(dir.Path, i.ToString())));
        output.WriteLine($"reopen: {sw.ElapsedMilliseconds} ms"); sw.Restart();
        foreach (var l in logs) l.Dispose();
        output.WriteLine($"dispose: {sw.ElapsedMilliseconds} ms"); sw.Restart();
    }
}
