using System.Text;
using Sluice.Nats.JetStream;

namespace Sluice.Nats.Tests.Connection;

public class PubSubTests(NatsServerFixture fixture) : IClassFixture<NatsServerFixture>
{
    private NatsOptions Options => Wait.Options(fixture.Server.Url);

    [Fact]
    public async Task Published_message_arrives_at_the_subscriber()
    {
        await using var nats = await NatsConnection.ConnectAsync(Options);
        await using var sub = await nats.SubscribeAsync("pubsub.one");
        await nats.PublishAsync("pubsub.one", "hello"u8.ToArray());
        var msg = Assert.Single(await Wait.ReadAsync(sub, 1));
        Assert.Equal("pubsub.one", msg.Subject);
        Assert.Equal("hello", Encoding.UTF8.GetString(msg.Data.Span));
        Assert.Null(msg.Headers);
        Assert.Equal(NatsConnectionState.Connected, nats.State);
        Assert.True(nats.ServerInfo!.MaxPayload > 0);
    }

    [Fact]
    public async Task Headers_survive_the_round_trip()
    {
        await using var nats = await NatsConnection.ConnectAsync(Options);
        await using var sub = await nats.SubscribeAsync("pubsub.headers");
        var headers = new NatsHeaders { ["Nats-Msg-Id"] = "id-1" };
        headers.Add("Multi", "a");
        headers.Add("Multi", "b");
        await nats.PublishAsync("pubsub.headers", "body"u8.ToArray(), headers);
        var msg = Assert.Single(await Wait.ReadAsync(sub, 1));
        Assert.Equal("id-1", msg.Headers!["Nats-Msg-Id"]);
        Assert.True(msg.Headers.TryGetValues("Multi", out var values));
        Assert.Equal(["a", "b"], values);
        Assert.Equal("body", Encoding.UTF8.GetString(msg.Data.Span));
    }

    [Fact]
    public async Task Enumerating_a_subscription_yields_messages_in_order()
    {
        await using var nats = await NatsConnection.ConnectAsync(Options);
        var sub = await nats.SubscribeAsync("pubsub.enum");
        for (var i = 0; i < 100; i++)
        {
            await nats.PublishAsync("pubsub.enum", Encoding.UTF8.GetBytes(i.ToString()));
        }

        await nats.FlushAsync();
        var seen = new List<int>();
        using var cts = new CancellationTokenSource(Wait.Timeout);
        await foreach (var msg in sub.WithCancellation(cts.Token))
        {
            seen.Add(int.Parse(Encoding.UTF8.GetString(msg.Data.Span)));
            if (seen.Count == 100)
            {
                await sub.UnsubscribeAsync();
            }
        }

        Assert.Equal(Enumerable.Range(0, 100), seen);
    }

    [Fact]
    public async Task Queue_group_members_share_the_messages()
    {
        await using var nats = await NatsConnection.ConnectAsync(Options);
        await using var a = await nats.SubscribeAsync("pubsub.work", queueGroup: "workers");
        await using var b = await nats.SubscribeAsync("pubsub.work", queueGroup: "workers");
        for (var i = 0; i < 200; i++)
        {
            await nats.PublishAsync("pubsub.work", new byte[] { 1 });
        }

        await nats.FlushAsync();
        Assert.Equal(200, a.Msgs.Count + b.Msgs.Count);
        Assert.True(a.Msgs.Count > 0 && b.Msgs.Count > 0, $"a got {a.Msgs.Count}, b got {b.Msgs.Count}");
    }

    [Fact]
    public async Task Unsubscribe_with_max_delivers_exactly_max_then_ends()
    {
        await using var nats = await NatsConnection.ConnectAsync(Options);
        var sub = await nats.SubscribeAsync("pubsub.max");
        await sub.UnsubscribeAfterAsync(3);
        for (var i = 0; i < 10; i++)
        {
            await nats.PublishAsync("pubsub.max", new byte[] { (byte)i });
        }

        await nats.FlushAsync();
        var got = new List<byte>();
        using var cts = new CancellationTokenSource(Wait.Timeout);
        await foreach (var msg in sub.WithCancellation(cts.Token))
        {
            got.Add(msg.Data.Span[0]);
        }

        Assert.Equal([0, 1, 2], got);
    }

    [Fact]
    public async Task Wildcards_match_one_token_or_the_rest()
    {
        await using var nats = await NatsConnection.ConnectAsync(Options);
        await using var star = await nats.SubscribeAsync("wild.*");
        await using var tail = await nats.SubscribeAsync("wild.>");
        foreach (var subject in new[] { "wild.a", "wild.a.b", "other.a" })
        {
            await nats.PublishAsync(subject, new byte[] { 1 });
        }

        await nats.FlushAsync();
        Assert.Equal(["wild.a"], (await Wait.ReadAsync(star, 1)).Select(m => m.Subject));
        Assert.Equal(["wild.a", "wild.a.b"], (await Wait.ReadAsync(tail, 2)).Select(m => m.Subject));
        Assert.Equal(0, star.Msgs.Count);
    }

    [Fact]
    public async Task Flush_returns_after_the_server_delivered_everything_published_before()
    {
        await using var publisher = await NatsConnection.ConnectAsync(Options);
        await using var subscriber = await NatsConnection.ConnectAsync(Options);
        await using var sub = await subscriber.SubscribeAsync("pubsub.flush");
        await subscriber.FlushAsync();
        for (var i = 0; i < 1000; i++)
        {
            await publisher.PublishAsync("pubsub.flush", new byte[16]);
        }

        await publisher.FlushAsync();
        await subscriber.FlushAsync();
        Assert.Equal(1000, sub.Msgs.Count);
    }

    [Fact]
    public async Task Request_gets_the_reply()
    {
        await using var nats = await NatsConnection.ConnectAsync(Options);
        await using var responder = await nats.SubscribeAsync("svc.echo", async (msg, ct) =>
        {
            var headers = new NatsHeaders { ["Echo"] = "yes" };
            await msg.ReplyAsync(msg.Data.ToArray().Reverse().ToArray(), headers, ct);
        });
        await nats.FlushAsync();
        var replies = await Task.WhenAll(Enumerable.Range(0, 20).Select(async i =>
            Encoding.UTF8.GetString((await nats.RequestAsync("svc.echo", Encoding.UTF8.GetBytes($"ab{i}"))).Data.Span)));
        Assert.Equal(Enumerable.Range(0, 20).Select(i => new string($"ab{i}".Reverse().ToArray())), replies);
    }

    [Fact]
    public async Task Request_without_a_reply_times_out_with_a_typed_exception()
    {
        await using var nats = await NatsConnection.ConnectAsync(Options);
        await using var silent = await nats.SubscribeAsync("svc.silent");
        await nats.FlushAsync();
        var ex = await Assert.ThrowsAsync<NatsRequestTimeoutException>(() => nats.RequestAsync("svc.silent", timeout: TimeSpan.FromMilliseconds(200)).AsTask());
        Assert.Equal("svc.silent", ex.Subject);
    }

    [Fact]
    public async Task Request_to_a_subject_nobody_listens_on_fails_with_no_responders()
    {
        await using var nats = await NatsConnection.ConnectAsync(Options);
        var ex = await Assert.ThrowsAsync<NatsNoRespondersException>(() => nats.RequestAsync("svc.nobody").AsTask());
        Assert.Equal("svc.nobody", ex.Subject);
    }

    [Fact]
    public async Task Drain_delivers_pending_messages_to_handlers_then_closes()
    {
        await using var publisher = await NatsConnection.ConnectAsync(Options);
        var nats = await NatsConnection.ConnectAsync(Options);
        var handled = 0;
        var release = new TaskCompletionSource();
        await nats.SubscribeAsync("pubsub.drain", async (msg, ct) =>
        {
            await release.Task;
            Interlocked.Increment(ref handled);
        });
        var closed = new TaskCompletionSource();
        nats.Closed += (_, _) => closed.TrySetResult();
        await nats.FlushAsync();
        for (var i = 0; i < 50; i++)
        {
            await publisher.PublishAsync("pubsub.drain", new byte[] { 1 });
        }

        await publisher.FlushAsync();
        var drain = nats.DrainAsync().AsTask();
        release.SetResult();
        await drain.WaitAsync(Wait.Timeout);
        Assert.Equal(50, Volatile.Read(ref handled));
        Assert.Equal(NatsConnectionState.Closed, nats.State);
        await closed.Task.WaitAsync(Wait.Timeout);
        await Assert.ThrowsAsync<NatsConnectionClosedException>(() => nats.PublishAsync("pubsub.drain", new byte[1]).AsTask());
    }

    [Fact]
    public async Task Slow_consumer_drops_counts_and_signals_without_blocking_the_connection()
    {
        await using var nats = await NatsConnection.ConnectAsync(Options with { SubscriptionChannelCapacity = 10 });
        var signalled = new TaskCompletionSource<NatsSlowConsumerEventArgs>();
        nats.SlowConsumerDetected += (_, e) => signalled.TrySetResult(e);
        await using var slow = await nats.SubscribeAsync("pubsub.slow");
        await using var other = await nats.SubscribeAsync("pubsub.other");
        for (var i = 0; i < 100; i++)
        {
            await nats.PublishAsync("pubsub.slow", new byte[] { 1 });
        }

        await nats.PublishAsync("pubsub.other", new byte[] { 2 });
        await nats.FlushAsync();
        Assert.Equal(10, slow.Msgs.Count);
        Assert.Equal(90, slow.DroppedMessages);
        Assert.Equal(100, slow.ReceivedMessages);
        Assert.Equal(90, nats.DroppedMessages);
        Assert.Single(await Wait.ReadAsync(other, 1));
        var e = await signalled.Task.WaitAsync(Wait.Timeout);
        Assert.Same(slow, e.Subscription);
    }

    [Fact]
    public async Task Publishing_more_than_max_payload_fails_clearly()
    {
        await using var nats = await NatsConnection.ConnectAsync(Options);
        var max = nats.ServerInfo!.MaxPayload;
        var ex = await Assert.ThrowsAsync<NatsMaxPayloadExceededException>(() => nats.PublishAsync("pubsub.big", new byte[max + 1]).AsTask());
        Assert.Equal(max, ex.MaxPayload);
        await using var sub = await nats.SubscribeAsync("pubsub.big");
        await nats.PublishAsync("pubsub.big", new byte[max]);
        Assert.Equal(max, Assert.Single(await Wait.ReadAsync(sub, 1)).Data.Length);
    }

    [Fact]
    public async Task JetStream_publish_returns_pub_acks_with_increasing_sequence()
    {
        await using var nats = await NatsConnection.ConnectAsync(Options);
        var config = """{"name":"ORDERS","subjects":["orders.>"],"storage":"file","retention":"limits"}""";
        var created = await nats.RequestAsync("$JS.API.STREAM.CREATE.ORDERS", Encoding.UTF8.GetBytes(config));
        Assert.Contains("\"ORDERS\"", Encoding.UTF8.GetString(created.Data.Span), StringComparison.Ordinal);
        Assert.DoesNotContain("\"error\"", Encoding.UTF8.GetString(created.Data.Span), StringComparison.Ordinal);

        var sequences = new List<ulong>();
        for (var i = 0; i < 3; i++)
        {
            var ack = await nats.PublishToStreamAsync("orders.new", Encoding.UTF8.GetBytes($"order {i}"));
            Assert.Equal("ORDERS", ack.Stream);
            sequences.Add(ack.Sequence);
        }

        Assert.Equal([1UL, 2UL, 3UL], sequences);

        // The same path by hand: the raw PubAck JSON.
        var raw = await nats.RequestAsync("orders.raw", "x"u8.ToArray());
        using var json = System.Text.Json.JsonDocument.Parse(raw.Data);
        Assert.Equal("ORDERS", json.RootElement.GetProperty("stream").GetString());
        Assert.Equal(4, json.RootElement.GetProperty("seq").GetInt32());
    }
}
