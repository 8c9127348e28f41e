using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using Sluice.TestKit;
using static Sluice.Storage.Tests.Metadata.Meta;

namespace Sluice.Storage.Tests.Metadata;

/// <summary>
/// storage-seeds.md §3.7 items that only the embedded store can show (an empty store, restarts, a fake clock).
/// A02–A10, A12–A17 and A19 hold for every store and run against the embedded store and etcd alike in
/// <see cref="Contract.StoreContractTests"/>.
/// </summary>
public class AcceptanceTests
{
    [Fact]
    public async Task A01_Empty_store_is_at_revision_1_and_the_first_put_returns_2()
    {
        await using var h = await StoreHarness.StartAsync();
        Assert.Equal(1, h.Store.Revision);
        Assert.Equal(1, (await h.Store.Get("foo")).Header.Revision);
        Assert.Equal(2, (await h.Store.Put("foo", "a")).Header.Revision);
        Assert.Equal(2, h.Store.Revision);
    }

    [Fact]
    public async Task A11_Compacting_a_trailing_tombstone_does_not_rewind_the_revision_after_restart()
    {
        await using var h = await StoreHarness.StartAsync();
        await h.Store.Put("a", "1");
        await h.Store.Delete("a"); // revision 3 is a tombstone
        await h.Store.CompactAsync(3);
        await h.RestartAsync();
        Assert.Equal(3, h.Store.Revision);
        Assert.Equal(4, (await h.Store.Put("b", "x")).Header.Revision);

        h.Store.Checkpoint(); // and the same through a snapshot
        await h.Store.Delete("b");
        await h.Store.CompactAsync(5);
        h.Store.Checkpoint();
        await h.RestartAsync();
        Assert.Equal(5, h.Store.Revision);
        Assert.Equal(5, h.Store.CompactRevision);
    }

    [Fact]
    public async Task A18_Expired_lease_deletes_its_key_and_watchers_see_it()
    {
        var clock = new ManualTimeProvider();
        await using var h = await StoreHarness.StartAsync(MetadataStoreOptions.Default with { TimeProvider = clock, MaintenanceInterval = TimeSpan.FromMilliseconds(10) });
        var lease = await h.Store.LeaseGrantAsync(5);
        await h.Store.Put("k", "v", lease.Id);
        await using var watch = h.Store.WatchAsync(new WatchRequest(B("k"))).GetAsyncEnumerator();
        var ttl = await h.Store.LeaseTimeToLiveAsync(lease.Id, keys: true);
        Assert.Equal((5L, 5L), (ttl.Ttl, ttl.GrantedTtl));
        Assert.Equal("k", S(Assert.Single(ttl.Keys)));

        var pending = watch.NextAsync();
        clock.Advance(TimeSpan.FromSeconds(6));
        var e = Assert.Single((await pending).Events);
        Assert.Equal(WatchEventType.Delete, e.Type);
        Assert.Empty((await h.Store.Get("k")).Kvs);
        Assert.Equal(-1, (await h.Store.LeaseTimeToLiveAsync(lease.Id)).Ttl);
    }

    [Fact]
    public async Task A20_Restart_and_restore_from_snapshot_give_the_same_hash_and_reads()
    {
        await using var h = await StoreHarness.StartAsync();
        for (var i = 0; i < 50; i++)
        {
            await h.Store.Put($"k/{i % 9}", $"v{i}");
            if (i % 11 == 0)
            {
                await h.Store.Delete($"k/{i % 5}");
            }
        }

        await h.Store.CompactAsync(20);
        var lease = await h.Store.LeaseGrantAsync(60);
        await h.Store.Put("leased", "x", lease.Id);
        var hash = await h.Store.HashKVAsync();
        var all = await h.Store.RangeAsync(new RangeRequest([0]) { RangeEnd = KeyRanges.FromKey });
        var past = await h.Store.RangeAsync(RangeRequest.Prefix("k/") with { Revision = 30 });

        await h.RestartAsync();
        Assert.Equal(hash.Hash, (await h.Store.HashKVAsync()).Hash);
        Assert.Equal(all.Kvs, (await h.Store.RangeAsync(new RangeRequest([0]) { RangeEnd = KeyRanges.FromKey })).Kvs);

        using var snapshot = new MemoryStream();
        await h.Store.SnapshotAsync(snapshot);
        snapshot.Position = 0;
        using var target = new TempDirectory("sluice-restore");
        await using var restored = await EmbeddedMetadataStore.RestoreAsync(snapshot, target.Sub("store"), h.Options);
        Assert.Equal(h.Store.Revision, restored.Revision);
        Assert.Equal(hash.Hash, (await restored.HashKVAsync()).Hash);
        Assert.Equal(hash.Hash, (await restored.HashKVAsync(hash.HashRevision)).Hash);
        Assert.Equal(all.Kvs, (await restored.RangeAsync(new RangeRequest([0]) { RangeEnd = KeyRanges.FromKey })).Kvs);
        Assert.Equal(past.Kvs, (await restored.RangeAsync(RangeRequest.Prefix("k/") with { Revision = 30 })).Kvs);
        Assert.Equal([lease.Id], await restored.LeaseLeasesAsync());
        Assert.Equal("leased", S(Assert.Single((await restored.LeaseTimeToLiveAsync(lease.Id, keys: true)).Keys)));
    }
}
