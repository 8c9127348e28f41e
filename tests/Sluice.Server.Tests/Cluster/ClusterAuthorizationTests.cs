using System.Security.Cryptography.X509Certificates;
using Sluice.Client;
using Sluice.Client.Grpc;
using Sluice.Protocol.Grpc;
using Sluice.TestKit;
using ClientAckPolicy = Sluice.Client.AckPolicy;

namespace Sluice.Server.Tests.Cluster;

/// <summary>
/// <c>tls.client.authz</c> on three brokers: every broker checks the client that called it before it forwards a call
/// (to the controller, a partition's leader or the cursors' leader); the brokers' own calls to each other (forwarding,
/// replication) are not held to the clients' policy.
/// </summary>
public sealed class ClusterAuthorizationTests
{
    private const string Policy = """
        p, client1, *, FetchMetadata
        p, client1, foo, CreateStream
        p, client1, foo, Publish
        p, client1, foo, Subscribe
        p, client1, foo, FetchPartitionMetadata
        p, client1, foo, SetCursor
        p, client1, foo, FetchCursor
        p, client1, __cursors, Publish
        p, client2, *, FetchMetadata
        p, client2, foo, Subscribe
        """;

    [Fact]
    public async Task Each_broker_checks_its_caller_before_forwarding_and_replication_between_brokers_is_not_refused()
    {
        using var dir = new TempDirectory("sluice-cluster-authz");
        var authority = TestCertificate.CreateSelfSigned(dir); // names 127.0.0.1: the brokers present it to each other
        await File.WriteAllTextAsync(dir.Sub("model.conf"), AuthorizationFiles.LiftbridgeModel);
        await File.WriteAllTextAsync(dir.Sub("policy.csv"), Policy);
        await using var cluster = await ClusterHarness.StartAsync(3, o => o with
        {
            Cursors = o.Cursors with { Partitions = 1 },
            Tls = o.Tls with
            {
                Cert = authority.CertificatePath,
                Key = authority.KeyPath,
                ClientAuthEnabled = true,
                ClientAuthCa = authority.CertificatePath,
                ClientAuthzEnabled = true,
                ClientAuthzModel = dir.Sub("model.conf"),
                ClientAuthzPolicy = dir.Sub("policy.csv"),
            },
        });
        await ClusterHarness.WaitForAsync(() => cluster.Brokers.All(b => b.Server.Broker.TryGetStream("__cursors", out _)), "every broker has the cursors stream");
        var controller = cluster.Brokers[0].Server.Cluster!.View.Current.Controller!.BrokerId;
        var entry = cluster.Brokers.First(b => b.Options.Clustering.ServerId != controller); // not the controller: creates are forwarded

        async Task<SluiceClient> ConnectAsync(string commonName, BrokerHarness broker) =>
            await SluiceClient.ConnectAsync([$"127.0.0.1:{broker.Server.Port}"], SluiceClientOptions.Default with
            {
                ConnectTimeout = TimeSpan.FromSeconds(5),
                ResubscribeWaitTime = TimeSpan.FromSeconds(5),
                Tls = new GrpcClientTlsOptions
                {
                    ClientCertificate = authority.IssueClientCertificate(commonName),
                    TrustedCertificateAuthorities = new X509Certificate2Collection(X509CertificateLoader.LoadCertificateFromFile(authority.CertificatePath)),
                },
            });

        // client2 may not create: the broker it called refuses, it does not forward the call under its own certificate.
        await using var client2 = await ConnectAsync("client2", entry);
        var denied = await Assert.ThrowsAnyAsync<SluiceException>(() => client2.CreateStreamAsync("foo", "foo", new StreamOptions { ReplicationFactor = 3 }));
        Assert.Equal(GrpcStatusCode.PermissionDenied, denied.StatusCode);
        Assert.Contains("client 'client2' is not authorized to CreateStream on 'foo'", denied.Message, StringComparison.Ordinal);
        Assert.All(cluster.Brokers, b => Assert.False(b.Server.Broker.TryGetStream("foo", out _)));

        // client1 may: the create is forwarded to the controller, and ALL acks need the followers' fetches, which the
        // leader serves to brokers without asking the clients' policy.
        await using var client1 = await ConnectAsync("client1", entry);
        await client1.CreateStreamAsync("foo", "foo", new StreamOptions { ReplicationFactor = 3 });
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(i, (await client1.PublishAsync("foo", "m"u8.ToArray(), new MessageOptions { AckPolicy = ClientAckPolicy.All }))!.Offset);
        }

        await ClusterHarness.WaitForAsync(() => cluster.Brokers.All(b => ClusterHarness.LogOf(b, "foo")?.HighWatermark == 4), "every replica has the five messages");

        // Cursors live in __cursors, whose leader may be another broker: the entry broker checks SetCursor on the stream
        // and Publish on __cursors for the caller, then forwards.
        await client1.SetCursorAsync("reader", "foo", 0, 3);
        Assert.Equal(3, await client1.FetchCursorAsync("reader", "foo", 0));
        var cursorDenied = await Assert.ThrowsAnyAsync<SluiceException>(() => client2.SetCursorAsync("reader", "foo", 0, 4));
        Assert.Equal(GrpcStatusCode.PermissionDenied, cursorDenied.StatusCode);
        Assert.Equal(3, await client1.FetchCursorAsync("reader", "foo", 0));

        // client2 may read, from the leader or (ReadISRReplica) a follower; it may not publish.
        var read = 0;
        using (var reading = new CancellationTokenSource(ClusterHarness.Timeout))
        {
            await foreach (var _ in client2.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest() with { ReadIsrReplica = true }, reading.Token))
            {
                if (++read == 5)
                {
                    break;
                }
            }
        }

        Assert.Equal(5, read);
        var refused = await Assert.ThrowsAsync<PublishFailedException>(() => client2.PublishAsync("foo", "x"u8.ToArray()));
        Assert.Equal(PublishErrorCode.PermissionDenied, refused.Code);
        Assert.All(cluster.Brokers, b => Assert.Equal(4, ClusterHarness.LogOf(b, "foo")!.NewestOffset));
    }
}
