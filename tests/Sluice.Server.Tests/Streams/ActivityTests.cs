using Sluice.Protocol.Api;
using static Sluice.Server.Tests.BrokerHarness;

namespace Sluice.Server.Tests.Streams;

public sealed class ActivityTests
{
    [Fact]
    public async Task Behaviour38_activity_stream_records_operations_in_order_starting_with_its_own_creation()
    {
        await using var h = await StartAsync(o => o with { Activity = o.Activity with { Enabled = true } });
        await h.CreateStreamAsync("foo", "foo", partitions: 2);
        await h.PauseAsync("foo", true, 1);
        await h.PublishAsync("foo", "x", partition: 1);
        await h.SetReadonlyAsync("foo", true, 0);
        await h.DeleteStreamAsync("foo");

        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "__activity", StartPosition = StartPosition.Earliest });
        var events = (await ReadAsync(sub, 6)).Select(m => ActivityStreamEvent.Parser.ParseFrom(m.Value)).ToList();
        Assert.Equal(
            [ActivityStreamOp.CreateStream, ActivityStreamOp.CreateStream, ActivityStreamOp.PauseStream, ActivityStreamOp.ResumeStream, ActivityStreamOp.SetStreamReadonly, ActivityStreamOp.DeleteStream],
            events.Select(e => e.Op));
        Assert.Equal("__activity", events[0].CreateStreamOp.Stream);
        Assert.Equal([0], events[0].CreateStreamOp.Partitions);
        Assert.Equal("foo", events[1].CreateStreamOp.Stream);
        Assert.Equal([0, 1], events[1].CreateStreamOp.Partitions);
        Assert.Equal(("foo", true), (events[2].PauseStreamOp.Stream, events[2].PauseStreamOp.ResumeAll));
        Assert.Equal([1], events[3].ResumeStreamOp.Partitions);
        Assert.True(events[4].SetStreamReadonlyOp.Readonly);
        Assert.Equal("foo", events[5].DeleteStreamOp.Stream);
        for (var i = 1; i < events.Count; i++)
        {
            Assert.True(events[i].Id > events[i - 1].Id, "event ids increase");
        }
    }

    [Fact]
    public async Task With_ack_policy_none_events_are_written_without_waiting_for_an_ack()
    {
        // An ack that never comes (min ISR 2 on one server) would hold each operation for the 30 s timeout.
        await using var h = await StartAsync(o => o with
        {
            Activity = o.Activity with { Enabled = true, PublishAckPolicy = Sluice.Server.Configuration.PublishAckPolicy.None, PublishTimeout = TimeSpan.FromSeconds(30) },
            Clustering = o.Clustering with { MinInsyncReplicas = 2 },
        });
        await h.CreateStreamAsync("foo", "foo");

        await using var sub = await h.SubscribeAsync(new SubscribeRequest { Stream = "__activity", StartPosition = StartPosition.Earliest });
        var created = ActivityStreamEvent.Parser.ParseFrom((await ReadAsync(sub, 2))[1].Value);
        Assert.Equal(("foo", ActivityStreamOp.CreateStream), (created.CreateStreamOp.Stream, created.Op));
    }

    [Fact]
    public async Task An_event_whose_ack_does_not_come_gives_up_after_the_publish_timeout()
    {
        // Min ISR 2 on one server: AckPolicy ALL messages are never committed, so the event's ack never comes.
        await using var h = await StartAsync(o => o with
        {
            Activity = o.Activity with { Enabled = true, PublishTimeout = TimeSpan.FromMilliseconds(200) },
            Clustering = o.Clustering with { MinInsyncReplicas = 2 },
        });

        var clock = System.Diagnostics.Stopwatch.StartNew();
        await h.CreateStreamAsync("foo", "foo");
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(150), TimeSpan.FromSeconds(3)); // not the old fixed 5 s
    }
}
