using Sluice.Protocol.Api;
using Sluice.Storage.Log;

namespace Sluice.Server.Streams;

/// <summary>
/// Told when a published message is committed (or refused). Called on whichever thread appends
/// (the partition's writer loop, or a publisher appending inline): return quickly.
/// </summary>
internal interface IAckReceiver
{
    /// <summary>One message's ack; it may be held back until <see cref="FlushAcks"/>.</summary>
    void OnAck(PublishItem item, Ack ack);

    /// <summary>A message was committed. By default its ack is built and passed to <see cref="OnAck"/>; a receiver that encodes acks itself can skip the object.</summary>
    void OnCommitted(PublishItem item, in CommitInfo commit) => OnAck(item, commit.Partition.NewAck(item, commit));

    /// <summary>The end of an append batch: send the acks held back so far.</summary>
    void FlushAcks()
    {
    }
}

/// <summary>Where and when a message was committed: what its ack reports besides the message's own fields.</summary>
internal readonly record struct CommitInfo(Partition Partition, long Offset, long ReceptionTimestamp, long CommitTimestamp);

/// <summary>
/// One message on its way into a partition. Every ingest path builds these (gRPC Publish,
/// PublishAsync, PublishToSubject, internal publishes, and later NATS subscriptions) and hands them
/// to <see cref="Partition.EnqueueAsync"/>; the partition's writer loop stamps, appends and acks them.
/// </summary>
internal sealed class PublishItem
{
    private string? _correlationId;
    private ReadOnlyMemory<byte> _correlationIdUtf8;

    public ReadOnlyMemory<byte>? Key { get; init; }

    public ReadOnlyMemory<byte>? Value { get; init; }

    /// <summary>User headers plus the server's "subject" and "reply" headers (quirk 6).</summary>
    public required RecordHeader[] Headers { get; init; }

    /// <summary>The subject the message was published to (Ack.msgSubject).</summary>
    public required string Subject { get; init; }

    public string AckInbox { get; init; } = string.Empty;

    /// <summary>The correlation id (decoded on first use when the item was made from <see cref="CorrelationIdUtf8"/>).</summary>
    public string CorrelationId
    {
        get => _correlationId ??= System.Text.Encoding.UTF8.GetString(_correlationIdUtf8.Span);
        init => _correlationId = value;
    }

    /// <summary>The correlation id as valid UTF-8, for acks that echo it (encoded on first use when the item was made from <see cref="CorrelationId"/>).</summary>
    public ReadOnlyMemory<byte> CorrelationIdUtf8
    {
        get => _correlationIdUtf8.IsEmpty && !string.IsNullOrEmpty(_correlationId) ? _correlationIdUtf8 = System.Text.Encoding.UTF8.GetBytes(_correlationId) : _correlationIdUtf8;
        init => _correlationIdUtf8 = value;
    }

    public AckPolicy AckPolicy { get; init; }

    /// <summary>OCC expectation: -1 = any; any other value must equal the offset the message gets (quirk 3).</summary>
    public long ExpectedOffset { get; init; } = -1;

    public IAckReceiver? Receiver { get; init; }

    /// <summary>When the server took the message (<see cref="System.Diagnostics.Stopwatch"/> ticks): the start of its publish-to-ack latency.</summary>
    public long ReceivedAt { get; init; } = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>
    /// The publish's server span while it is traced (sampled), else null: the append, replication and ack spans hang
    /// off it, and whoever sends the ack (or the refusal) ends it (Monitoring/ServerTracing).
    /// </summary>
    public System.Diagnostics.Activity? Trace
    {
        get => Volatile.Read(ref _trace);
        set => Volatile.Write(ref _trace, value);
    }

    private System.Diagnostics.Activity? _trace;

    /// <summary>Takes the publish span for ending it: only the first caller gets it.</summary>
    public System.Diagnostics.Activity? TakeTrace() => _trace is null ? null : Interlocked.Exchange(ref _trace, null);

    /// <summary>Set with an Ack{UNKNOWN} when the cause is one a client is told about (a full disk); else the client sees "internal error".</summary>
    public string? RefusalReason { get; set; }

    /// <summary>Size used for the clustering.replication.max.bytes check: key, value and headers.</summary>
    public long PayloadSize
    {
        get
        {
            long size = (Key?.Length ?? 0) + (Value?.Length ?? 0);
            foreach (var header in Headers)
            {
                size += header.Name.Length + header.Value.Length;
            }

            return size;
        }
    }

    public const string SubjectHeader = "subject";
    public const string ReplyHeader = "reply";

    /// <summary>
    /// Carries the subject of a PublishToSubject from the broker that took it to the partition's leader; the leader
    /// stores it as <see cref="SubjectHeader"/> and drops this one.
    /// </summary>
    public const string ForwardedSubjectHeader = "Sluice-Forwarded-Subject";

    /// <summary>
    /// Builds the stored headers: the user's, with "subject" and "reply" set by the server, overwriting
    /// user headers of those names (as Liftbridge does).
    /// </summary>
    public static RecordHeader[] BuildHeaders(IDictionary<string, Google.Protobuf.ByteString>? user, string subject, string reply) =>
        BuildHeaders(user, static value => value.Memory, System.Text.Encoding.UTF8.GetBytes(subject), System.Text.Encoding.UTF8.GetBytes(reply));

    /// <inheritdoc cref="BuildHeaders(IDictionary{string, Google.Protobuf.ByteString}?, string, string)"/>
    /// <remarks>The subject and reply bytes are stored as they are (shared, not copied): do not change them.</remarks>
    public static RecordHeader[] BuildHeaders(IReadOnlyDictionary<string, ReadOnlyMemory<byte>>? user, ReadOnlyMemory<byte> subjectUtf8, ReadOnlyMemory<byte> replyUtf8) =>
        BuildHeaders(user, static value => value, subjectUtf8, replyUtf8);

    private static RecordHeader[] BuildHeaders<TValue>(IEnumerable<KeyValuePair<string, TValue>>? user, Func<TValue, ReadOnlyMemory<byte>> bytes, ReadOnlyMemory<byte> subjectUtf8, ReadOnlyMemory<byte> replyUtf8)
    {
        var count = 2;
        foreach (var (name, _) in user ?? [])
        {
            if (name is not SubjectHeader and not ReplyHeader)
            {
                count++;
            }
        }

        var headers = new RecordHeader[count];
        var i = 0;
        foreach (var (name, value) in user ?? [])
        {
            if (name is not SubjectHeader and not ReplyHeader)
            {
                headers[i++] = new RecordHeader(name, bytes(value));
            }
        }

        headers[i++] = new RecordHeader(SubjectHeader, subjectUtf8);
        headers[i] = new RecordHeader(ReplyHeader, replyUtf8);
        return headers;
    }
}
