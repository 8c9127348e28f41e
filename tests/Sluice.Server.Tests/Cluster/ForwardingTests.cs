using System.Net.Sockets;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Wire;
using Sluice.Server.Cluster;
using Sluice.Server.Cluster.Replication;

namespace Sluice.Server.Tests.Cluster;

/// <summary>When a broker forwarding a publish may send it to the next leader without risking a second copy.</summary>
public sealed class ForwardingTests
{
    [Fact]
    public void A_publish_the_leader_may_have_appended_is_not_resent_without_a_message_id()
    {
        // The leader said so, or the connection broke once the request was out (the leader's process died).
        Assert.True(ClusterNode.MayBeStored(new GrpcException(GrpcStatusCode.Unavailable, PublishErrors.LeaderChanged)));
        Assert.True(ClusterNode.MayBeStored(new GrpcException(GrpcStatusCode.Unavailable, "Connection failed: reset", new IOException("reset by peer"))));
    }

    [Fact]
    public void A_leader_that_does_not_answer_in_time_is_gone_and_may_have_stored_the_publish()
    {
        // A paused leader: the forward waits for the next leader, and resends only a publish with a message id.
        var timedOut = new GrpcException(GrpcStatusCode.DeadlineExceeded, "Deadline Exceeded");
        Assert.True(ClusterNode.LeaderGone(timedOut));
        Assert.True(ClusterNode.MayBeStored(timedOut));
    }

    [Fact]
    public void A_publish_refused_before_any_append_or_never_sent_is_resent()
    {
        var refused = new HttpRequestException("Connection refused", new SocketException((int)SocketError.ConnectionRefused));
        Assert.False(ClusterNode.MayBeStored(new GrpcException(GrpcStatusCode.Unavailable, "Connection failed: refused", refused)));
        Assert.False(ClusterNode.MayBeStored(new GrpcException(GrpcStatusCode.Unavailable, $"partition 0 of stream s: {LeaderReplication.FencedRefusal}")));
        Assert.False(ClusterNode.MayBeStored(new GrpcException(GrpcStatusCode.Unavailable, "the server is shutting down")));
        Assert.False(ClusterNode.MayBeStored(new GrpcException(GrpcStatusCode.FailedPrecondition, "Server not partition leader")));
    }
}
