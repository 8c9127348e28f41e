using System.Net;
using System.Text;
using Google.Protobuf;
using NATS.Client.Core;
using Sluice.Protocol.Api;
using Sluice.Protocol.Envelopes;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;
using Sluice.Server.Nats;
using Sluice.TestKit;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Nats;

/// <summary>
/// What the broker relies on from its NATS client (NATS.Net), checked through the broker against a real
/// nats-server: buffering while disconnected, slow partitions, NATS headers, TLS.
/// </summary>
public sealed class NatsClientBehaviourTests
{
    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>A broker whose NATS connection runs through a proxy the test can cut, while the test's client connects directly.</summary>
    private static async Task<(NatsBrokerHarness Harness, TcpProxy Proxy, EndPoint Nats)> StartBehindProxyAsync()
    {
        TcpProxy? proxy = null;
        EndPoint? target = null;
        var h = await NatsBrokerHarness.StartAsync(brokerUrl: url =>
        {
            target = new IPEndPoint(IPAddress.Loopback, new Uri(url).Port);
            proxy = TcpProxy.Start(target);
            return $"nats://{proxy.Address}";
        });
        return (h, proxy!, target!);
    }

    private static async Task CutAsync(NatsBrokerHarness h, TcpProxy proxy)
    {
        proxy.Target = null; // reconnect attempts are reset until the target is back
        proxy.DropConnections();
        await WaitUntilAsync(() => Task.FromResult(h.Attachment.Connection.ConnectionState != NatsConnectionState.Open), "the broker to notice the loss");
    }

    private static async Task RestoreAsync(NatsBrokerHarness h, TcpProxy proxy, EndPoint nats)
    {
        proxy.Target = nats;
        await WaitUntilAsync(() => Task.FromResult(h.Attachment.Connection.ConnectionState == NatsConnectionState.Open), "the broker to reconnect", TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task Copies_published_while_NATS_is_unreachable_are_buffered_and_delivered_in_order_after_the_reconnect()
    {
        var (h, proxy, nats) = await StartBehindProxyAsync();
        await using var _ = h;
        await using var __ = proxy;
        await h.CreateStreamAsync("buf", "buf");
        await using var raw = await h.SubscribeAsync("buf");

        await CutAsync(h, proxy);
        for (var i = 0; i < 20; i++)
        {
            var ack = await h.Broker.PublishAsync("buf", "copy " + i); // stored and acked: NATS being away does not hold gRPC up
            Assert.Equal(i, ack!.Offset);
        }

        await RestoreAsync(h, proxy, nats);
        var copies = new List<string>();
        for (var i = 0; i < 20; i++)
        {
            copies.Add(Envelope.DecodePublish((await NatsBrokerHarness.NextAsync(raw)).Data.AsSpan()).Value.ToStringUtf8());
        }

        Assert.Equal(Enumerable.Range(0, 20).Select(i => "copy " + i), copies);
        Assert.Equal(0, h.Attachment.PublishFailures);
    }

    [Fact]
    public async Task Copies_beyond_the_publish_buffer_while_NATS_is_unreachable_are_refused_and_counted_and_the_rest_arrive()
    {
        var (h, proxy, nats) = await StartBehindProxyAsync();
        await using var _ = h;
        await using var __ = proxy;
        await h.CreateStreamAsync("big", "big");
        await using var raw = await h.SubscribeAsync("big");

        await CutAsync(h, proxy);
        const int count = 12;
        var value = new string('v', 900_000); // 12 x 900 kB is more than the 8 MiB that may wait for the connection
        for (var i = 0; i < count; i++)
        {
            Assert.NotNull(await h.Broker.PublishAsync("big", i.ToString(System.Globalization.CultureInfo.InvariantCulture) + value));
        }

        var refused = h.Attachment.PublishFailures;
        Assert.InRange(refused, 1, count - 1);
        Assert.True((count - refused) * 900_000 <= NatsAttachment.MaxWaitingPublishBytes, $"{count - refused} copies of 900 kB were held");

        await RestoreAsync(h, proxy, nats);
        for (var i = 0; i < count - refused; i++)
        {
            var copy = Envelope.DecodePublish((await NatsBrokerHarness.NextAsync(raw)).Data.AsSpan()).Value.ToStringUtf8();
            Assert.StartsWith(i.ToString(System.Globalization.CultureInfo.InvariantCulture) + "v", copy, StringComparison.Ordinal); // the first ones, in order
        }

        Assert.Equal(count - 1, (await h.Broker.PartitionMetadataAsync("big")).NewestOffset); // every one was stored
    }

    [Fact]
    public async Task Copies_held_up_by_a_stalled_NATS_socket_are_written_again_when_the_client_times_them_out_and_none_is_lost()
    {
        var (h, proxy, _) = await StartBehindProxyAsync();
        await using var _h = h;
        await using var _p = proxy;
        await h.CreateStreamAsync("stall", "stall");
        await using var raw = await h.SubscribeAsync("stall");

        proxy.Pause(ProxyDirection.ClientToServer); // the connection stays up, but nothing the broker writes gets through
        const int count = 20;
        var value = new string('s', 900_000); // enough to fill the socket buffers, NATS.Net's write buffer and the outbox
        for (var i = 0; i < count; i++)
        {
            Assert.NotNull(await h.Broker.PublishAsync("stall", i.ToString("D2", System.Globalization.CultureInfo.InvariantCulture) + value));
        }

        var refused = h.Attachment.PublishFailures; // the outbox was full: refused at once, as while disconnected
        Assert.Equal(NatsConnectionState.Open, h.Attachment.Connection.ConnectionState);
        await WaitUntilAsync(() => Task.FromResult(h.Attachment.PublishRetries > 0), "NATS.Net to time out a waiting write (its 5 s command timeout)", TimeSpan.FromSeconds(30));
        proxy.Resume(ProxyDirection.ClientToServer);

        var received = new List<string>();
        for (var i = 0; i < count - refused; i++)
        {
            received.Add(Envelope.DecodePublish((await NatsBrokerHarness.NextAsync(raw)).Data.AsSpan()).Value.ToStringUtf8()[..2]);
        }

        Assert.Equal(Enumerable.Range(0, (int)(count - refused)).Select(i => i.ToString("D2", System.Globalization.CultureInfo.InvariantCulture)), received);
        Assert.Equal(refused, h.Attachment.PublishFailures); // the timed-out writes were not given up
    }

    [Fact]
    public async Task A_partition_that_falls_behind_drops_and_counts_NATS_messages_with_bounded_buffering_while_the_broker_keeps_serving()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("slow", "slow");
        await h.CreateStreamAsync("other", "other");
        Assert.True(h.Broker.Server.Broker.TryGetStream("slow", out var slow));
        var gate = slow.Partitions[0].Runtime!.WriteGate;
        await gate.WaitAsync(); // the partition stops appending, as on a disk that stalls

        const int published = 100_000;
        try
        {
            for (var i = 0; i < published; i++)
            {
                await h.Client.PublishAsync("slow", new byte[] { 1 });
            }

            await h.Client.PingAsync();
            await h.SyncBrokerAsync(); // the broker has read everything nats-server sent it before (fails if its reader is stuck)
            await WaitUntilAsync(() => Task.FromResult(h.Attachment.SlowConsumerDropped > 0), "the overflow to be counted");

            // The shared connection is not wedged: other partitions still capture, acks and pings still flow.
            await h.PublishAsync("other", Utf8("still served"));
            await h.WaitForNewestOffsetAsync("other", 0);
        }
        finally
        {
            gate.Release();
        }

        // Everything published is either stored or counted as dropped, and what was held is bounded.
        await WaitUntilAsync(
            async () => (await h.Broker.PartitionMetadataAsync("slow")).NewestOffset + 1 + h.Attachment.SlowConsumerDropped == published,
            "the held messages to be stored");
        var stored = (await h.Broker.PartitionMetadataAsync("slow")).NewestOffset + 1;
        Assert.InRange(stored, 1, NatsAttachment.PendingMessagesPerPartition + (16 * 1024) + 1); // subscription buffer + partition queue + one in hand
        Assert.Equal(0, h.Attachment.Dropped);
    }

    [Fact]
    public async Task NATS_headers_on_captured_messages_are_not_stored_and_leave_the_payload_and_the_envelope_intact()
    {
        await using var h = await NatsBrokerHarness.StartAsync();
        await h.CreateStreamAsync("hdr", "hdr");
        await using var acks = await h.SubscribeAsync("acks.hdr");
        var headers = new NatsHeaders { ["X-Trace"] = "abc" };
        headers.Add("X-Multi", new Microsoft.Extensions.Primitives.StringValues(["1", "2"]));

        await h.Client.PublishAsync("hdr", Utf8("plain"), headers, replyTo: "r.plain");
        var envelope = new Message
        {
            Key = ByteString.CopyFromUtf8("k"),
            Value = ByteString.CopyFromUtf8("enveloped"),
            AckInbox = "acks.hdr",
            CorrelationId = "c1",
            AckPolicy = AckPolicy.Leader,
            Offset = -1,
            Headers = { ["h"] = ByteString.CopyFromUtf8("hv") },
        };
        await h.Client.PublishAsync("hdr", Envelope.EncodePublish(envelope), headers);
        await h.Client.PingAsync();

        var ack = Envelope.DecodeAck((await NatsBrokerHarness.NextAsync(acks)).Data.AsSpan());
        Assert.Equal(("c1", 1L), (ack.CorrelationId, ack.Offset));

        var messages = await h.ReadAllAsync("hdr", 2);
        Assert.Equal("plain", messages[0].Value.ToStringUtf8());
        Assert.Equal(["reply", "subject"], messages[0].Headers.Keys.Order()); // as Liftbridge: the NATS headers are not kept
        Assert.Equal("r.plain", messages[0].Headers["reply"].ToStringUtf8());
        Assert.Equal("enveloped", messages[1].Value.ToStringUtf8());
        Assert.Equal("k", messages[1].Key.ToStringUtf8());
        Assert.Equal(["h", "reply", "subject"], messages[1].Headers.Keys.Order());
        Assert.Equal(0, h.Attachment.InvalidEnvelopes);
    }

    [Fact]
    public async Task Nats_tls_settings_connect_to_a_server_that_verifies_client_certificates_and_missing_ones_fail_startup_clearly()
    {
        using var serverDir = new TempDirectory("nats-tls-server");
        using var clientDir = new TempDirectory("nats-tls-client");
        var server = TestCertificate.CreateSelfSigned(serverDir);
        var client = TestCertificate.CreateSelfSigned(clientDir); // its own CA: nats-server trusts it through --tlscacert
        var tlsServer = new NatsServerProcessOptions
        {
            ExtraArgs = ["--tls", "--tlscert", server.CertificatePath, "--tlskey", server.KeyPath, "--tlsverify", "--tlscacert", client.CertificatePath],
        };
        var tls = NatsConnectionSettings.Default with { TlsCa = server.CertificatePath, TlsCert = client.CertificatePath, TlsKey = client.KeyPath };

        await using var h = await NatsBrokerHarness.StartAsync(
            o => o with { Nats = tls with { Servers = o.Nats.Servers } },
            tlsServer,
            client: c => c with
            {
                TlsOpts = new NatsTlsOpts { Mode = TlsMode.Require, CaFile = server.CertificatePath, CertFile = client.CertificatePath, KeyFile = client.KeyPath },
            });
        Assert.True(h.Attachment.Connection.ServerInfo!.TlsRequired);
        await h.CreateStreamAsync("tls", "tls");
        await h.PublishAsync("tls", Utf8("over tls"));
        Assert.Equal("over tls", Assert.Single(await h.ReadAllAsync("tls", 1)).Value.ToStringUtf8());

        using var dir = new TempDirectory("sluice-nats-tls");
        var options = ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dir.Path };
        foreach (var wrong in new[]
        {
            tls with { TlsCert = "", TlsKey = "" }, // no client certificate: nats-server refuses the handshake
            tls with { TlsCa = "" }, // the self-signed server certificate is not trusted
        })
        {
            var ex = await Assert.ThrowsAsync<NatsAttachmentException>(async () =>
                await SluiceServer.StartAsync(options with { Nats = wrong with { Servers = [h.Nats.Url] } }));
            Assert.Contains(h.Nats.Url, ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_copy_larger_than_the_servers_max_payload_is_refused_and_counted_and_the_gRPC_publish_still_succeeds()
    {
        await using var h = await NatsBrokerHarness.StartAsync(natsOptions: new NatsServerProcessOptions { Config = "max_payload: 1024\n" });
        await h.CreateStreamAsync("mp", "mp");
        await using var raw = await h.SubscribeAsync("mp");

        Assert.Equal(0, (await h.Broker.PublishAsync("mp", new string('x', 2000)))!.Offset); // stored; its envelope is over 1 KiB
        Assert.Equal(1, (await h.Broker.PublishAsync("mp", "small"))!.Offset);

        Assert.Equal("small", Envelope.DecodePublish((await NatsBrokerHarness.NextAsync(raw)).Data.AsSpan()).Value.ToStringUtf8());
        Assert.Equal(1, h.Attachment.PublishFailures);
    }

    [Fact]
    public async Task No_NATS_listening_fails_startup_clearly()
    {
        using var dir = new TempDirectory("sluice-nats-none");
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var url = $"nats://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}";
        listener.Stop();
        var options = ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dir.Path, Nats = NatsConnectionSettings.Default with { Servers = [url] } };
        var ex = await Assert.ThrowsAsync<NatsAttachmentException>(async () => await SluiceServer.StartAsync(options));
        Assert.Contains(url, ex.Message, StringComparison.Ordinal);
    }
}
