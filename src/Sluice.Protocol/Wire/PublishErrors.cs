namespace Sluice.Protocol.Wire;

/// <summary>Refusal texts the broker and Sluice.Client share, so the client can act on them and not only show them.</summary>
public static class PublishErrors
{
    /// <summary>
    /// A message with ack policy ALL was appended but the partition's leadership moved, or came into doubt (the
    /// leader lost contact with etcd), before the ISR had it (async error INTERNAL, unary UNAVAILABLE). It may or may
    /// not be stored: a resend with the same message id is safe.
    /// </summary>
    public const string LeaderChanged = "the partition leader changed before the message was replicated; it may or may not be stored";

    /// <summary>
    /// A leader whose cluster lease is in doubt refused the message before appending it (UNAVAILABLE; async error
    /// INTERNAL, after the partition's name). Nothing was stored: sending it again, to whoever leads next, is safe.
    /// </summary>
    public const string LeaderFenced = "this broker lost contact with the cluster metadata and stopped acknowledging as leader";

    /// <summary>
    /// A message with ack policy ALL was appended while the ISR met the stream's min ISR, but the ISR shrank below it
    /// before the message was committed (Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND; unary FAILED_PRECONDITION, async
    /// error INTERNAL). Fewer replicas than min ISR may hold it, so it is not acknowledged; it may or may not be stored.
    /// </summary>
    public const string NotEnoughReplicasAfterAppend = "not enough in-sync replicas to commit the message after it was appended; it may or may not be stored";

    /// <summary>
    /// The partition leader's disk is full and another in-sync replica is taking the partition over (UNAVAILABLE; async
    /// error INTERNAL, after the partition's name when refused before the append). Nothing was stored: send it again,
    /// to the next leader.
    /// </summary>
    public const string LeaderStorageFull = "no space left on device on the partition leader, which is handing the partition to another in-sync replica; nothing was stored";

    /// <summary>A broker that is stopping refused the message before appending it (INTERNAL). Nothing was stored.</summary>
    public const string ShuttingDown = "the server is shutting down";

    /// <summary>
    /// Whether a refusal with this text leaves a resend safe for a message with a message id: the leadership moved
    /// (a repeat is dropped by id), or nothing was stored.
    /// </summary>
    public static bool AllowsResend(string message) =>
        message == LeaderChanged
        || message.EndsWith(LeaderFenced, StringComparison.Ordinal)
        || message.EndsWith(LeaderStorageFull, StringComparison.Ordinal)
        || message == ShuttingDown;
}
