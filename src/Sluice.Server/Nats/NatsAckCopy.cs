using Sluice.Protocol.Api;
using Sluice.Server.Streams;

namespace Sluice.Server.Nats;

/// <summary>
/// The receiver of a gRPC publish that named an ack inbox while NATS is attached: the ack goes to the
/// caller as before and is also published, enveloped, on that inbox, where Liftbridge publishes every
/// ack (its gRPC path itself waits for the ack there). Only such publishes pay for the extra object.
/// </summary>
internal sealed class NatsAckCopy(IAckReceiver? caller, NatsAttachment nats) : IAckReceiver
{
    public void OnAck(PublishItem item, Ack ack)
    {
        caller?.OnAck(item, ack);
        nats.OnAck(item, ack);
    }

    public void OnCommitted(PublishItem item, in CommitInfo commit)
    {
        caller?.OnCommitted(item, commit);
        nats.OnAck(item, commit.Partition.NewAck(item, commit));
    }

    public void FlushAcks() => caller?.FlushAcks();
}
