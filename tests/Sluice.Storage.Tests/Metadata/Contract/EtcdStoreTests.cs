using Sluice.Etcd;
using Sluice.Storage.Metadata;
using static Sluice.Storage.Tests.Metadata.Meta;

namespace Sluice.Storage.Tests.Metadata.Contract;

/// <summary>What only a remote store shows: etcd going away and coming back. These tests stop and restart their etcd.</summary>
public sealed class EtcdStoreTests(EtcdFixture fixture) : IClassFixture<EtcdFixture>
{
    private readonly string _prefix = $"t{Guid.NewGuid():N}/";

    [Fact]
    public async Task Watch_survives_an_etcd_restart_and_delivers_the_changes_made_meanwhile_once_in_order()
    {
        await using var store = await fixture.ConnectAsync();
        await using var watch = store.WatchPrefixAsync(_prefix).GetAsyncEnumerator();
        var first = (await store.Put(_prefix + "k", "0")).Header.Revision;
        Assert.Equal(first, Assert.Single((await watch.NextAsync()).Events).Kv.ModRevision);
        var pending = watch.NextAsync(); // waiting on the stream when etcd dies

        await fixture.Etcd.StopAsync();
        await fixture.Etcd.StartAgainAsync();

        // Written by another client as soon as etcd is back, while the watch is still reconnecting.
        await using (var writer = await fixture.ConnectAsync())
        {
            for (var i = 1; i <= 5; i++)
            {
                await writer.Put(_prefix + "k", $"{i}");
            }
        }

        var seen = new List<string> { Assert.Single((await pending).Events).Kv.ValueString };
        for (var i = 2; i <= 5; i++)
        {
            seen.Add(Assert.Single((await watch.NextAsync()).Events).Kv.ValueString);
        }

        Assert.Equal(["1", "2", "3", "4", "5"], seen);
        var last = await store.Put(_prefix + "k", "6"); // the same store works again too
        Assert.Equal(first + 6, last.Header.Revision);
        var next = Assert.Single((await watch.NextAsync()).Events); // no duplicate of 1..5 before it
        Assert.Equal(("6", last.Header.Revision), (next.Kv.ValueString, next.Kv.ModRevision));
    }

    [Fact]
    public async Task A_call_while_etcd_is_down_fails_with_MetadataUnavailableException_within_its_deadline()
    {
        var options = fixture.Options with { RequestTimeout = TimeSpan.FromSeconds(1), DialTimeout = TimeSpan.FromMilliseconds(500) };
        await using var store = await fixture.ConnectAsync(options);
        await fixture.Etcd.StopAsync();
        try
        {
            var put = Task.Run(async () => await store.Put(_prefix + "down", "x"));
            Assert.True(await Task.WhenAny(put, Task.Delay(Meta.Timeout)) == put, "the call did not end");
            var error = await Assert.ThrowsAsync<MetadataUnavailableException>(() => put);
            Assert.Contains(fixture.Etcd.ClientUrl, error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(" at ", error.Message, StringComparison.Ordinal); // no stack trace for clients
            await Assert.ThrowsAsync<MetadataUnavailableException>(async () => await EtcdMetadataStore.ConnectAsync(options));
        }
        finally
        {
            await fixture.Etcd.StartAgainAsync();
        }

        // And the same store answers again once etcd is back.
        await WaitUntilAsync(
            async () =>
            {
                try
                {
                    await store.Put(_prefix + "up", "x");
                    return true;
                }
                catch (MetadataUnavailableException)
                {
                    return false;
                }
            },
            "the store to reach etcd again");
    }
}
