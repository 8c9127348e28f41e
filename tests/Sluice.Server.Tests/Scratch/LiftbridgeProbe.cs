using Google.Protobuf;
using Sluice.Client.Grpc;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Xunit.Abstractions;

namespace Sluice.Server.Tests.Scratch;

public sealed class LiftbridgeProbe(ITestOutputHelper output)
{
    [Fact]
    public async Task Probe()
    {
        var port = Environment.GetEnvironmentVariable("LB_PORT");
        if (port is null) return;
        await RunAsync(port);
    }

    [Fact]
    public async Task ProbeSluice()
    {
        await using var h = await BrokerHarness.StartAsync(o => o with { Activity = o.Activity with { Enabled = true } });
        await RunAsync(h.Server.Port.ToString());
    }

    private async Task RunAsync(string port)
    {
        using var ch = new GrpcChannel(new Uri($"http://127.0.0.1:{port}"));
        var t = TimeSpan.FromSeconds(10);
        async Task<string> Try(Func<Task> a) { try { await a(); return "OK"; } catch (GrpcException e) { return $"{e.StatusCode} \"{e.Detail}\""; } }
        Task<TResp> Call<TReq, TResp>(string m, TReq r, MessageParser<TResp> p) where TReq : class, IMessage<TReq> where TResp : class, IMessage<TResp> => ch.UnaryAsync("/proto.API/" + m, r, p, t);
        async Task<PartitionMetadata> PM(string s, int p) => (await Call("FetchMetadata", new FetchMetadataRequest { Streams = { s } }, FetchMetadataResponse.Parser)).StreamMetadata[0].Partitions[p];
        var suffix = DateTime.UtcNow.Ticks.ToString()[^6..];
        string S(string n) => n + suffix;

        output.WriteLine("pause missing no parts: " + await Try(() => Call("PauseStream", new PauseStreamRequest { Name = "missing" }, PauseStreamResponse.Parser)));
        output.WriteLine("pause missing parts [0]: " + await Try(() => Call("PauseStream", new PauseStreamRequest { Name = "missing", Partitions = { 0 } }, PauseStreamResponse.Parser)));
        output.WriteLine("readonly missing no parts: " + await Try(() => Call("SetStreamReadonly", new SetStreamReadonlyRequest { Name = "missing", Readonly = true }, SetStreamReadonlyResponse.Parser)));
        output.WriteLine("readonly missing parts [0]: " + await Try(() => Call("SetStreamReadonly", new SetStreamReadonlyRequest { Name = "missing", Readonly = true, Partitions = { 0 } }, SetStreamReadonlyResponse.Parser)));

        var rf = S("rf");
        await Call("CreateStream", new CreateStreamRequest { Name = rf, Subject = rf, Partitions = 1 }, CreateStreamResponse.Parser);
        await Task.Delay(500);
        await Call("SetStreamReadonly", new SetStreamReadonlyRequest { Name = rf, Readonly = false }, SetStreamReadonlyResponse.Parser);
        output.WriteLine($"rf false first: {(await PM(rf, 0)).ReadonlyTimestamps}");
        // readonly false timestamps
        var ro = S("ro");
        await Call("CreateStream", new CreateStreamRequest { Name = ro, Subject = ro, Partitions = 1 }, CreateStreamResponse.Parser);
        await Task.Delay(500);
        var m0 = await PM(ro, 0);
        output.WriteLine($"ro initial: {m0.ReadonlyTimestamps}");
        await Call("SetStreamReadonly", new SetStreamReadonlyRequest { Name = ro, Readonly = true }, SetStreamReadonlyResponse.Parser);
        var m1 = await PM(ro, 0);
        output.WriteLine($"ro true: ro={m1.Readonly} {m1.ReadonlyTimestamps}");
        await Task.Delay(50);
        await Call("SetStreamReadonly", new SetStreamReadonlyRequest { Name = ro, Readonly = false }, SetStreamReadonlyResponse.Parser);
        var m2 = await PM(ro, 0);
        output.WriteLine($"ro false: ro={m2.Readonly} {m2.ReadonlyTimestamps}");
        await Task.Delay(50);
        await Call("SetStreamReadonly", new SetStreamReadonlyRequest { Name = ro, Readonly = false }, SetStreamReadonlyResponse.Parser);
        var m3 = await PM(ro, 0);
        output.WriteLine($"ro false again: ro={m3.Readonly} {m3.ReadonlyTimestamps}");
        // pause timestamps on resume
        await Call("PauseStream", new PauseStreamRequest { Name = ro }, PauseStreamResponse.Parser);
        var p1 = await PM(ro, 0);
        output.WriteLine($"paused: {p1.Paused} {p1.PauseTimestamps}");

        // resumeAll by publish
        var ra = S("ra");
        await Call("CreateStream", new CreateStreamRequest { Name = ra, Subject = ra, Partitions = 3 }, CreateStreamResponse.Parser);
        await Task.Delay(500);
        await Call("PauseStream", new PauseStreamRequest { Name = ra, ResumeAll = true }, PauseStreamResponse.Parser);
        output.WriteLine("ra pub p1: " + await Try(() => Call("Publish", new PublishRequest { Stream = ra, Partition = 1, Value = ByteString.CopyFromUtf8("x"), AckPolicy = AckPolicy.Leader }, PublishResponse.Parser)));
        for (var i = 0; i < 3; i++) output.WriteLine($"ra p{i} paused={(await PM(ra, i)).Paused}");

        // resumeAll by subscribe resume
        var rs = S("rs");
        await Call("CreateStream", new CreateStreamRequest { Name = rs, Subject = rs, Partitions = 3 }, CreateStreamResponse.Parser);
        await Task.Delay(500);
        await Call("PauseStream", new PauseStreamRequest { Name = rs, ResumeAll = true }, PauseStreamResponse.Parser);
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            await using var call = ch.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = rs, Partition = 2, Resume = true, StartPosition = StartPosition.Earliest }, Message.Parser, cancellationToken: cts.Token);
            output.WriteLine("rs sub first frame: " + await Try(async () => await call.MoveNextAsync()));
        }
        for (var i = 0; i < 3; i++) output.WriteLine($"rs p{i} paused={(await PM(rs, i)).Paused}");
        // subscribe without resume to paused
        await Call("PauseStream", new PauseStreamRequest { Name = rs, Partitions = { 0 } }, PauseStreamResponse.Parser);
        // resumeAll partial pause: pause p0 only with resumeAll; then p1 paused separately w/o resumeAll; publish to p0
        var rp = S("rp");
        await Call("CreateStream", new CreateStreamRequest { Name = rp, Subject = rp, Partitions = 3 }, CreateStreamResponse.Parser);
        await Task.Delay(500);
        await Call("PauseStream", new PauseStreamRequest { Name = rp, Partitions = { 0, 1 }, ResumeAll = true }, PauseStreamResponse.Parser);
        await Call("PauseStream", new PauseStreamRequest { Name = rp, Partitions = { 2 }, ResumeAll = false }, PauseStreamResponse.Parser);
        output.WriteLine("rp pub p0: " + await Try(() => Call("Publish", new PublishRequest { Stream = rp, Partition = 0, Value = ByteString.CopyFromUtf8("x"), AckPolicy = AckPolicy.Leader }, PublishResponse.Parser)));
        for (var i = 0; i < 3; i++) output.WriteLine($"rp p{i} paused={(await PM(rp, i)).Paused}");
        await Task.Delay(2000);
        for (var i = 0; i < 3; i++) output.WriteLine($"later ra p{i} paused={(await PM(ra, i)).Paused} rs p{i} paused={(await PM(rs, i)).Paused} rp p{i} paused={(await PM(rp, i)).Paused}");

        // oversized unary NONE
        output.WriteLine("big NONE: " + await Try(() => Call("Publish", new PublishRequest { Stream = ra, Partition = 0, Value = ByteString.CopyFrom(new byte[2 * 1024 * 1024]), AckPolicy = AckPolicy.None }, PublishResponse.Parser)));
        output.WriteLine("big LEADER: " + await Try(() => Call("Publish", new PublishRequest { Stream = ra, Partition = 0, Value = ByteString.CopyFrom(new byte[1024 * 1024 + 10]), AckPolicy = AckPolicy.Leader }, PublishResponse.Parser)));
        output.WriteLine("big toSubject NONE: " + await Try(() => Call("PublishToSubject", new PublishToSubjectRequest { Subject = ra, Value = ByteString.CopyFrom(new byte[1024 * 1024 + 10]), AckPolicy = AckPolicy.None }, PublishToSubjectResponse.Parser)));
        output.WriteLine("big toSubject LEADER: " + await Try(() => Call("PublishToSubject", new PublishToSubjectRequest { Subject = ra, Value = ByteString.CopyFrom(new byte[1024 * 1024 + 10]), AckPolicy = AckPolicy.Leader }, PublishToSubjectResponse.Parser)));

        // activity
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3)))
        {
            await using var call = ch.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "__activity", StartPosition = StartPosition.Earliest }, Message.Parser, cancellationToken: cts.Token);
            try
            {
                var first = true;
                while (await call.MoveNextAsync())
                {
                    if (first) { first = false; continue; }
                    var e = ActivityStreamEvent.Parser.ParseFrom(call.Current.Value);
                    output.WriteLine($"activity {e.Id} {e.Op} {e}");
                }
            }
            catch (Exception ex) { output.WriteLine("activity end " + ex.GetType().Name); }
        }
    }
}
