using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Server.Configuration;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Cluster;

/// <summary>Three brokers in one process sharing a metadata store: placement, replication, ISR, failover.</summary>
public sealed class ReplicationTests
{
    [Theory]
    [InlineData(Metadata.Embedded)]
    [InlineData(Metadata.Etcd)]
    public async Task EveryBrokerListsEveryBrokerAndOneIsController(Metadata metadata)
    {
        await using var cluster = await ClusterHarness.StartAsync(3, metadata: metadata);
        await ClusterHarness.WaitForAsync(() => cluster.Brokers[0].Server.Cluster!.View.Current.Controller is not null, "a controller is elected");
        foreach (var broker in cluster.Brokers)
        {
            var response = await broker.MetadataAsync();
            Assert.Equal(["b1", "b2", "b3"], response.Brokers.Select(b => b.Id).Order());
            Assert.All(response.Brokers, b => Assert.Equal("127.0.0.1", b.Host));
            Assert.Equal(3, response.Brokers.Select(b => b.Port).Distinct().Count());
        }

        Assert.Single(cluster.Brokers, b => b.Server.Cluster!.Controller.IsController(b.Server.Cluster.View.Current));
    }

    [Theory]
    [InlineData(Metadata.Embedded)]
    [InlineData(Metadata.Etcd)]
    public async Task AllAcknowledgedMessagesAreOnEveryReplicaByteForByte(Metadata metadata)
    {
        await using var cluster = await ClusterHarness.StartAsync(3, metadata: metadata);
        await cluster.Brokers[1].CreateStreamAsync(ClusterHarness.Stream("orders", replicationFactor: 3));
        var leadership = cluster.Leadership("orders");
        Assert.Equal(3, leadership.Replicas.Count);
        Assert.Equal(leadership.Replicas, leadership.Isr);

        // Through every broker: two of them forward to the leader.
        var offsets = new List<long>();
        for (var i = 0; i < 90; i++)
        {
            var ack = await cluster.Brokers[i % 3].PublishAsync("orders", "m" + i, policy: AckPolicy.All);
            offsets.Add(ack!.Offset);
        }

        Assert.Equal(Enumerable.Range(0, 90).Select(i => (long)i), offsets);
        await ClusterHarness.WaitForAsync(() => cluster.Brokers.All(b => ClusterHarness.LogOf(b, "orders")?.HighWatermark == 89), "every replica has the high watermark at 89");
        var leader = ClusterHarness.Encoded(ClusterHarness.LogOf(cluster.Brokers.Single(b => b.Options.Clustering.ServerId == leadership.Leader), "orders")!);
        foreach (var broker in cluster.Brokers)
        {
            Assert.Equal(leader, ClusterHarness.Encoded(ClusterHarness.LogOf(broker, "orders")!));
        }

        foreach (var broker in cluster.Brokers)
        {
            var response = await broker.MetadataAsync("orders");
            var partition = response.StreamMetadata[0].Partitions[0];
            Assert.Equal(leadership.Leader, partition.Leader);
            Assert.Equal(3, partition.Isr.Count);
        }
    }

    [Theory]
    [InlineData(Metadata.Embedded)]
    [InlineData(Metadata.Etcd)]
    public async Task LeadersAreSpreadOverTheBrokers(Metadata metadata)
    {
        await using var cluster = await ClusterHarness.StartAsync(3, metadata: metadata);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("spread", replicationFactor: 2, partitions: 6));
        var leaders = Enumerable.Range(0, 6).Select(p => cluster.Leadership("spread", p).Leader).ToList();
        Assert.All(cluster.Brokers, b => Assert.Equal(2, leaders.Count(l => l == b.Options.Clustering.ServerId)));
        await ClusterHarness.WaitForAsync(() => Enumerable.Range(0, 6).All(p => cluster.Leader("spread", p) is not null), "every partition has an open leader");
    }

    [Theory]
    [InlineData(Metadata.Embedded)]
    [InlineData(Metadata.Etcd)]
    public async Task AReplicationFactorAboveTheClusterSizeIsRefused(Metadata metadata)
    {
        await using var cluster = await ClusterHarness.StartAsync(3, metadata: metadata);
        var error = await Assert.ThrowsAsync<GrpcException>(() => cluster.Brokers[2].CreateStreamAsync(ClusterHarness.Stream("big", replicationFactor: 4)));
        Assert.Equal(GrpcStatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("Invalid replicationFactor 4, cluster size 3", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(Metadata.Embedded)]
    [InlineData(Metadata.Etcd)]
    public async Task AnAllPublishBelowMinIsrIsRefusedBeforeItIsAppended(Metadata metadata)
    {
        await using var cluster = await ClusterHarness.StartAsync(2, metadata: metadata);
        var request = ClusterHarness.Stream("strict", replicationFactor: 2);
        request.MinIsr = new NullableInt32 { Value = 2 };
        await cluster.Brokers[0].CreateStreamAsync(request);
        var leadership = cluster.Leadership("strict");
        var leader = cluster[leadership.Leader];
        Assert.Equal(0, (await leader.PublishAsync("strict", "both", policy: AckPolicy.All))!.Offset);

        // The leader's reconciliation is held back (it waits for the broker's lock): once the leader's own metadata
        // shows the ISR below min ISR, its min ISR check must know it too, whenever the roles are applied.
        var held = new TaskCompletionSource();
        var release = new TaskCompletionSource();
        var holding = leader.Server.Broker.WithLockAsync(
            async () =>
            {
                held.SetResult();
                await release.Task;
            },
            CancellationToken.None);
        await held.Task;
        try
        {
            await cluster.Brokers.Single(b => b != leader).StopAsync();
            await ClusterHarness.WaitForAsync(() => IsrOn(leader) == 1, "the leader's metadata shows the ISR shrunk to the leader");
            var error = await Assert.ThrowsAsync<GrpcException>(() => leader.PublishAsync("strict", "alone", policy: AckPolicy.All));
            Assert.Equal(GrpcStatusCode.FailedPrecondition, error.StatusCode);
            Assert.Contains("not enough in-sync replicas (1 < 2)", error.Message, StringComparison.Ordinal);
            Assert.Equal(0, ClusterHarness.LogOf(leader, "strict")!.NewestOffset); // refused before the append
        }
        finally
        {
            release.SetResult();
            await holding;
        }

        Assert.Equal(1, (await leader.PublishAsync("strict", "leader only", policy: AckPolicy.Leader))!.Offset);

        static int IsrOn(BrokerHarness broker)
        {
            var view = broker.Server.Cluster!.View.Current;
            return view.Leadership(view.Streams["strict"], 0).Isr.Count;
        }
    }

    [Fact]
    public async Task AnAllPublishAppendedBeforeTheIsrFellBelowMinIsrIsNotAckedButRefused()
    {
        // Each broker advertises a proxy in front of its port, so the followers' fetches from one broker can be stalled.
        var proxies = new[] { TcpProxy.Start(), TcpProxy.Start() };
        var next = 0;
        try
        {
            await using var cluster = await ClusterHarness.StartAsync(2, o => o with { Listen = new HostPort("127.0.0.1", 0), Port = proxies[next++].Port });
            for (var i = 0; i < 2; i++)
            {
                proxies[i].Target = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, cluster.Brokers[i].Server.Port);
            }

            var request = ClusterHarness.Stream("strict", replicationFactor: 2);
            request.MinIsr = new NullableInt32 { Value = 2 };
            await cluster.Brokers[0].CreateStreamAsync(request);
            var leader = cluster[cluster.Leadership("strict").Leader];
            Assert.Equal(0, (await leader.PublishAsync("strict", "both", policy: AckPolicy.All))!.Offset);
            Assert.Equal(2, cluster.Leadership("strict").Isr.Count);

            // The follower hangs (its fetches stall on the way): the message is appended with the ISR at 2, then the
            // leader drops the follower after the max lag time, and the high watermark passes the message with only the
            // leader holding it. An ALL ack then would promise a second copy that does not exist.
            proxies[cluster.Brokers.IndexOf(leader)].Pause();
            var error = await Assert.ThrowsAsync<GrpcException>(() => leader.PublishAsync("strict", "alone", policy: AckPolicy.All));
            Assert.Equal(GrpcStatusCode.FailedPrecondition, error.StatusCode);
            Assert.Contains("not enough in-sync replicas", error.Message, StringComparison.Ordinal); // after the append, or before it on a slow run
        }
        finally
        {
            foreach (var proxy in proxies)
            {
                await proxy.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task ALeaderStoppedGracefullyLetsItsFollowersFetchWhatItAppendedAndAcksItBeforeLeaving()
    {
        var proxies = new[] { TcpProxy.Start(), TcpProxy.Start(), TcpProxy.Start() };
        var next = 0;
        try
        {
            await using var cluster = await ClusterHarness.StartAsync(3, o => o with { Listen = new HostPort("127.0.0.1", 0), Port = proxies[next++].Port });
            for (var i = 0; i < 3; i++)
            {
                proxies[i].Target = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, cluster.Brokers[i].Server.Port);
            }

            await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("planned", replicationFactor: 3));
            var leader = cluster[cluster.Leadership("planned").Leader];
            Assert.Equal(0, (await leader.PublishAsync("planned", "m0", policy: AckPolicy.All))!.Offset);

            // The followers cannot fetch for now: an ALL message is appended and waits for them.
            var proxy = proxies[cluster.Brokers.IndexOf(leader)];
            proxy.Pause();
            using var channel = new Sluice.Client.Grpc.GrpcChannel(new Uri($"http://127.0.0.1:{leader.Server.Port}")); // the harness's closes with the stop
            var publishing = channel.UnaryAsync("/proto.API/Publish", new PublishRequest { Stream = "planned", Value = Google.Protobuf.ByteString.CopyFromUtf8("in flight"), AckPolicy = AckPolicy.All }, PublishResponse.Parser, TimeSpan.FromSeconds(20));
            await ClusterHarness.WaitForAsync(() => ClusterHarness.LogOf(leader, "planned")!.NewestOffset == 1, "the leader appends the message");

            // The stop begins: the leader refuses new messages before appending them, then the followers may fetch again.
            var stopping = leader.StopAsync();
            await BrokerHarness.WaitUntilAsync(
                async () =>
                {
                    try
                    {
                        await channel.UnaryAsync("/proto.API/Publish", new PublishRequest { Stream = "planned", Value = Google.Protobuf.ByteString.CopyFromUtf8("late"), AckPolicy = AckPolicy.Leader }, PublishResponse.Parser, TimeSpan.FromSeconds(5));
                        return false;
                    }
                    catch (GrpcException e) when (e.StatusCode == GrpcStatusCode.Internal && e.Message.Contains("shutting down", StringComparison.Ordinal))
                    {
                        return true;
                    }
                },
                "the stopping leader refuses new messages");
            proxy.Resume();

            // Acked by the leader it was sent to, at the offset it was appended at, and the next leader has it there.
            Assert.Equal(1, (await publishing).Ack.Offset);
            await stopping;
            await ClusterHarness.WaitForAsync(() => cluster.Leader("planned") is { } l && l != leader, "another broker leads");
            var successor = cluster.Leader("planned")!;
            using var batch = ClusterHarness.LogOf(successor, "planned")!.Read(1, 1024);
            Assert.Equal("in flight", Google.Protobuf.ByteString.CopyFrom(batch[0].Value!.Value.Span).ToStringUtf8());
        }
        finally
        {
            foreach (var proxy in proxies)
            {
                await proxy.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task FollowersReplicatePastAClientConnectionLimitTheirAddressHasUsedUp()
    {
        // Every broker and this test connect from 127.0.0.1, which may hold one client connection per broker.
        await using var cluster = await ClusterHarness.StartAsync(3, o => o with { GrpcMaxConnectionsPerAddress = 1 });
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("limited", replicationFactor: 3));
        var leader = cluster[cluster.Leadership("limited").Leader];

        // ALL needs both followers' fetch streams, whatever clients hold.
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(i, (await leader.PublishAsync("limited", "m" + i, policy: AckPolicy.All))!.Offset);
        }

        Assert.All(cluster.Brokers, b => Assert.Equal(9, ClusterHarness.LogOf(b, "limited")!.NewestOffset));
        Assert.Equal(3, cluster.Leadership("limited").Isr.Count);
    }

    [Fact]
    public async Task AFollowerTakesTheLeadWithItsDuplicateWindowReadyAndDropsARepeatOfTheOldLeadersMessage()
    {
        await using var cluster = await ClusterHarness.StartAsync(3);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("once", replicationFactor: 3));
        var first = cluster.Leadership("once");
        var leader = cluster[first.Leader];
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(i, (await PublishWithIdAsync(leader, "once", "m" + i, "id-" + i))!.Offset);
        }

        var followers = cluster.Brokers.Where(b => b != leader).ToList();
        await ClusterHarness.WaitForAsync(() => followers.All(b => ClusterHarness.LogOf(b, "once")?.NewestOffset == 19), "both followers have all 20");
        var rebuilds = followers.ToDictionary(b => b, b => Partition0(b).WindowRebuilds);

        await leader.StopAsync();
        await ClusterHarness.WaitForAsync(() => cluster.Leader("once") is { } l && l != leader, "a follower leads");
        var next = cluster.Leader("once")!;
        Assert.Equal(rebuilds[next], Partition0(next).WindowRebuilds); // taking the lead read nothing back
        Assert.Equal(7, (await PublishWithIdAsync(next, "once", "m7 again", "id-7"))!.Offset); // the old leader's copy
        Assert.Equal(20, (await PublishWithIdAsync(next, "once", "m20", "id-20"))!.Offset);

        static Sluice.Server.Streams.Partition Partition0(BrokerHarness broker) =>
            broker.Server.Broker.TryGetStream("once", out var s) && s.TryGetPartition(0, out var p) ? p : throw new InvalidOperationException("no partition");
    }

    private static async Task<Ack?> PublishWithIdAsync(BrokerHarness broker, string stream, string value, string id)
    {
        var request = new PublishRequest { Stream = stream, Value = Google.Protobuf.ByteString.CopyFromUtf8(value), AckPolicy = AckPolicy.All };
        request.Headers["Sluice-Msg-Id"] = Google.Protobuf.ByteString.CopyFromUtf8(id);
        return (await broker.CallAsync("Publish", request, PublishResponse.Parser)).Ack;
    }

    [Fact]
    public async Task ALeaderStoppedGracefullyEndsItsSubscriptionsWithUnavailableSoClientsResubscribeToTheNext()
    {
        await using var cluster = await ClusterHarness.StartAsync(3);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("rolling", replicationFactor: 3));
        var leader = cluster[cluster.Leadership("rolling").Leader];
        await leader.PublishAsync("rolling", "m0", policy: AckPolicy.All);

        // Its own channel: the harness's is closed by the stop, which would end the call on this side first.
        using var channel = new Sluice.Client.Grpc.GrpcChannel(new Uri($"http://127.0.0.1:{leader.Server.Port}"));
        await using var call = channel.ServerStreaming("/proto.API/Subscribe", new SubscribeRequest { Stream = "rolling", StartPosition = StartPosition.Earliest }, Message.Parser);
        Assert.True(await call.MoveNextAsync()); // the handshake frame
        Assert.Single(await BrokerHarness.ReadAsync(call, 1));

        var reading = BrokerHarness.ReadToEndAsync(call);
        await leader.Server.DisposeAsync();
        var (_, error) = await reading;
        Assert.NotNull(error);
        Assert.Equal(GrpcStatusCode.Unavailable, error.StatusCode); // one node keeps Liftbridge's INTERNAL (behaviour 35)
    }

    [Fact]
    public async Task APublishToSubjectForwardedToTheLeaderKeepsTheSubjectItWasPublishedTo()
    {
        await using var cluster = await ClusterHarness.StartAsync(3);
        var request = ClusterHarness.Stream("wild", replicationFactor: 3);
        request.Subject = "w.*";
        await cluster.Brokers[0].CreateStreamAsync(request);
        var leader = cluster[cluster.Leadership("wild").Leader];
        var other = cluster.Brokers.First(b => b != leader);

        var response = await other.CallAsync("PublishToSubject", new PublishToSubjectRequest { Subject = "w.follower", Value = Google.Protobuf.ByteString.CopyFromUtf8("v"), AckPolicy = AckPolicy.All }, PublishToSubjectResponse.Parser);
        Assert.Equal("w.follower", response.Ack.MsgSubject);

        // A plain Publish cannot use the forwarding header to name a subject the stream does not take.
        var sneaky = new PublishRequest { Stream = "wild", Value = Google.Protobuf.ByteString.CopyFromUtf8("s"), AckPolicy = AckPolicy.All };
        sneaky.Headers["Sluice-Forwarded-Subject"] = Google.Protobuf.ByteString.CopyFromUtf8("elsewhere");
        await leader.CallAsync("Publish", sneaky, PublishResponse.Parser);

        await using var call = await leader.SubscribeAsync(new SubscribeRequest { Stream = "wild", StartPosition = StartPosition.Earliest });
        var messages = await BrokerHarness.ReadAsync(call, 2);
        Assert.Equal(["w.follower", "w.*"], messages.Select(m => m.Subject));
        Assert.All(messages, m => Assert.False(m.Headers.ContainsKey("Sluice-Forwarded-Subject")));
    }

    [Fact]
    public async Task AnEncryptedStreamIsCiphertextOnEveryReplicaAndTheNextLeaderServesItsPlaintext()
    {
        // Every broker has the same master key, as a cluster's brokers must.
        await using var cluster = await ClusterHarness.StartAsync(3, o => o with { EncryptionKeySource = () => "0123456789abcdef" });
        var request = ClusterHarness.Stream("vault", replicationFactor: 3);
        request.Encryption = new NullableBool { Value = true };
        await cluster.Brokers[0].CreateStreamAsync(request);
        var first = cluster.Leadership("vault");
        var leader = cluster[first.Leader];
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(i, (await leader.PublishAsync("vault", "top-secret-" + i, policy: AckPolicy.All))!.Offset);
        }

        foreach (var broker in cluster.Brokers)
        {
            var logs = Directory.GetFiles(Path.Combine(broker.DataDir, "streams", "vault"), "*.log", SearchOption.AllDirectories);
            Assert.NotEmpty(logs);
            var disk = string.Concat(logs.Select(f => System.Text.Encoding.Latin1.GetString(File.ReadAllBytes(f))));
            Assert.DoesNotContain("top-secret", disk, StringComparison.Ordinal);
        }

        await leader.StopAsync();
        await ClusterHarness.WaitForAsync(() => cluster.Leader("vault") is { } l && l != leader, "a follower leads");
        await using var call = await cluster.Leader("vault")!.SubscribeAsync(new SubscribeRequest { Stream = "vault", StartPosition = StartPosition.Earliest });
        var messages = await BrokerHarness.ReadAsync(call, 10);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => "top-secret-" + i), messages.Select(m => m.Value.ToStringUtf8()));
    }

    [Fact]
    public async Task WithTlsBrokersReplicateWithTheirCertificatesAndAnInternalCallWithoutOneIsRefused()
    {
        using var dir = new TempDirectory("sluice-cluster-tls");
        var certificate = TestCertificate.CreateSelfSigned(dir); // names 127.0.0.1, where every broker registers
        await using var cluster = await ClusterHarness.StartAsync(3, o => o with
        {
            Tls = o.Tls with { Cert = certificate.CertificatePath, Key = certificate.KeyPath, ClientAuthCa = certificate.CertificatePath },
        });
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("sealed", replicationFactor: 3));
        var leadership = cluster.Leadership("sealed");
        var leader = cluster[leadership.Leader];
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(i, (await leader.PublishAsync("sealed", "m" + i, policy: AckPolicy.All))!.Offset);
        }

        Assert.All(cluster.Brokers, b => Assert.Equal(4, ClusterHarness.LogOf(b, "sealed")!.NewestOffset));

        // A registered broker's id and current lease, but no certificate: not enough.
        var follower = cluster[leadership.Isr.First(id => id != leadership.Leader)];
        var request = new Sluice.Protocol.Internal.EpochEndRequest
        {
            ReplicaId = follower.Options.Clustering.ServerId,
            BrokerLease = follower.Server.Cluster!.Membership.Lease,
            Stream = "sealed",
            LeaderEpoch = leadership.Epoch,
        };
        var error = await Assert.ThrowsAsync<GrpcException>(() => leader.Channel.UnaryAsync("/sluice.internal.Replication/EpochEnd", request, Sluice.Protocol.Internal.EpochEndResponse.Parser, TimeSpan.FromSeconds(5)));
        Assert.Equal(GrpcStatusCode.PermissionDenied, error.StatusCode);
        Assert.Contains("must present its TLS certificate", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(Metadata.Embedded)]
    [InlineData(Metadata.Etcd)]
    public async Task WhenTheLeaderStopsAFollowerLeadsAndNoAcknowledgedMessageIsLost(Metadata metadata)
    {
        await using var cluster = await ClusterHarness.StartAsync(3, metadata: metadata);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("ha", replicationFactor: 3));
        var first = cluster.Leadership("ha");
        var oldLeader = cluster[first.Leader];
        for (var i = 0; i < 40; i++)
        {
            Assert.Equal(i, (await oldLeader.PublishAsync("ha", "m" + i, policy: AckPolicy.All))!.Offset);
        }

        await oldLeader.StopAsync();
        await ClusterHarness.WaitForAsync(() => cluster.Leadership("ha") is { Leader.Length: > 0 } l && l.Leader != first.Leader && cluster.Leader("ha") is not null, "a new leader serves");
        var second = cluster.Leadership("ha");
        Assert.True(second.Epoch > first.Epoch);
        Assert.DoesNotContain(first.Leader, second.Isr);

        var survivor = cluster.Running.First();
        for (var i = 40; i < 80; i++)
        {
            Assert.Equal(i, (await survivor.PublishAsync("ha", "m" + i, policy: AckPolicy.All))!.Offset);
        }

        var newLeader = cluster[second.Leader];
        await using var call = await newLeader.SubscribeAsync(new SubscribeRequest { Stream = "ha", StartPosition = StartPosition.Earliest });
        var messages = await BrokerHarness.ReadAsync(call, 80);
        Assert.Equal(Enumerable.Range(0, 80).Select(i => (long)i), messages.Select(m => m.Offset));
        Assert.Equal(Enumerable.Range(0, 80).Select(i => "m" + i), messages.Select(m => m.Value.ToStringUtf8()));

        // The old leader comes back as a follower, catches up and rejoins the ISR; then the preferred replica leads again.
        await oldLeader.StartAgainAsync();
        await ClusterHarness.WaitForAsync(() => cluster.Leadership("ha") is { Isr.Count: 3 } l && l.Leader == first.Replicas[0], "the ISR is whole and the preferred replica leads");
        await ClusterHarness.WaitForAsync(() => cluster.Brokers.All(b => ClusterHarness.LogOf(b, "ha")?.HighWatermark == 79), "every replica has all 80");
        var reference = ClusterHarness.Encoded(ClusterHarness.LogOf(newLeader, "ha")!);
        Assert.All(cluster.Brokers, b => Assert.Equal(reference, ClusterHarness.Encoded(ClusterHarness.LogOf(b, "ha")!)));
    }

    [Theory]
    [InlineData(Metadata.Embedded)]
    [InlineData(Metadata.Etcd)]
    public async Task AStoppedFollowerLeavesTheIsrAndRejoinsOnceCaughtUp(Metadata metadata)
    {
        await using var cluster = await ClusterHarness.StartAsync(3, metadata: metadata);
        await cluster.Brokers[0].CreateStreamAsync(ClusterHarness.Stream("lag", replicationFactor: 3));
        var leadership = cluster.Leadership("lag");
        var follower = cluster[leadership.Replicas[2]];
        await follower.StopAsync();
        await ClusterHarness.WaitForAsync(() => cluster.Leadership("lag").Isr.Count == 2, "the stopped follower leaves the ISR");

        var leader = cluster[leadership.Leader];
        for (var i = 0; i < 30; i++)
        {
            await leader.PublishAsync("lag", "m" + i, policy: AckPolicy.All);
        }

        await follower.StartAgainAsync();
        await ClusterHarness.WaitForAsync(() => cluster.Leadership("lag").Isr.Count == 3, "the follower rejoins the ISR");
        await ClusterHarness.WaitForAsync(() => ClusterHarness.LogOf(follower, "lag")?.NewestOffset == 29, "the follower has caught up");
        Assert.Equal(ClusterHarness.Encoded(ClusterHarness.LogOf(leader, "lag")!), ClusterHarness.Encoded(ClusterHarness.LogOf(follower, "lag")!));
    }
}
