using System.Diagnostics;
using System.Net.Http.Headers;

namespace Sluice.Client;

/// <summary>
/// The client's spans (ActivitySource "Sluice.Client") and W3C trace context propagation: a producer span per publish,
/// whose context travels in the message's <c>traceparent</c>/<c>tracestate</c> headers (publishes share one long-lived
/// PublishAsync stream, so call metadata cannot carry a context per message), and, on unary calls, the current
/// activity's context in the call's metadata. Nothing is added when nothing traces: no listener and no
/// <see cref="Activity.Current"/>.
/// </summary>
public static class ClientTracing
{
    /// <summary>The ActivitySource name to subscribe to (e.g. <c>AddSource("Sluice.Client")</c> in OpenTelemetry).</summary>
    public const string SourceName = "Sluice.Client";

    /// <summary>The W3C trace context header names, in messages and in call metadata.</summary>
    public const string TraceParentHeader = "traceparent";

    /// <inheritdoc cref="TraceParentHeader"/>
    public const string TraceStateHeader = "tracestate";

    internal static readonly ActivitySource Source = new(SourceName, typeof(ClientTracing).Assembly.GetName().Version?.ToString());

    /// <summary>
    /// The producer span of one publish (<c>publish &lt;stream&gt;</c>), a child of <see cref="Activity.Current"/>; null
    /// when nothing listens to "Sluice.Client" or the sampler drops it.
    /// </summary>
    internal static Activity? StartPublish(string destination, int bodySize, string operation, string operationType)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var activity = Source.StartActivity(operation + " " + destination, ActivityKind.Producer);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("messaging.system", "sluice");
            activity.SetTag("messaging.operation.name", operation);
            activity.SetTag("messaging.operation.type", operationType);
            activity.SetTag("messaging.destination.name", destination);
            activity.SetTag("messaging.message.body.size", bodySize);
        }

        return activity;
    }

    /// <summary>
    /// The user's headers plus the W3C context of <paramref name="activity"/> (the publish span, or else the caller's
    /// current activity); the user's own headers as they are when there is none. A caller's own <c>traceparent</c>
    /// header wins.
    /// </summary>
    internal static IReadOnlyDictionary<string, ReadOnlyMemory<byte>>? WithTraceContext(IReadOnlyDictionary<string, ReadOnlyMemory<byte>>? headers, Activity? activity)
    {
        activity ??= Activity.Current;
        if (activity is not { IdFormat: ActivityIdFormat.W3C } || (headers?.ContainsKey(TraceParentHeader) ?? false))
        {
            return headers;
        }

        var withContext = headers is null ? new Dictionary<string, ReadOnlyMemory<byte>>(2, StringComparer.Ordinal) : new Dictionary<string, ReadOnlyMemory<byte>>(headers, StringComparer.Ordinal);
        withContext[TraceParentHeader] = System.Text.Encoding.ASCII.GetBytes(activity.Id!);
        if (activity.TraceStateString is { Length: > 0 } state)
        {
            withContext[TraceStateHeader] = System.Text.Encoding.ASCII.GetBytes(state);
        }

        return withContext;
    }

    /// <summary>Adds the current activity's W3C context to a call's metadata (unary and server-streaming calls).</summary>
    internal static void InjectCurrent(HttpRequestHeaders headers)
    {
        if (Activity.Current is not { IdFormat: ActivityIdFormat.W3C } current || headers.Contains(TraceParentHeader))
        {
            return;
        }

        headers.TryAddWithoutValidation(TraceParentHeader, current.Id);
        if (current.TraceStateString is { Length: > 0 } state)
        {
            headers.TryAddWithoutValidation(TraceStateHeader, state);
        }
    }

    /// <summary>Ends a publish span with the offset its ack gave, or failed with <paramref name="error"/>.</summary>
    internal static void End(Activity? activity, SluiceAck? ack = null, Exception? error = null)
    {
        if (activity is null)
        {
            return;
        }

        if (error is not null)
        {
            activity.SetStatus(ActivityStatusCode.Error, error.Message);
            activity.AddException(error);
        }
        else if (ack is not null)
        {
            activity.SetTag("sluice.offset", ack.Offset);
        }

        activity.Stop();
    }
}
