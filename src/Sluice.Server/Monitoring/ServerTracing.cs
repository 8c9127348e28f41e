using System.Diagnostics;
using Sluice.Server.Grpc;
using Sluice.Server.Streams;
using Sluice.Storage.Log;

namespace Sluice.Server.Monitoring;

/// <summary>
/// The broker's spans (ActivitySource "Sluice.Server", docs/operations.md "Traces"): a publish received, the batch
/// append that stored it, the leader's wait for the ISR, a follower's copy, and the ack. Every span carries
/// <see cref="BrokerIdTag"/>, since one process may host several brokers (tests, benchmarks).
/// </summary>
/// <remarks>
/// Cost: with no listener (no TracerProvider, no ActivityListener) <see cref="ActivitySource.HasListeners"/> is false
/// and every method here returns before allocating anything. With one, a publish asks the sampler once; only a
/// sampled publish (a <see cref="PublishItem.Trace"/> that is not null) makes the append, replication and ack spans.
/// </remarks>
internal static class ServerTracing
{
    public const string SourceName = "Sluice.Server";

    public const string BrokerIdTag = "sluice.broker.id";

    /// <summary>W3C trace context, in gRPC metadata and in message headers.</summary>
    public const string TraceParentHeader = "traceparent";

    public const string TraceStateHeader = "tracestate";

    public static readonly ActivitySource Source = new(SourceName, typeof(ServerTracing).Assembly.GetName().Version?.ToString());

    /// <summary>Whether anything listens; checked first on every path so tracing off costs one volatile read.</summary>
    public static bool Enabled => Source.HasListeners();

    /// <summary>
    /// The parent a publish continues: the call's <c>traceparent</c> metadata (a unary call: a client instrumented at
    /// the gRPC layer, or a broker forwarding a publish to the leader), else the message's own <c>traceparent</c>
    /// header (what the .NET client adds; it travels with the message, so it also reaches followers and consumers),
    /// else none.
    /// </summary>
    public static ActivityContext ParentOf(RecordHeader[] headers, GrpcCallContext? call)
    {
        if (call?.RequestHeader(TraceParentHeader) is { } traceParent
            && ActivityContext.TryParse(traceParent, call.RequestHeader(TraceStateHeader), isRemote: true, out var fromCall))
        {
            return fromCall;
        }

        return TryParse(headers, out var fromMessage) ? fromMessage : default;
    }

    /// <summary>The W3C context in a message's <c>traceparent</c>/<c>tracestate</c> headers.</summary>
    public static bool TryParse(IReadOnlyList<RecordHeader>? headers, out ActivityContext context)
    {
        context = default;
        if (headers is null)
        {
            return false;
        }

        string? parent = null;
        string? state = null;
        for (var i = 0; i < headers.Count; i++)
        {
            var header = headers[i];
            if (header.Name == TraceParentHeader)
            {
                parent = System.Text.Encoding.ASCII.GetString(header.Value.Span);
            }
            else if (header.Name == TraceStateHeader)
            {
                state = System.Text.Encoding.ASCII.GetString(header.Value.Span);
            }
        }

        return parent is not null && ActivityContext.TryParse(parent, state, isRemote: true, out context);
    }

    /// <summary>
    /// Starts the server span of one publish (kind Server: the broker serves a client's call; Consumer for a message
    /// captured from NATS) and leaves
    /// <see cref="Activity.Current"/> as it was, since the span outlives this call (it ends with the ack).
    /// Null when nothing listens or the sampler drops it.
    /// </summary>
    /// <remarks>
    /// Sampling happens here, before anything is allocated: a publish with a parent follows the parent's sampled flag,
    /// one without starts a trace at <paramref name="rootRatio"/> (`monitor.otlp.traces.sample.ratio`). Left to the
    /// OpenTelemetry sampler, a dropped publish would still allocate a propagation-only Activity.
    /// </remarks>
    public static Activity? StartPublish(string brokerId, Partition partition, PublishItem item, ActivityContext parent, string operation, double rootRatio, ActivityKind kind = ActivityKind.Server)
    {
        if (parent == default
            ? rootRatio <= 0 || (rootRatio < 1 && Random.Shared.NextDouble() >= rootRatio)
            : (parent.TraceFlags & ActivityTraceFlags.Recorded) == 0)
        {
            return null;
        }

        // Server: a client's call served; Consumer: a message taken from a NATS subject ("receive <stream>").
        var activity = StartSpan((kind == ActivityKind.Consumer ? "receive " : "publish ") + partition.Stream.Name, kind, parent, brokerId, partition);
        if (activity is null)
        {
            return null;
        }

        if (!activity.Recorded)
        {
            activity.Stop(); // a listener asked only for propagation: nothing downstream needs this one
            return null;
        }

        if (activity.IsAllDataRequested)
        {
            activity.SetTag("messaging.operation.name", operation);
            activity.SetTag("messaging.operation.type", "receive");
            activity.SetTag("messaging.message.body.size", item.Value?.Length ?? 0);
            activity.SetTag("sluice.ack_policy", AckPolicyName(item.AckPolicy));
            if (item.CorrelationId.Length > 0)
            {
                activity.SetTag("messaging.message.conversation_id", item.CorrelationId);
            }

        }

        return activity;
    }

    /// <summary>
    /// One span per append batch, when at least one of its messages is traced: the child of the first traced
    /// message's publish span, linked to the others' (a batch mixes messages of many calls and traces).
    /// </summary>
    public static Activity? StartAppend(string brokerId, Partition partition, PublishItem[] items, int n)
    {
        var first = -1;
        var traced = 0;
        for (var i = 0; i < n; i++)
        {
            if (items[i]?.Trace is not null)
            {
                first = first < 0 ? i : first;
                traced++;
            }
        }

        if (first < 0)
        {
            return null;
        }

        List<ActivityLink>? links = null;
        if (traced > 1)
        {
            links = new List<ActivityLink>(traced - 1);
            for (var i = first + 1; i < n; i++)
            {
                if (items[i]?.Trace is { } other)
                {
                    links.Add(new ActivityLink(other.Context));
                }
            }
        }

        var activity = StartSpan("append " + partition.Stream.Name, ActivityKind.Internal, items[first].Trace!.Context, brokerId, partition, links);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("messaging.batch.message_count", n);
            activity.SetTag("sluice.batch.traced_count", traced);
        }

        return activity;
    }

    /// <summary>Records where a batch landed (or why it failed) and ends its span.</summary>
    public static void EndAppend(Activity? append, long firstOffset, int count, Exception? error)
    {
        if (append is null)
        {
            return;
        }

        if (error is not null)
        {
            append.SetStatus(ActivityStatusCode.Error, error.Message);
            append.AddException(error);
        }
        else if (count > 0)
        {
            append.SetTag("sluice.offset.first", firstOffset);
            append.SetTag("sluice.offset.last", firstOffset + count - 1);
        }

        append.Stop();
    }

    /// <summary>
    /// The leader's wait for the ISR to hold a message with ack policy ALL (a child of its publish span), from the
    /// append until the high watermark covers it. Null for an untraced message.
    /// </summary>
    public static Activity? StartReplicaWait(string brokerId, Partition partition, PublishItem item, long offset, int isrSize)
    {
        if (item.Trace is not { } publish)
        {
            return null;
        }

        var activity = StartSpan("replicate " + partition.Stream.Name, ActivityKind.Internal, publish.Context, brokerId, partition);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("sluice.offset", offset);
            activity.SetTag("sluice.isr.size", isrSize);
            activity.SetTag("sluice.replication.role", "leader");
        }

        return activity;
    }

    /// <summary>Ends the ISR wait: committed (with the high watermark that released it) or failed.</summary>
    public static void EndReplicaWait(Activity? wait, long highWatermark, string? failure)
    {
        if (wait is null)
        {
            return;
        }

        if (failure is not null)
        {
            wait.SetStatus(ActivityStatusCode.Error, failure);
        }
        else
        {
            wait.SetTag("sluice.high_watermark", highWatermark);
        }

        wait.Stop();
    }

    /// <summary>
    /// A follower wrote records copied from the leader. One span (kind Consumer) is the child of the first traced
    /// message's context and links the rest: the contexts the leader sent with the records (its publish spans), or,
    /// from a leader that sent none, the messages' own <c>traceparent</c> headers. Otherwise no span.
    /// </summary>
    public static Activity? StartFollowerCopy(string brokerId, Partition partition, ReadOnlySpan<LogRecord> records, IReadOnlyList<Sluice.Protocol.Internal.TracedRecord> traced, string leader)
    {
        ActivityContext parent = default;
        List<ActivityLink>? links = null;
        for (var i = 0; i < traced.Count; i++)
        {
            if (!ActivityContext.TryParse(traced[i].Traceparent, traced[i].Tracestate.Length > 0 ? traced[i].Tracestate : null, isRemote: true, out var context))
            {
                continue;
            }

            if (parent == default)
            {
                parent = context;
            }
            else
            {
                (links ??= []).Add(new ActivityLink(context));
            }
        }

        // The leader's contexts, when it sent any, are the publishes' own spans: better parents than the headers.
        foreach (ref readonly var record in traced.Count > 0 ? ReadOnlySpan<LogRecord>.Empty : records)
        {
            if (!TryParse(record.Headers, out var context))
            {
                continue;
            }

            if (parent == default)
            {
                parent = context;
            }
            else if (context.TraceId != parent.TraceId || context.SpanId != parent.SpanId)
            {
                (links ??= []).Add(new ActivityLink(context));
            }
        }

        if (parent == default)
        {
            return null;
        }

        var activity = StartSpan("replicate " + partition.Stream.Name, ActivityKind.Consumer, parent, brokerId, partition, links);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("messaging.operation.type", "receive");
            activity.SetTag("messaging.batch.message_count", records.Length);
            activity.SetTag("sluice.offset.first", records[0].Offset);
            activity.SetTag("sluice.offset.last", records[^1].Offset);
            activity.SetTag("sluice.replication.role", "follower");
            activity.SetTag("sluice.replication.leader", leader);
        }

        return activity;
    }

    /// <summary>
    /// The ack of a traced message: a short span (a child of its publish span) around handing the ack to the
    /// connection that sends it. Returns null for an untraced message.
    /// </summary>
    public static Activity? StartAck(string brokerId, Partition partition, PublishItem item, long offset, out Activity? publish)
    {
        // The publish span leaves the item here and ends after the ack span (EndAck), so the ack nests inside it
        // whichever receiver sends the ack.
        publish = item.TakeTrace();
        if (publish is null)
        {
            return null;
        }

        publish.SetTag("sluice.offset", offset);
        var activity = StartSpan("ack " + partition.Stream.Name, ActivityKind.Internal, publish.Context, brokerId, partition);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("messaging.operation.name", "ack");
            activity.SetTag("messaging.operation.type", "settle");
            activity.SetTag("sluice.offset", offset);
            activity.SetTag("sluice.ack_policy", AckPolicyName(item.AckPolicy));
        }

        return activity;
    }

    /// <summary>Ends the ack span, then the publish span it belongs to.</summary>
    public static void EndAck(Activity? ack, Activity? publish)
    {
        ack?.Stop();
        publish?.Stop();
    }

    /// <summary>Ends a publish span; an error (a refusal, an exception) marks it failed.</summary>
    public static void EndPublish(PublishItem item, string? error = null)
    {
        var activity = item.TakeTrace(); // ended once, whichever path gets here first
        if (activity is null)
        {
            return;
        }

        if (error is not null)
        {
            activity.SetStatus(ActivityStatusCode.Error, error);
        }

        activity.Stop();
    }

    /// <summary>
    /// Starts a span of this broker on <paramref name="partition"/> with the tags every span here carries, without making
    /// it the current activity (the threads that start these serve many messages); null when nobody records it.
    /// </summary>
    private static Activity? StartSpan(string name, ActivityKind kind, ActivityContext parent, string brokerId, Partition partition, IEnumerable<ActivityLink>? links = null)
    {
        var previous = Activity.Current;
        var activity = Source.StartActivity(name, kind, parent, links: links);
        Activity.Current = previous;
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("messaging.system", "sluice");
            activity.SetTag("messaging.destination.name", partition.Stream.Name);
            activity.SetTag("messaging.destination.partition.id", partition.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            activity.SetTag(BrokerIdTag, brokerId);
        }

        return activity;
    }

    private static string AckPolicyName(Sluice.Protocol.Api.AckPolicy policy) => policy switch
    {
        Sluice.Protocol.Api.AckPolicy.Leader => "leader",
        Sluice.Protocol.Api.AckPolicy.All => "all",
        _ => "none",
    };
}
