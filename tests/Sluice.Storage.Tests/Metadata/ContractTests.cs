using Sluice.Storage.Metadata;
using static Sluice.Storage.Tests.Metadata.Meta;

namespace Sluice.Storage.Tests.Metadata;

/// <summary>Embedded-only parts of the contract (restarts, a fake clock, auto-compaction settings); the rest is in <see cref="Contract.StoreContractTests"/>.</summary>
public class ContractTests
{
    [Fact]
    public async Task Leases_survive_a_restart_with_a_fresh_ttl_and_revoke_deletes_their_keys()
    {
        var clock = new ManualTimeProvider();
        await using var h = await StoreHarness.StartAsync(MetadataStoreOptions.Default with { TimeProvider = clock, MaintenanceInterval = TimeSpan.FromMilliseconds(10) });
        var lease = await h.Store.LeaseGrantAsync(10, id: 42);
        Assert.Equal(42, lease.Id);
        await Assert.ThrowsAsync<LeaseExistsException>(async () => await h.Store.LeaseGrantAsync(10, id: 42));
        await h.Store.Put("a", "1", lease.Id);
        await h.Store.Put("b", "2", lease.Id);
        clock.Advance(TimeSpan.FromSeconds(8));
        Assert.Equal(2, (await h.Store.LeaseTimeToLiveAsync(42)).Ttl);
        await h.RestartAsync();
        clock.Advance(TimeSpan.FromSeconds(5)); // 13 s after the grant, but only 5 since the restart
        Assert.Equal(5, (await h.Store.LeaseTimeToLiveAsync(42)).Ttl);
        Assert.Equal(2, (await h.Store.GetPrefixAsync("")).Count);
        Assert.Equal(10, (await h.Store.LeaseKeepAliveAsync(42)).Ttl);

        await using var watch = h.Store.WatchAsync(new WatchRequest(B("a")) { RangeEnd = B("c") }).GetAsyncEnumerator();
        var revision = h.Store.Revision;
        await h.Store.LeaseRevokeAsync(42);
        var response = await watch.NextAsync();
        Assert.Equal(["a", "b"], response.Events.Select(e => e.Kv.KeyString));
        Assert.All(response.Events, e => Assert.Equal((WatchEventType.Delete, revision + 1), (e.Type, e.Kv.ModRevision)));
        Assert.Empty(await h.Store.LeaseLeasesAsync());
    }

    [Fact]
    public async Task Auto_compaction_keeps_the_configured_revisions_and_cancels_a_watcher_left_behind()
    {
        await using var h = await StoreHarness.StartAsync(MetadataStoreOptions.Default with { AutoCompactionRetainRevisions = 10, MaintenanceInterval = TimeSpan.FromMilliseconds(10) });
        await using var lagging = h.Store.WatchAsync(new WatchRequest(B("k"))).GetAsyncEnumerator();
        for (var i = 0; i < 40; i++)
        {
            await h.Store.Put("k", $"{i}");
        }

        await WaitUntilAsync(() => Task.FromResult(h.Store.CompactRevision >= h.Store.Revision - 11), "auto-compaction");
        Assert.True(h.Store.CompactRevision <= h.Store.Revision - 10);
        var error = await Assert.ThrowsAsync<CompactedException>(async () => await lagging.MoveNextAsync());
        Assert.Equal(2, error.RequestedRevision);
    }

    [Fact]
    public async Task Time_window_compaction_follows_the_clock()
    {
        var clock = new ManualTimeProvider();
        await using var h = await StoreHarness.StartAsync(MetadataStoreOptions.Default with
        {
            TimeProvider = clock,
            AutoCompactionRetainRevisions = 0,
            AutoCompactionRetention = TimeSpan.FromMinutes(1),
            MaintenanceInterval = TimeSpan.FromMilliseconds(10),
        });
        await h.Store.Put("k", "1");
        await h.Store.Put("k", "2");
        var old = h.Store.Revision;
        Assert.Equal(0, h.Store.CompactRevision);

        // Fake time moves a second per poll; the maintenance tick samples revisions as it goes.
        await WaitUntilAsync(
            () =>
            {
                clock.Advance(TimeSpan.FromSeconds(1));
                return Task.FromResult(h.Store.CompactRevision >= old);
            },
            "time-based compaction");
        Assert.Equal("2", Assert.Single((await h.Store.Get("k")).Kvs).ValueString);
        await Assert.ThrowsAsync<CompactedException>(async () => await h.Store.Get("k", revision: old - 1));
    }
}
