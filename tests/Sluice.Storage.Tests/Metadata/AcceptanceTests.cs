using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using Sluice.TestKit;
using static Sluice.Storage.Tests.Metadata.Meta;

namespace Sluice.Storage.Tests.Metadata;

/// <summary>storage-seeds.md §3.7, one test per item, against the embedded store.</summary>
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
    public async Task A02_Second_put_keeps_create_revision_and_bumps_version()
    {
        await using var h = await StoreHarness.StartAsync();
        await h.Store.Put("foo", "a");
        await h.Store.Put("foo", "b");
        var kv = Assert.Single((await h.Store.Get("foo")).Kvs);
        Assert.Equal((2L, 3L, 2L, "b"), (kv.CreateRevision, kv.ModRevision, kv.Version, kv.ValueString));
    }

    [Fact]
    public async Task A03_Put_after_delete_starts_a_new_generation()
    {
        await using var h = await StoreHarness.StartAsync();
        await h.Store.Put("foo", "a");
        await h.Store.Delete("foo");
        await h.Store.Put("foo", "c");
        var kv = Assert.Single((await h.Store.Get("foo")).Kvs);
        Assert.Equal((1L, 4L, 4L), (kv.Version, kv.CreateRevision, kv.ModRevision));
    }

    [Fact]
    public async Task A04_Txn_writes_share_one_revision_in_order()
    {
        await using var h = await StoreHarness.StartAsync();
        await h.Store.Put("c", "x");
        var before = h.Store.Revision;
        await using var watch = h.Store.WatchAsync(RangeLikeWatch("a", "d")).GetAsyncEnumerator();
        var txn = await h.Store.TxnAsync(new TxnRequest
        {
            Success =
            [
                RequestOp.ForPut(new PutRequest(B("a"), B("1"))),
                RequestOp.ForPut(new PutRequest(B("b"), B("2"))),
                RequestOp.ForDeleteRange(new DeleteRangeRequest(B("c"))),
            ],
        });
        Assert.True(txn.Succeeded);
        Assert.Equal(before + 1, txn.Header.Revision);
        Assert.Equal(before + 1, h.Store.Revision);
        var response = await watch.NextAsync();
        Assert.Equal(["a", "b", "c"], response.Events.Select(e => e.Kv.KeyString));
        Assert.Equal([WatchEventType.Put, WatchEventType.Put, WatchEventType.Delete], response.Events.Select(e => e.Type));
        Assert.All(response.Events, e => Assert.Equal(before + 1, e.Kv.ModRevision));
    }

    [Fact]
    public async Task A05_Txn_without_writes_and_delete_of_nothing_keep_the_revision()
    {
        await using var h = await StoreHarness.StartAsync();
        await h.Store.Put("k", "v");
        var rev = h.Store.Revision;
        var txn = await h.Store.TxnAsync(new TxnRequest { Success = [RequestOp.ForRange(new RangeRequest(B("k")))] });
        Assert.Equal(rev, txn.Header.Revision);
        var deleted = await h.Store.Delete("missing");
        Assert.Equal(0, deleted.Deleted);
        Assert.Equal(rev, deleted.Header.Revision);
        Assert.Equal(rev, h.Store.Revision);
    }

    [Fact]
    public async Task A06_Range_end_is_exclusive_and_nul_end_means_from_key()
    {
        await using var h = await StoreHarness.StartAsync();
        await h.Store.Put("foo1", "1");
        await h.Store.Put("foo2", "2");
        await h.Store.Put("foo3", "3");
        var range = await h.Store.RangeAsync(new RangeRequest(B("foo")) { RangeEnd = B("foo3") });
        Assert.Equal(["foo1", "foo2"], range.Kvs.Select(k => k.KeyString));
        var from = await h.Store.RangeAsync(new RangeRequest(B("foo")) { RangeEnd = KeyRanges.FromKey });
        Assert.Equal(["foo1", "foo2", "foo3"], from.Kvs.Select(k => k.KeyString));
        var prefix = await h.Store.RangeAsync(RangeRequest.Prefix("foo"));
        Assert.Equal(3, prefix.Count);
    }

    [Fact]
    public async Task A07_Limit_sets_more_and_count_covers_every_match()
    {
        await using var h = await StoreHarness.StartAsync();
        foreach (var k in new[] { "k1", "k2", "k3" })
        {
            await h.Store.Put(k, "v");
        }

        var range = await h.Store.RangeAsync(RangeRequest.Prefix("k") with { Limit = 1 });
        Assert.Equal("k1", Assert.Single(range.Kvs).KeyString);
        Assert.True(range.More);
        Assert.Equal(3, range.Count);
        var countOnly = await h.Store.RangeAsync(RangeRequest.Prefix("k") with { CountOnly = true });
        Assert.Empty(countOnly.Kvs);
        Assert.Equal(3, countOnly.Count);
        var keysOnly = await h.Store.RangeAsync(RangeRequest.Prefix("k") with { KeysOnly = true });
        Assert.All(keysOnly.Kvs, kv => Assert.Empty(kv.Value));
    }

    [Fact]
    public async Task A08_Range_at_a_past_revision_returns_the_value_then()
    {
        await using var h = await StoreHarness.StartAsync();
        await h.Store.Put("foo", "old");
        await h.Store.Put("foo", "new");
        await h.Store.Put("bar", "x");
        Assert.Equal("old", Assert.Single((await h.Store.Get("foo", revision: 2)).Kvs).ValueString);
        Assert.Empty((await h.Store.Get("bar", revision: 2)).Kvs);
    }

    [Fact]
    public async Task A09_Reads_below_compaction_fail_and_above_current_are_future()
    {
        await using var h = await StoreHarness.StartAsync();
        await h.Store.Put("a", "1");
        await h.Store.Put("a", "2");
        await h.Store.Put("a", "3"); // revisions 2..4
        await h.Store.CompactAsync(4);
        var compacted = await Assert.ThrowsAsync<CompactedException>(async () => await h.Store.Get("a", 1));
        Assert.Equal(4, compacted.CompactRevision);
        await Assert.ThrowsAsync<CompactedException>(async () => await h.Store.Get("a", 2));
        Assert.Equal("3", Assert.Single((await h.Store.Get("a", 4)).Kvs).ValueString);
        var future = await Assert.ThrowsAsync<FutureRevisionException>(async () => await h.Store.Get("a", 5));
        Assert.Equal(4, future.CurrentRevision);
    }

    [Fact]
    public async Task A10_Compacting_again_or_lower_fails_and_future_compaction_fails()
    {
        await using var h = await StoreHarness.StartAsync();
        for (var i = 0; i < 4; i++)
        {
            await h.Store.Put("a", $"{i}");
        }

        await h.Store.CompactAsync(4);
        await Assert.ThrowsAsync<CompactedException>(async () => await h.Store.CompactAsync(4));
        await Assert.ThrowsAsync<CompactedException>(async () => await h.Store.CompactAsync(3));
        await Assert.ThrowsAsync<FutureRevisionException>(async () => await h.Store.CompactAsync(h.Store.Revision + 1));
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
    public async Task A12_Watch_from_now_sees_put_then_delete_with_their_revisions()
    {
        await using var h = await StoreHarness.StartAsync();
        await using var watch = h.Store.WatchPrefixAsync("foo").GetAsyncEnumerator();
        var put = await h.Store.Put("foo/1", "a");
        var e1 = Assert.Single((await watch.NextAsync()).Events);
        Assert.Equal((WatchEventType.Put, put.Header.Revision), (e1.Type, e1.Kv.ModRevision));
        var del = await h.Store.Delete("foo/1");
        var e2 = Assert.Single((await watch.NextAsync()).Events);
        Assert.Equal((WatchEventType.Delete, del.Header.Revision, "foo/1"), (e2.Type, e2.Kv.ModRevision, e2.Kv.KeyString));
    }

    [Fact]
    public async Task A13_Watch_from_an_old_revision_replays_then_follows_without_gaps()
    {
        await using var h = await StoreHarness.StartAsync();
        for (var i = 0; i < 200; i++)
        {
            await h.Store.Put($"k/{i % 7}", $"{i}");
        }

        await using var watch = h.Store.WatchAsync(WatchRequest.Prefix("k/") with { StartRevision = 50 }).GetAsyncEnumerator();
        var writer = Task.Run(async () =>
        {
            for (var i = 200; i < 300; i++)
            {
                await h.Store.Put($"k/{i % 7}", $"{i}");
            }
        });
        var expected = 50L;
        while (expected <= 301)
        {
            var response = await watch.NextAsync();
            var e = Assert.Single(response.Events);
            Assert.Equal(expected, e.Kv.ModRevision);
            Assert.Equal($"{expected - 2}", e.Kv.ValueString);
            expected++;
        }

        await writer;
    }

    [Fact]
    public async Task A14_Watch_from_a_compacted_revision_is_cancelled_with_the_compact_revision()
    {
        await using var h = await StoreHarness.StartAsync();
        for (var i = 0; i < 5; i++)
        {
            await h.Store.Put("a", $"{i}");
        }

        await h.Store.CompactAsync(5);
        await using var watch = h.Store.WatchAsync(new WatchRequest(B("a")) { StartRevision = 3 }).GetAsyncEnumerator();
        var error = await Assert.ThrowsAsync<CompactedException>(async () => await watch.MoveNextAsync());
        Assert.Equal(5, error.CompactRevision);
        Assert.Equal(3, error.RequestedRevision);
    }

    [Fact]
    public async Task A15_Watch_from_a_future_revision_waits_for_it()
    {
        await using var h = await StoreHarness.StartAsync();
        var start = h.Store.Revision + 5;
        await using var watch = h.Store.WatchAsync(new WatchRequest(B("a")) { StartRevision = start }).GetAsyncEnumerator();
        for (var i = 0; i < 8; i++)
        {
            await h.Store.Put("a", $"{i}");
        }

        Assert.Equal(start, Assert.Single((await watch.NextAsync()).Events).Kv.ModRevision);
        Assert.Equal(start + 1, Assert.Single((await watch.NextAsync()).Events).Kv.ModRevision);
    }

    [Fact]
    public async Task A16_Slow_watcher_that_drains_later_gets_every_event_in_order()
    {
        await using var h = await StoreHarness.StartAsync();
        await using var watch = h.Store.WatchPrefixAsync("s/").GetAsyncEnumerator();
        var first = h.Store.Revision + 1;
        for (var i = 0; i < 1000; i++)
        {
            await h.Store.Put($"s/{i % 3}", $"{i}");
        }

        for (var i = 0; i < 1000; i++)
        {
            var e = Assert.Single((await watch.NextAsync()).Events);
            Assert.Equal(first + i, e.Kv.ModRevision);
        }
    }

    [Fact]
    public async Task A17_Progress_request_on_a_synced_watcher_reports_the_store_revision()
    {
        await using var h = await StoreHarness.StartAsync();
        await h.Store.Put("x", "1");
        await using var watch = h.Store.WatchPrefixAsync("p/").GetAsyncEnumerator();
        var pending = watch.NextAsync();
        h.Store.RequestWatchProgress();
        var response = await pending;
        Assert.True(response.IsProgressNotify);
        Assert.Equal(h.Store.Revision, response.Header.Revision);
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
    public async Task A19_Create_if_absent_lets_exactly_one_concurrent_caller_win()
    {
        await using var h = await StoreHarness.StartAsync();
        var key = B("leader");
        var attempts = Enumerable.Range(0, 16).Select(i => Task.Run(async () => await h.Store.TxnAsync(new TxnRequest
        {
            Compares = [Compare.CreateRevision(key, CompareResult.Equal, 0)],
            Success = [RequestOp.ForPut(new PutRequest(key, B($"broker-{i}")))],
            Failure = [RequestOp.ForRange(new RangeRequest(key))],
        })));
        var results = await Task.WhenAll(attempts);
        var winner = Assert.Single(results, r => r.Succeeded);
        var stored = Assert.Single((await h.Store.Get("leader")).Kvs);
        Assert.Equal(1, stored.Version);
        Assert.All(results.Where(r => !r.Succeeded), r => Assert.Equal(stored, Assert.Single(r.Responses[0].Range!.Kvs)));
        Assert.Equal(winner.Header.Revision, stored.ModRevision);
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

    private static WatchRequest RangeLikeWatch(string from, string to) => new(B(from)) { RangeEnd = B(to) };
}
