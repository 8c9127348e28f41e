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

    /// <summary>The end of an append batch: send the acks held back so far.</summary>
    void FlushAcks()
    {
    }
}

/// <summary>
/// One message on its way into a partition. Every ingest path builds these (gRPC Publish,
/// PublishAsync, PublishToSubject, internal publishes, and later NATS subscriptions) and hands them
/// to <see cref="Partition.EnqueueAsync"/>; the partition's writer loop stamps, appends and acks them.
/// </summary>
internal sealed class PublishItem
{
    public ReadOnlyMemory<byte>? Key { get; init; }

    public ReadOnlyMemory<byte>? Value { get; init; }

    /// <summary>User headers plus the server's "subject" and "reply" headers (quirk 6).</summary>
    public required RecordHeader[] Headers { get; init; }

    /// <summary>The subject the message was published to (Ack.msgSubject).</summary>
    public required string Subject { get; init; }

    public string AckInbox { get; init; } = string.Empty;

    public string CorrelationId { get; init; } = string.Empty;

    public AckPolicy AckPolicy { get; init; }

    /// <summary>OCC expectation: -1 = any; any other value must equal the offset the message gets (quirk 3).</summary>
    public long ExpectedOffset { get; init; } = -1;

    public IAckReceiver? Receiver { get; init; }

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
    /// Builds the stored headers: the user's, with "subject" and "reply" set by the server, overwriting
    /// user headers of those names (as Liftbridge does).
    /// </summary>
    public static RecordHeader[] BuildHeaders(IDictionary<string, Google.Protobuf.ByteString>? user, string subject, string reply)
    {
        var count = 2;
        if (user is not null)
        {
            foreach (var name in user.Keys)
            {
                if (name is not SubjectHeader and not ReplyHeader)
                {
                    count++;
                }
            }
        }

        var headers = new RecordHeader[count];
        var i = 0;
        if (user is not null)
        {
            foreach (var (name, value) in user)
            {
                if (name is not SubjectHeader and not ReplyHeader)
                {
                    headers[i++] = new RecordHeader(name, value.Memory);
                }
            }
        }

        headers[i++] = new RecordHeader(SubjectHeader, System.Text.Encoding.UTF8.GetBytes(subject));
        headers[i] = new RecordHeader(ReplyHeader, System.Text.Encoding.UTF8.GetBytes(reply));
        return headers;
    }
}
