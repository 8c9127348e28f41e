using System.Security.Cryptography.X509Certificates;
using Sluice.Client.Grpc;
using Sluice.Protocol.Grpc;
using Sluice.Server.Configuration;
using Sluice.TestKit;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>Client options exercised against the real in-process broker (and a real nats-server where they need one).</summary>
public sealed class RealServerOptionTests
{
    [Fact]
    [SluiceOnly("TLS is set through Sluice's ServerOptions; the Liftbridge run starts plain nodes")]
    public async Task Tls_client_with_the_ca_file_works_end_to_end_and_plain_or_untrusting_clients_fail()
    {
        using var dir = new TempDirectory("sluice-tls");
        var certificate = TestCertificate.CreateSelfSigned(dir);
        await using var server = await RealServer.StartAsync(o => o with { Tls = TlsOptions.Default with { Cert = certificate.CertificatePath, Key = certificate.KeyPath } });
        var options = FastOptions with { ConnectTimeout = TimeSpan.FromSeconds(3) };

        await using (var client = await SluiceClient.ConnectAsync([server.Address], options with { TlsCertificateFile = certificate.CertificatePath }))
        {
            await client.CreateStreamAsync("foo", "foo");
            await using var live = await client.SubscribeCoreAsync("foo");
            Assert.Equal(0, (await client.PublishAsync("foo", Bytes("secret")))!.Offset);
            Assert.Equal("secret", (await live.TakeAsync(1))[0].GetValueAsString());
            Assert.Equal("secret", (await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest()).TakeAsync(1))[0].GetValueAsString());
            Assert.Equal(server.Address, (await client.FetchMetadataAsync()).GetStream("foo")!.GetPartition(0)!.Leader!.Address);
        }

        // Plain h2c against the TLS port, and TLS without trusting the self-signed certificate.
        await Assert.ThrowsAnyAsync<SluiceException>(() => SluiceClient.ConnectAsync([server.Address], options));
        await Assert.ThrowsAnyAsync<SluiceException>(() => SluiceClient.ConnectAsync([server.Address], options with { Tls = new GrpcClientTlsOptions() }));
    }

    [Fact]
    [SluiceOnly("TLS is set through Sluice's ServerOptions; the Liftbridge run starts plain nodes")]
    public async Task Mutual_tls_accepts_a_client_certificate_from_the_trusted_ca_and_refuses_a_client_without_one()
    {
        using var dir = new TempDirectory("sluice-mtls");
        var certificate = TestCertificate.CreateSelfSigned(dir);
        await using var server = await RealServer.StartAsync(o => o with
        {
            Tls = TlsOptions.Default with
            {
                Cert = certificate.CertificatePath,
                Key = certificate.KeyPath,
                ClientAuthEnabled = true,
                ClientAuthCa = certificate.CertificatePath,
            },
        });
        using var clientCertificate = X509Certificate2.CreateFromPemFile(certificate.CertificatePath, certificate.KeyPath);
        using var ca = X509CertificateLoader.LoadCertificateFromFile(certificate.CertificatePath);
        var trusted = new X509Certificate2Collection(ca);
        var options = FastOptions with { ConnectTimeout = TimeSpan.FromSeconds(3) };

        await using (var client = await SluiceClient.ConnectAsync([server.Address], options with { Tls = new GrpcClientTlsOptions { ClientCertificate = clientCertificate, TrustedCertificateAuthorities = trusted } }))
        {
            await client.CreateStreamAsync("foo", "foo");
            Assert.Equal(0, (await client.PublishAsync("foo", Bytes("mine")))!.Offset);
            Assert.Equal("mine", (await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest()).TakeAsync(1))[0].GetValueAsString());
        }

        await Assert.ThrowsAnyAsync<SluiceException>(() => SluiceClient.ConnectAsync([server.Address], options with { Tls = new GrpcClientTlsOptions { TrustedCertificateAuthorities = trusted } }));
    }

    [Fact]
    [SluiceOnly("attaches the server to an external nats-server through Sluice's ServerOptions; Liftbridge nodes here run embedded NATS")]
    public async Task PublishToSubject_through_a_real_nats_server_returns_the_ack_and_times_out_without_a_stream()
    {
        await using var nats = await NatsServerProcess.StartAsync();
        await using var server = await RealServer.StartAsync(o => o with { Nats = NatsConnectionSettings.Default with { Servers = [nats.Url] } });
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions with { AckWaitTime = TimeSpan.FromSeconds(10) });
        await client.CreateStreamAsync("orders", "orders");
        await using var live = await client.SubscribeCoreAsync("orders");
        await using var reader = live.GetAsyncEnumerator(TimeoutToken());

        var ack = await client.PublishToSubjectAsync("orders", Bytes("first"), new MessageOptions { Key = Bytes("k"), CorrelationId = "c1" }.WithHeader("h", Bytes("v")));
        Assert.Equal(("orders", 0L, "orders", "c1"), (ack!.Stream, ack.Offset, ack.MessageSubject, ack.CorrelationId));
        Assert.True(await reader.MoveNextAsync());
        var message = reader.Current;
        Assert.Equal((0L, "first", "k", "v", "orders"), (message.Offset, message.GetValueAsString(), Text(message.Key), Text(message.Headers["h"]), message.Subject));

        Assert.Null(await client.PublishToSubjectAsync("orders", Bytes("unacked"), new MessageOptions { AckPolicy = AckPolicy.None }));
        Assert.True(await reader.MoveNextAsync());
        Assert.Equal((1L, "unacked"), (reader.Current.Offset, reader.Current.GetValueAsString())); // stored once, though it also went out on NATS
        // A short ack wait for the publish no stream takes (the acked ones above get a long one: a loaded machine is slow).
        await using var impatient = await SluiceClient.ConnectAsync([server.Address], FastOptions with { AckWaitTime = TimeSpan.FromMilliseconds(300) });
        await Assert.ThrowsAsync<AckTimeoutException>(() => impatient.PublishToSubjectAsync("nobody.listens", Bytes("x")));
        var occ = await Assert.ThrowsAsync<ArgumentException>(() => client.PublishToSubjectAsync("orders", Bytes("x"), new MessageOptions { ExpectedOffset = 3 }));
        Assert.Contains("ExpectedOffset", occ.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Read_isr_replica_on_one_node_reads_from_the_leader()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("foo", "foo");
        for (var i = 0; i < 3; i++)
        {
            await client.PublishAsync("foo", Bytes($"{i}"));
        }

        var partition = (await client.FetchMetadataAsync()).GetStream("foo")!.GetPartition(0)!;
        Assert.Equal([partition.LeaderId], partition.Isr);
        var messages = await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest().StopAtOffset(2) with { ReadIsrReplica = true }).ToListAsync();
        Assert.Equal(["0", "1", "2"], messages.Select(m => m.GetValueAsString()));
    }

    [Fact]
    public async Task Resume_option_resumes_a_paused_partition_that_refuses_plain_subscriptions()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("foo", "foo");
        await client.PublishAsync("foo", Bytes("x"));
        await client.PauseStreamAsync("foo");

        // Refused: Sluice answers FAILED_PRECONDITION, Liftbridge v1.9.0 INTERNAL "segment has been closed" (compatibility.md).
        await Assert.ThrowsAnyAsync<SluiceException>(() => client.SubscribeCoreAsync("foo", SubscribeOptions.Default.StartAtEarliest()));

        var message = (await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest() with { Resume = true }).TakeAsync(1))[0];
        Assert.Equal("x", message.GetValueAsString());
        Assert.Equal("x", (await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest()).TakeAsync(1))[0].GetValueAsString()); // resumed
    }

    [Fact]
    [SluiceOnly("Liftbridge v1.9.0 refuses a subscription to a paused partition with INTERNAL, answers its FetchPartitionMetadata with FailedPrecondition and keeps paused=true after a resume (docs/compatibility.md)")]
    public async Task A_paused_partition_refuses_plain_subscriptions_with_FailedPrecondition_and_says_paused_until_resumed()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("foo", "foo");
        await client.PublishAsync("foo", Bytes("x"));
        await client.PauseStreamAsync("foo");
        Assert.True((await client.FetchPartitionMetadataAsync("foo", 0)).Paused);

        // Sluice answers FAILED_PRECONDITION (Liftbridge uses it for "not partition leader"); the client retries it, then reports it.
        var refused = await Assert.ThrowsAnyAsync<SluiceException>(() => client.SubscribeCoreAsync("foo", SubscribeOptions.Default.StartAtEarliest()));
        Assert.Equal(GrpcStatusCode.FailedPrecondition, refused.StatusCode);
        Assert.True((await client.FetchPartitionMetadataAsync("foo", 0)).Paused);
        await client.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest() with { Resume = true }).TakeAsync(1);
        Assert.False((await client.FetchPartitionMetadataAsync("foo", 0)).Paused);
    }

    [Fact]
    public async Task Handler_form_delivers_in_order_and_completes_at_the_stop_position()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("foo", "foo");
        for (var i = 0; i < 3; i++)
        {
            await client.PublishAsync("foo", Bytes($"{i}"));
        }

        var received = new List<(long Offset, string Value)>();
        await using var subscription = await client.SubscribeAsync(
            "foo",
            async (message, ct) =>
            {
                await Task.Yield(); // an asynchronous handler still sees one message at a time
                received.Add((message.Offset, message.GetValueAsString()));
            },
            SubscribeOptions.Default.StartAtEarliest().StopAtOffset(4));
        for (var i = 3; i < 6; i++)
        {
            await client.PublishAsync("foo", Bytes($"{i}"));
        }

        await subscription.Completion.WaitAsync(WaitLimit);
        Assert.Equal(Enumerable.Range(0, 5).Select(i => ((long)i, $"{i}")), received);
    }

    [Fact]
    public async Task Handler_exception_ends_the_subscription_with_that_exception()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions);
        await client.CreateStreamAsync("foo", "foo");
        await client.PublishAsync("foo", Bytes("ok"));
        await client.PublishAsync("foo", Bytes("bad"));
        await client.PublishAsync("foo", Bytes("never"));
        var seen = new List<string>();
        await using var subscription = await client.SubscribeAsync(
            "foo",
            (message, _) =>
            {
                seen.Add(message.GetValueAsString());
                return message.GetValueAsString() == "bad" ? throw new InvalidOperationException("boom") : ValueTask.CompletedTask;
            },
            SubscribeOptions.Default.StartAtEarliest());
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => subscription.Completion.WaitAsync(WaitLimit));
        Assert.Equal("boom", ex.Message);
        Assert.Equal(["ok", "bad"], seen);
    }
}
