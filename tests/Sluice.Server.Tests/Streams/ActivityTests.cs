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
}
