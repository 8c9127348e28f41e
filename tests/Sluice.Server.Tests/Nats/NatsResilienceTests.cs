using System.Text;
using NATS.Client.Core;
using Sluice.Protocol.Api;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;
using Sluice.Server.Nats;
using Sluice.TestKit;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Nats;

public sealed class NatsResilienceTests
{
    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public async Task Capture_resumes_after_nats_server_is_killed_and_restarted_at_the_same_address()
    {
        await using var h = await NatsBrokerHarness.StartAsync(natsOptions: new NatsServerProcessOptions { StableAddress = true });
        await h.CreateStreamAsync("rc", "rc");
        await h.PublishAsync("rc", Utf8("before"));
        await h.WaitForNewestOffsetAsync("rc", 0);

        await h.Nats.KillAsync();
        await WaitUntilAsync(() => Task.FromResult(h.Attachment.Connection.ConnectionState == NatsConnectionState.Reconnecting), "the broker to notice the loss");
        await h.Nats.RestartAsync();
        await WaitUntilAsync(() => Task.FromResult(h.Attachment.Connection.ConnectionState == NatsConnectionState.Open), "the broker to reconnect", TimeSpan.FromSeconds(20));
        await WaitUntilAsync(() => Task.FromResult(h.Client.ConnectionState == NatsConnectionState.Open), "the publisher to reconnect", TimeSpan.FromSeconds(20));
        await h.SyncBrokerAsync(); // the re-sent SUBs are processed

        await h.PublishAsync("rc", Utf8("after"));
        Assert.Equal(["before", "after"], (await h.ReadAllAsync("rc", 2)).Select(m => m.Value.ToStringUtf8()));
    }

    [Fact]
    public async Task Behaviour39_a_NATS_fed_partition_auto_pauses_after_silence_unless_it_has_subscribers_and_that_disables_it()
    {
        await using var h = await NatsBrokerHarness.StartAsync(o => o with { Streams = o.Streams with { AutoPauseTime = TimeSpan.FromMilliseconds(100) } });
        await h.CreateStreamAsync("idle", "idle");
        await h.CreateStreamAsync("watched", "watched", configure: r => r.AutoPauseDisableIfSubscribers = new NullableBool { Value = true });
        // With resume: on a loaded machine the 100 ms can pass between the create and this subscribe.
        await using var subscriber = await h.Broker.SubscribeAsync(new SubscribeRequest { Stream = "watched", Resume = true });

        for (var i = 0; i < 5; i++)
        {
            await h.PublishAsync("watched", Utf8("m" + i));
        }

        // On a loaded machine 100 ms can pass before the first NATS message lands; a partition paused that early
        // unsubscribed (its messages are lost), so resume it and publish again until one is stored.
        await WaitUntilAsync(
            async () =>
            {
                var m = await h.Broker.PartitionMetadataAsync("idle");
                if (m.NewestOffset >= 0)
                {
                    return true;
                }

                if (m.Paused)
                {
                    await using (await h.Broker.SubscribeAsync(new SubscribeRequest { Stream = "idle", Resume = true }))
                    {
                    }

                    await h.SyncBrokerAsync();
                }

                await h.PublishAsync("idle", Utf8("m"));
                return false;
            },
            "a NATS message to be stored in the idle stream");

        await ReadAsync(subscriber, 5);
        await WaitUntilAsync(async () => (await h.Broker.PartitionMetadataAsync("idle")).Paused, "the idle NATS-fed partition to auto-pause");
        var idle = await h.Broker.PartitionMetadataAsync("idle");
        Assert.True(idle.NewestOffset >= 0);
        // The count moves once the append returns, which can be after a subscriber has read the message.
        await WaitUntilAsync(() => Task.FromResult(h.Attachment.Received >= 6), "the six stored NATS messages to be counted");

        // The idle one paused, so the watched one has been silent for longer than the pause time too.
        var pausedAt = DateTime.UtcNow;
        await WaitUntilAsync(() => Task.FromResult(DateTime.UtcNow - pausedAt > TimeSpan.FromMilliseconds(300)), "three more pause periods");
        Assert.False((await h.Broker.PartitionMetadataAsync("watched")).Paused, "a partition with a subscriber auto-paused despite autoPauseDisableIfSubscribers");
    }

    [Fact]
    public async Task Nats_user_and_password_are_used_and_wrong_credentials_fail_startup_clearly()
    {
        var auth = new NatsServerProcessOptions { User = "sluice", Password = "s3cret" };
        await using (var h = await NatsBrokerHarness.StartAsync(o => o with { Nats = o.Nats with { User = "sluice", Password = "s3cret" } }, auth))
        {
            await h.CreateStreamAsync("auth", "auth");
            await h.PublishAsync("auth", Utf8("with credentials"));
            await h.WaitForNewestOffsetAsync("auth", 0);

            using var dir = new TempDirectory("sluice-nats-auth");
            var wrong = ServerOptions.Default with
            {
                Host = "127.0.0.1",
                Port = 0,
                DataDir = dir.Path,
                Nats = NatsConnectionSettings.Default with { Servers = [h.Nats.Url], User = "sluice", Password = "wrong" },
            };
            var ex = await Assert.ThrowsAsync<NatsAttachmentException>(async () => await SluiceServer.StartAsync(wrong));
            Assert.Contains(h.Nats.Url, ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Without_NATS_configured_the_broker_has_no_NATS_link()
    {
        await using var h = await StartAsync();
        Assert.Null(h.Server.Broker.Context.Nats);
        await h.CreateStreamAsync("local", "local");
        var ack = await h.PublishAsync("local", "in-process");
        Assert.Equal(0, ack!.Offset);
    }
}
