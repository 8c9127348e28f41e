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
}
