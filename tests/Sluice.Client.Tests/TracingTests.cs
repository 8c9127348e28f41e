using System.Collections.Concurrent;
using System.Diagnostics;
using Sluice.Client.Tests.Fakes;
using Sluice.Protocol.Api;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>ActivityListeners are process-wide: these tests run alone so other tests' messages get no trace headers.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ClientTracingCollection
{
    public const string Name = "Client tracing";
}

/// <summary>The client's producer spans and the W3C trace context it sends (docs/operations.md "Traces").</summary>
[Collection(ClientTracingCollection.Name)]
public sealed class TracingTests
{
    private const string CallerName = "Sluice.Client.Tests.Caller";

    private static readonly ActivitySource Caller = new(CallerName);

    [Fact]
    public async Task A_publish_gets_a_producer_span_whose_context_travels_in_the_message_headers()
    {
        using var spans = new SpanRecorder();
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");

        SluiceAck? ack;
        ActivitySpanId callerId;
        using (var caller = Caller.StartActivity("caller"))
        {
            callerId = caller!.SpanId;
            ack = await client.PublishAsync("foo", Bytes("hello"), MessageOptions.Default.WithHeader("h", Bytes("v")) with { AckPolicy = AckPolicy.All });
        }

        var producer = Assert.Single(spans.Ended, s => s.Source.Name == ClientTracing.SourceName);
        Assert.Equal(ActivityKind.Producer, producer.Kind);
        Assert.Equal("publish foo", producer.DisplayName);
        Assert.Equal(callerId, producer.ParentSpanId);
        Assert.Equal("sluice", producer.GetTagItem("messaging.system"));
        Assert.Equal("foo", producer.GetTagItem("messaging.destination.name"));
        Assert.Equal("0", producer.GetTagItem("messaging.destination.partition.id"));
        Assert.Equal("send", producer.GetTagItem("messaging.operation.type"));
        Assert.Equal(5, producer.GetTagItem("messaging.message.body.size"));
        Assert.Equal(ack!.Offset, producer.GetTagItem("sluice.offset"));

        var request = Assert.Single(cluster.Requests<PublishRequest>("PublishAsync"));
        Assert.Equal(producer.Id, request.Headers[ClientTracing.TraceParentHeader].ToStringUtf8());
        Assert.StartsWith($"00-{producer.TraceId}-{producer.SpanId}-", producer.Id, StringComparison.Ordinal); // W3C traceparent
        Assert.Equal("v", request.Headers["h"].ToStringUtf8()); // the caller's headers are kept
    }

    [Fact]
    public async Task Without_a_listener_the_current_activity_is_sent_and_without_either_nothing_is_added()
    {
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");

        await client.PublishAsync("foo", Bytes("untraced"));
        string expected;
        using (var current = new Activity("caller").SetIdFormat(ActivityIdFormat.W3C).Start())
        {
            current.TraceStateString = "vendor=1";
            expected = current.Id!;
            await client.PublishAsync("foo", Bytes("in a caller's activity"));
        }

        var requests = cluster.Requests<PublishRequest>("PublishAsync");
        Assert.Equal(2, requests.Length);
        Assert.False(requests[0].Headers.ContainsKey(ClientTracing.TraceParentHeader));
        Assert.False(requests[0].Headers.ContainsKey(ClientTracing.TraceStateHeader));
        Assert.Equal(expected, requests[1].Headers[ClientTracing.TraceParentHeader].ToStringUtf8());
        Assert.Equal("vendor=1", requests[1].Headers[ClientTracing.TraceStateHeader].ToStringUtf8());
    }

    [Fact]
    public async Task The_callback_form_gives_each_message_a_create_span_and_a_callers_own_traceparent_wins()
    {
        using var spans = new SpanRecorder();
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("foo", "foo");

        var acked = new TaskCompletionSource();
        using (Caller.StartActivity("caller"))
        {
            var before = Activity.Current;
            await client.PublishAsync("foo", Bytes("a"), (_, _) => acked.TrySetResult());
            Assert.Same(before, Activity.Current); // the create span ended and gave the caller its activity back
        }

        await acked.Task.WaitAsync(TimeSpan.FromSeconds(10));
        const string Own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        await client.PublishAsync("foo", Bytes("b"), MessageOptions.Default.WithHeader(ClientTracing.TraceParentHeader, Bytes(Own)));

        var create = Assert.Single(spans.Ended, s => s.DisplayName == "create foo");
        Assert.Equal(ActivityKind.Producer, create.Kind);
        Assert.Equal("create", create.GetTagItem("messaging.operation.type"));
        var requests = cluster.Requests<PublishRequest>("PublishAsync");
        Assert.Equal(create.Id, requests[0].Headers[ClientTracing.TraceParentHeader].ToStringUtf8());
        Assert.Equal(Own, requests[1].Headers[ClientTracing.TraceParentHeader].ToStringUtf8());
    }

    [Fact]
    public async Task PublishToSubject_sends_the_context_in_the_call_metadata_and_in_the_message()
    {
        using var spans = new SpanRecorder();
        await using var cluster = await FakeCluster.StartAsync();
        await using var client = await ConnectAsync(cluster);
        await client.CreateStreamAsync("subject.a", "a");

        using (Caller.StartActivity("caller"))
        {
            await client.PublishToSubjectAsync("subject.a", Bytes("x"));
        }

        var producer = Assert.Single(spans.Ended, s => s.Source.Name == ClientTracing.SourceName);
        Assert.Equal("publish_to_subject subject.a", producer.DisplayName);
        var request = Assert.Single(cluster.Requests<PublishToSubjectRequest>("PublishToSubject"));
        Assert.Equal(producer.Id, request.Headers[ClientTracing.TraceParentHeader].ToStringUtf8());
        var (_, metadata) = Assert.Single(cluster.CallTraceParents);
        Assert.Equal(producer.Id, metadata);
    }

    /// <summary>Samples and records every span of the client and of the test's caller source.</summary>
    private sealed class SpanRecorder : IDisposable
    {
        private readonly ActivityListener _listener;
        private readonly ConcurrentQueue<Activity> _ended = new();

        public SpanRecorder()
        {
            _listener = new ActivityListener
            {
                ShouldListenTo = source => source.Name is ClientTracing.SourceName or CallerName,
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = _ended.Enqueue,
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public IReadOnlyList<Activity> Ended => [.. _ended];

        public void Dispose() => _listener.Dispose();
    }
}
