using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using Sluice.Client;
using Sluice.Server.Configuration;
using Sluice.Server.Monitoring;
using Sluice.Server.Tests.Cluster;
using ClientAckPolicy = Sluice.Client.AckPolicy;

namespace Sluice.Server.Tests.Monitoring;

/// <summary>
/// ActivityListeners are process-wide: the tracing tests run alone, so no other test's publishes add spans or turn
/// the "nobody listens" case into a listened one.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TracingCollection
{
    public const string Name = "Tracing";
}

/// <summary>Spans of a publish (docs/operations.md "Traces"): what they are, how they connect, sampling, export, and nothing when off.</summary>
[Collection(TracingCollection.Name)]
public sealed class TracingTests
{
    private const string CallerName = "Sluice.Tests.Caller";

    private static readonly ActivitySource Caller = new(CallerName);

    [Fact]
    public async Task A_publish_with_ack_policy_ALL_is_one_trace_from_the_client_through_append_and_replication_to_the_ack()
    {
        using var spans = new SpanRecorder(sampleServer: true);
        await using var cluster = await ClusterHarness.StartAsync(3);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("traced", replicationFactor: 3));
        await ClusterHarness.WaitForAsync(() => cluster.Leader("traced") is not null, "the stream has an open leader");
        var leadership = cluster.Leadership("traced");
        Assert.Equal(3, leadership.Isr.Count);
        await using var client = await SluiceClient.ConnectAsync(cluster.Brokers.Select(b => $"127.0.0.1:{b.Server.Port}"));

        SluiceAck? ack;
        ActivityTraceId traceId;
        ActivitySpanId rootId;
        using (var root = Caller.StartActivity("caller"))
        {
            Assert.NotNull(root);
            (traceId, rootId) = (root.TraceId, root.SpanId);
            ack = await client.PublishAsync("traced", "hello"u8.ToArray(), new MessageOptions { AckPolicy = ClientAckPolicy.All });
        }

        Assert.NotNull(ack);
        var followers = leadership.Replicas.Where(r => r != leadership.Leader).ToHashSet();
        await ClusterHarness.WaitForAsync(
            () => spans.Of(traceId).Count(s => s.DisplayName == "replicate traced" && Tag(s, "sluice.replication.role") == "follower") == 2
                && spans.Of(traceId).Any(s => s.DisplayName == "publish traced" && s.Source.Name == ServerTracing.SourceName),
            "both followers' copies and the leader's publish span ended");
        var trace = spans.Of(traceId);

        var producer = Assert.Single(trace, s => s.Source.Name == ClientTracing.SourceName);
        Assert.Equal(ActivityKind.Producer, producer.Kind);
        Assert.Equal("publish traced", producer.DisplayName);
        Assert.Equal(rootId, producer.ParentSpanId);
        Assert.Equal(ack.Offset, producer.GetTagItem("sluice.offset"));

        var publish = Assert.Single(trace, s => s.Source.Name == ServerTracing.SourceName && s.DisplayName == "publish traced");
        Assert.Equal(ActivityKind.Server, publish.Kind);
        Assert.Equal(producer.SpanId, publish.ParentSpanId); // continued from the traceparent header the client added
        Assert.Equal("sluice", Tag(publish, "messaging.system"));
        Assert.Equal("traced", Tag(publish, "messaging.destination.name"));
        Assert.Equal("0", Tag(publish, "messaging.destination.partition.id"));
        Assert.Equal(5, publish.GetTagItem("messaging.message.body.size"));
        Assert.Equal("publish", Tag(publish, "messaging.operation.name"));
        Assert.Equal("all", Tag(publish, "sluice.ack_policy"));
        Assert.Equal(leadership.Leader, Tag(publish, ServerTracing.BrokerIdTag));
        Assert.Equal(ActivityStatusCode.Unset, publish.Status);

        var append = Assert.Single(trace, s => s.DisplayName == "append traced");
        Assert.Equal(publish.SpanId, append.ParentSpanId);
        Assert.Equal(ack.Offset, append.GetTagItem("sluice.offset.first"));
        Assert.Equal(leadership.Leader, Tag(append, ServerTracing.BrokerIdTag));

        var wait = Assert.Single(trace, s => s.DisplayName == "replicate traced" && Tag(s, "sluice.replication.role") == "leader");
        Assert.Equal(publish.SpanId, wait.ParentSpanId);
        Assert.Equal(ack.Offset, wait.GetTagItem("sluice.offset"));
        Assert.Equal(3, wait.GetTagItem("sluice.isr.size"));
        Assert.True((long)wait.GetTagItem("sluice.high_watermark")! >= ack.Offset);

        var acked = Assert.Single(trace, s => s.DisplayName == "ack traced");
        Assert.Equal(publish.SpanId, acked.ParentSpanId);
        Assert.Equal(ack.Offset, acked.GetTagItem("sluice.offset"));
        Assert.Equal(leadership.Leader, Tag(acked, ServerTracing.BrokerIdTag));

        // Order: the append, then the wait for the ISR, then the ack, all within the publish.
        Assert.True(wait.StartTimeUtc >= append.StartTimeUtc);
        Assert.True(acked.StartTimeUtc >= wait.StartTimeUtc + wait.Duration);
        Assert.True(publish.StartTimeUtc + publish.Duration >= acked.StartTimeUtc + acked.Duration);

        // Each follower's copy joins the trace as a child of the leader's publish span, whose context came with the records.
        var copies = trace.Where(s => s.DisplayName == "replicate traced" && Tag(s, "sluice.replication.role") == "follower").ToList();
        Assert.Equal(followers, copies.Select(c => Tag(c, ServerTracing.BrokerIdTag)!).ToHashSet());
        Assert.All(copies, c =>
        {
            Assert.Equal(ActivityKind.Consumer, c.Kind);
            Assert.Equal(publish.SpanId, c.ParentSpanId);
            Assert.Equal(leadership.Leader, Tag(c, "sluice.replication.leader"));
            Assert.True((long)c.GetTagItem("sluice.offset.first")! <= ack.Offset && ack.Offset <= (long)c.GetTagItem("sluice.offset.last")!);
        });
    }

    [Fact]
    public async Task A_publish_the_leader_sampled_itself_reaches_the_followers_spans_through_the_fetch()
    {
        using var spans = new SpanRecorder(sampleServer: true);
        await using var cluster = await ClusterHarness.StartAsync(3, o => o with { Monitor = o.Monitor with { TraceSampleRatio = 1 } });
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("self-sampled", replicationFactor: 3));
        await ClusterHarness.WaitForAsync(() => cluster.Leader("self-sampled") is not null, "the stream has an open leader");
        var leader = cluster.Leader("self-sampled")!;

        var ack = await leader.PublishAsync("self-sampled", "no client context", policy: Protocol.Api.AckPolicy.All); // no Activity.Current: a root
        Assert.NotNull(ack);
        Activity? publish = null;
        await ClusterHarness.WaitForAsync(
            () => (publish = spans.All.FirstOrDefault(s => s.DisplayName == "publish self-sampled" && s.GetTagItem("sluice.offset") is long o && o == ack.Offset)) is not null
                && spans.Of(publish.TraceId).Count(s => Tag(s, "sluice.replication.role") == "follower") == 2,
            "the publish span and both followers' copies ended");
        Assert.Equal(default, publish!.ParentSpanId);
        Assert.All(spans.Of(publish.TraceId).Where(s => Tag(s, "sluice.replication.role") == "follower"), c => Assert.Equal(publish.SpanId, c.ParentSpanId));
    }

    [Fact]
    public async Task A_publish_forwarded_to_the_leader_continues_the_receiving_brokers_span()
    {
        using var spans = new SpanRecorder(sampleServer: true);
        await using var cluster = await ClusterHarness.StartAsync(2);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("forwarded", replicationFactor: 1));
        await ClusterHarness.WaitForAsync(() => cluster.Leader("forwarded") is not null, "the stream has an open leader");
        var leader = cluster.Leader("forwarded")!;
        var other = cluster.Brokers.Single(b => b != leader);

        ActivityTraceId traceId;
        using (var caller = Caller.StartActivity("caller"))
        {
            traceId = caller!.TraceId;
            Assert.NotNull(await other.PublishAsync("forwarded", "via the other broker"));
        }

        await ClusterHarness.WaitForAsync(() => spans.Of(traceId).Count(s => s.DisplayName == "publish forwarded") == 2, "both brokers' publish spans ended");
        var trace = spans.Of(traceId);
        var received = Assert.Single(trace, s => s.DisplayName == "publish forwarded" && Tag(s, ServerTracing.BrokerIdTag) == other.Server.ServerId);
        var led = Assert.Single(trace, s => s.DisplayName == "publish forwarded" && Tag(s, ServerTracing.BrokerIdTag) == leader.Server.ServerId);
        Assert.Equal(received.SpanId, led.ParentSpanId);
        Assert.Equal(led.SpanId, Assert.Single(trace, s => s.DisplayName == "append forwarded").ParentSpanId);
    }

    [Fact]
    public async Task A_message_captured_from_NATS_continues_the_traceparent_in_its_NATS_headers()
    {
        using var spans = new SpanRecorder(sampleServer: true);
        await using var h = await Nats.NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("captured", "captured.sub");

        var traceId = ActivityTraceId.CreateRandom();
        var publisherSpan = ActivitySpanId.CreateRandom();
        var headers = new NATS.Client.Core.NatsHeaders { [ServerTracing.TraceParentHeader] = $"00-{traceId}-{publisherSpan}-01" };
        await h.Client.PublishAsync("captured.sub", "plain"u8.ToArray(), headers: headers);
        await h.WaitForNewestOffsetAsync("captured", 0);
        await ClusterHarness.WaitForAsync(() => spans.Of(traceId).Any(s => s.DisplayName == "append captured"), "the append span ended");

        var trace = spans.Of(traceId);
        var receive = Assert.Single(trace, s => s.DisplayName == "receive captured");
        Assert.Equal(ActivityKind.Consumer, receive.Kind);
        Assert.Equal(publisherSpan, receive.ParentSpanId);
        Assert.Equal("receive", Tag(receive, "messaging.operation.name"));
        Assert.Equal(h.Broker.Server.ServerId, Tag(receive, ServerTracing.BrokerIdTag));
        Assert.Equal(receive.SpanId, Assert.Single(trace, s => s.DisplayName == "append captured").ParentSpanId);
    }

    [Fact]
    public async Task A_traceparent_in_the_call_metadata_is_continued_by_the_server()
    {
        using var spans = new SpanRecorder(sampleServer: true);
        await using var h = await BrokerHarness.StartAsync();
        await h.CreateStreamAsync("metadata-traced", "metadata-traced.subject");

        ActivityTraceId traceId;
        ActivitySpanId callerId;
        Protocol.Api.Ack? ack;
        using (var caller = Caller.StartActivity("caller"))
        {
            Assert.NotNull(caller);
            (traceId, callerId) = (caller.TraceId, caller.SpanId);
            ack = await h.PublishAsync("metadata-traced", "value"); // unary Publish: the channel puts the caller's context in the metadata
        }

        Assert.NotNull(ack);
        var trace = spans.Of(traceId);
        var publish = Assert.Single(trace, s => s.DisplayName == "publish metadata-traced");
        Assert.Equal(callerId, publish.ParentSpanId);
        Assert.True(publish.HasRemoteParent);
        Assert.Equal(h.Server.ServerId, Tag(publish, ServerTracing.BrokerIdTag));
        Assert.Equal(publish.SpanId, Assert.Single(trace, s => s.DisplayName == "append metadata-traced").ParentSpanId);
        Assert.Equal(publish.SpanId, Assert.Single(trace, s => s.DisplayName == "ack metadata-traced").ParentSpanId);
        Assert.DoesNotContain(trace, s => s.DisplayName.StartsWith("replicate", StringComparison.Ordinal)); // a single node has no followers
    }

    [Fact]
    public async Task The_sample_ratio_applies_to_publishes_without_a_parent_and_a_sampled_parent_is_always_followed()
    {
        await using var collector = await OtlpReceiver.StartAsync("/v1/traces");
        using var spans = new SpanRecorder(sampleServer: false); // only the server's own provider decides
        await using var h = await BrokerHarness.StartAsync(o => WithTraces(o, collector.Port, ratio: 0));
        await h.CreateStreamAsync("sampled", "sampled.subject");

        Assert.NotNull(await h.PublishAsync("sampled", "no parent"));
        Assert.DoesNotContain(spans.All, s => s.Source.Name == ServerTracing.SourceName);

        ActivityTraceId traceId;
        using (var caller = Caller.StartActivity("caller"))
        {
            traceId = caller!.TraceId;
            Assert.NotNull(await h.PublishAsync("sampled", "sampled parent"));
        }

        Assert.Contains(spans.Of(traceId), s => s.DisplayName == "publish sampled");
        Assert.Contains(spans.Of(traceId), s => s.DisplayName == "ack sampled");
        Assert.All(spans.All.Where(s => s.Source.Name == ServerTracing.SourceName), s => Assert.Equal(traceId, s.TraceId));
    }

    [Fact]
    public async Task Spans_are_exported_to_an_OTLP_HTTP_collector()
    {
        await using var collector = await OtlpReceiver.StartAsync("/v1/traces");
        await using var h = await BrokerHarness.StartAsync(o => WithTraces(o, collector.Port, ratio: 1));
        await h.CreateStreamAsync("exported", "exported.subject");
        Assert.NotNull(await h.PublishAsync("exported", "one"));

        // Span names, attribute keys and string values travel as UTF-8 in the protobuf body.
        await ClusterHarness.WaitForAsync(
            () => collector.Bodies.Any(b => Contains(b, "publish exported") && Contains(b, "append exported") && Contains(b, "ack exported")),
            "the collector received the publish, append and ack spans");
        var body = collector.Bodies.First(b => Contains(b, "publish exported"));
        Assert.True(Contains(body, ServerTracing.BrokerIdTag) && Contains(body, h.Server.ServerId));
        Assert.True(Contains(body, "service.instance.id") && Contains(body, "messaging.destination.name"));
        Assert.All(collector.ContentTypes, t => Assert.Equal("application/x-protobuf", t));
    }

    [Fact]
    public async Task With_traces_off_nothing_listens_and_no_span_is_started()
    {
        int deadPort;
        using (var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            deadPort = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        // OTLP metrics on, traces not asked for.
        await using (var h = await BrokerHarness.StartAsync(o => o with
        {
            Monitor = o.Monitor with { OtlpEndpoint = new Uri($"http://127.0.0.1:{deadPort}"), OtlpProtocol = OtlpProtocol.HttpProtobuf },
        }))
        {
            Assert.Null(h.Server.Metrics.Traces);
            Assert.False(ServerTracing.Source.HasListeners());
            await h.CreateStreamAsync("untraced", "untraced.subject");
            using (var caller = new Activity("caller").Start()) // a context in hand is not a listener: still no span
            {
                Assert.NotNull(await h.PublishAsync("untraced", "one"));
                Assert.Null(ServerTracing.Source.StartActivity("probe"));
            }
        }

        // The same with traces on: the provider is what listens, and it stops listening with the server.
        await using (var h = await BrokerHarness.StartAsync(o => WithTraces(o, deadPort, ratio: 1)))
        {
            Assert.NotNull(h.Server.Metrics.Traces);
            Assert.True(ServerTracing.Source.HasListeners());
        }

        Assert.False(ServerTracing.Source.HasListeners());
    }

    private static ServerOptions WithTraces(ServerOptions o, int port, double ratio) => o with
    {
        Monitor = o.Monitor with
        {
            OtlpEndpoint = new Uri($"http://127.0.0.1:{port}"),
            OtlpProtocol = OtlpProtocol.HttpProtobuf,
            OtlpTraces = true,
            TraceSampleRatio = ratio,
        },
    };

    private static string? Tag(Activity activity, string name) => activity.GetTagItem(name)?.ToString();

    private static bool Contains(byte[] body, string text) => body.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;

    /// <summary>Records every ended span of the client, the server and the test's caller source.</summary>
    private sealed class SpanRecorder : IDisposable
    {
        private readonly ActivityListener _listener;
        private readonly ConcurrentQueue<Activity> _ended = new();

        /// <param name="sampleServer">Record every server span (as an in-process listener would); false leaves the decision to the server's own provider.</param>
        public SpanRecorder(bool sampleServer)
        {
            _listener = new ActivityListener
            {
                ShouldListenTo = source => source.Name is ServerTracing.SourceName or ClientTracing.SourceName or CallerName,
                Sample = (ref ActivityCreationOptions<ActivityContext> options) =>
                    sampleServer || options.Source.Name != ServerTracing.SourceName ? ActivitySamplingResult.AllDataAndRecorded : ActivitySamplingResult.None,
                ActivityStopped = _ended.Enqueue,
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public IReadOnlyList<Activity> All => [.. _ended];

        public IReadOnlyList<Activity> Of(ActivityTraceId traceId) => [.. _ended.Where(a => a.TraceId == traceId)];

        public void Dispose() => _listener.Dispose();
    }
}
