using Sluice.Storage.Metadata;
using static Sluice.Storage.Tests.Metadata.Meta;

namespace Sluice.Storage.Tests.Metadata.Contract;

/// <summary>
/// The <see cref="IMetadataStore"/> contract, run against every implementation (one subclass each). A test may share
/// its store with the other tests of its class (one etcd per class), so it writes only under its own key prefix
/// and asserts revisions relative to the store's revision when it starts.
/// </summary>
public abstract class StoreContractTests
{
    private readonly string _prefix = $"t{Guid.NewGuid():N}/";

    /// <summary>A store for one test, empty under this test's prefix; disposed by the test.</summary>
    protected abstract Task<IMetadataStore> OpenAsync();

    /// <summary>The test's key for <paramref name="name"/>.</summary>
    protected string P(string name) => _prefix + name;

    protected byte[] K(string name) => B(P(name));

    [Fact]
    public async Task Each_write_adds_one_revision_and_the_second_put_keeps_create_revision_and_bumps_version()
    {
        await using var s = await OpenAsync();
        var start = (await s.Put(P("other"), "x")).Header.Revision;
        Assert.Equal(start + 1, (await s.Put(P("foo"), "a")).Header.Revision);
        Assert.Equal(start + 1, s.Revision);
        await s.Put(P("foo"), "b");
        var kv = Assert.Single((await s.Get(P("foo"))).Kvs);
        Assert.Equal((start + 1, start + 2, 2L, "b"), (kv.CreateRevision, kv.ModRevision, kv.Version, kv.ValueString));
        Assert.Equal(start + 2, (await s.Get(P("foo"))).Header.Revision);
    }

    [Fact]
    public async Task Put_after_delete_starts_a_new_generation()
    {
        await using var s = await OpenAsync();
        var start = (await s.Put(P("foo"), "a")).Header.Revision;
        await s.Delete(P("foo"));
        await s.Put(P("foo"), "c");
        var kv = Assert.Single((await s.Get(P("foo"))).Kvs);
        Assert.Equal((1L, start + 2, start + 2), (kv.Version, kv.CreateRevision, kv.ModRevision));
    }

    [Fact]
    public async Task Txn_writes_share_one_revision_in_order()
    {
        await using var s = await OpenAsync();
        var before = (await s.Put(P("c"), "x")).Header.Revision;
        await using var watch = s.WatchAsync(new WatchRequest(K("a")) { RangeEnd = K("d") }).GetAsyncEnumerator();
        var txn = await s.TxnAsync(new TxnRequest
        {
            Success =
            [
                RequestOp.ForPut(new PutRequest(K("a"), B("1"))),
                RequestOp.ForPut(new PutRequest(K("b"), B("2"))),
                RequestOp.ForDeleteRange(new DeleteRangeRequest(K("c"))),
            ],
        });
        Assert.True(txn.Succeeded);
        Assert.Equal(before + 1, txn.Header.Revision);
        Assert.Equal(before + 1, s.Revision);
        var response = await watch.NextAsync();
        Assert.Equal([P("a"), P("b"), P("c")], response.Events.Select(e => e.Kv.KeyString));
        Assert.Equal([WatchEventType.Put, WatchEventType.Put, WatchEventType.Delete], response.Events.Select(e => e.Type));
        Assert.All(response.Events, e => Assert.Equal(before + 1, e.Kv.ModRevision));
    }

    [Fact]
    public async Task Txn_without_writes_and_delete_of_nothing_keep_the_revision()
    {
        await using var s = await OpenAsync();
        var rev = (await s.Put(P("k"), "v")).Header.Revision;
        var txn = await s.TxnAsync(new TxnRequest { Success = [RequestOp.ForRange(new RangeRequest(K("k")))] });
        Assert.Equal(rev, txn.Header.Revision);
        var deleted = await s.Delete(P("missing"));
        Assert.Equal(0, deleted.Deleted);
        Assert.Equal(rev, deleted.Header.Revision);
        Assert.Equal(rev, s.Revision);
    }

    [Fact]
    public async Task Range_end_is_exclusive_and_nul_end_means_from_key()
    {
        await using var s = await OpenAsync();
        await s.Put(P("foo1"), "1");
        await s.Put(P("foo2"), "2");
        await s.Put(P("foo3"), "3");
        var range = await s.RangeAsync(new RangeRequest(K("foo")) { RangeEnd = K("foo3") });
        Assert.Equal([P("foo1"), P("foo2")], range.Kvs.Select(k => k.KeyString));

        // Other tests' keys may follow this test's prefix; this test's keys come first.
        var from = await s.RangeAsync(new RangeRequest(K("foo")) { RangeEnd = KeyRanges.FromKey });
        Assert.Equal([P("foo1"), P("foo2"), P("foo3")], from.Kvs.Take(3).Select(k => k.KeyString));
        Assert.Equal(3, (await s.RangeAsync(RangeRequest.Prefix(P("foo")))).Count);
    }

    [Fact]
    public async Task Limit_sets_more_and_count_covers_every_match()
    {
        await using var s = await OpenAsync();
        foreach (var k in new[] { "k1", "k2", "k3" })
        {
            await s.Put(P(k), "v");
        }

        var range = await s.RangeAsync(RangeRequest.Prefix(P("k")) with { Limit = 1 });
        Assert.Equal(P("k1"), Assert.Single(range.Kvs).KeyString);
        Assert.True(range.More);
        Assert.Equal(3, range.Count);
        var countOnly = await s.RangeAsync(RangeRequest.Prefix(P("k")) with { CountOnly = true });
        Assert.Empty(countOnly.Kvs);
        Assert.Equal(3, countOnly.Count);
        var keysOnly = await s.RangeAsync(RangeRequest.Prefix(P("k")) with { KeysOnly = true });
        Assert.Equal(3, keysOnly.Kvs.Count);
        Assert.All(keysOnly.Kvs, kv => Assert.Empty(kv.Value));
    }

    [Fact]
    public async Task Range_at_a_past_revision_returns_the_value_then()
    {
        await using var s = await OpenAsync();
        var old = (await s.Put(P("foo"), "old")).Header.Revision;
        await s.Put(P("foo"), "new");
        await s.Put(P("bar"), "x");
        Assert.Equal("old", Assert.Single((await s.Get(P("foo"), revision: old)).Kvs).ValueString);
        Assert.Empty((await s.Get(P("bar"), revision: old)).Kvs);
    }

    [Fact]
    public async Task Reads_below_compaction_fail_and_above_current_are_future()
    {
        await using var s = await OpenAsync();
        var first = (await s.Put(P("a"), "1")).Header.Revision;
        await s.Put(P("a"), "2");
        var last = (await s.Put(P("a"), "3")).Header.Revision;
        await s.CompactAsync(last);
        Assert.True(s.CompactRevision >= last);
        var compacted = await Assert.ThrowsAsync<CompactedException>(async () => await s.Get(P("a"), first));
        Assert.Equal(last, compacted.CompactRevision);
        Assert.Equal(first, compacted.RequestedRevision);
        Assert.Equal("3", Assert.Single((await s.Get(P("a"), last)).Kvs).ValueString);
        var future = await Assert.ThrowsAsync<FutureRevisionException>(async () => await s.Get(P("a"), last + 1));
        Assert.Equal(last, future.CurrentRevision);
        Assert.Equal(last + 1, future.RequestedRevision);
    }

    [Fact]
    public async Task Compacting_again_or_lower_fails_and_future_compaction_fails()
    {
        await using var s = await OpenAsync();
        for (var i = 0; i < 4; i++)
        {
            await s.Put(P("a"), $"{i}");
        }

        var at = s.Revision;
        await s.CompactAsync(at);
        await Assert.ThrowsAsync<CompactedException>(async () => await s.CompactAsync(at));
        await Assert.ThrowsAsync<CompactedException>(async () => await s.CompactAsync(at - 1));
        await Assert.ThrowsAsync<FutureRevisionException>(async () => await s.CompactAsync(at + 1));
    }

    [Fact]
    public async Task Watch_from_now_sees_put_then_delete_with_their_revisions()
    {
        await using var s = await OpenAsync();
        await using var watch = s.WatchPrefixAsync(P("foo")).GetAsyncEnumerator();
        var put = await s.Put(P("foo/1"), "a");
        var e1 = Assert.Single((await watch.NextAsync()).Events);
        Assert.Equal((WatchEventType.Put, put.Header.Revision), (e1.Type, e1.Kv.ModRevision));
        var del = await s.Delete(P("foo/1"));
        var e2 = Assert.Single((await watch.NextAsync()).Events);
        Assert.Equal((WatchEventType.Delete, del.Header.Revision, P("foo/1")), (e2.Type, e2.Kv.ModRevision, e2.Kv.KeyString));
    }

    [Fact]
    public async Task Watch_filters_drop_puts_or_deletes_and_prev_kv_brings_the_old_version()
    {
        await using var s = await OpenAsync();
        await using var noPut = s.WatchAsync(WatchRequest.Prefix(P("f/")) with { NoPut = true }).GetAsyncEnumerator();
        await using var noDelete = s.WatchAsync(WatchRequest.Prefix(P("f/")) with { NoDelete = true, PrevKv = true }).GetAsyncEnumerator();
        await s.Put(P("f/1"), "a");
        await s.Put(P("f/1"), "b");
        var deleted = await s.Delete(P("f/1"));

        var delete = Assert.Single((await noPut.NextAsync()).Events);
        Assert.Equal((WatchEventType.Delete, deleted.Header.Revision), (delete.Type, delete.Kv.ModRevision));
        var first = Assert.Single((await noDelete.NextAsync()).Events);
        Assert.Equal(("a", (string?)null), (first.Kv.ValueString, first.PrevKv?.ValueString));
        var second = Assert.Single((await noDelete.NextAsync()).Events);
        Assert.Equal(("b", "a"), (second.Kv.ValueString, second.PrevKv?.ValueString));
    }

    [Fact]
    public async Task Watch_from_an_old_revision_replays_then_follows_without_gaps()
    {
        await using var s = await OpenAsync();
        var first = (await s.Put(P("k/0"), "0")).Header.Revision;
        for (var i = 1; i < 60; i++)
        {
            await s.Put(P($"k/{i % 7}"), $"{i}");
        }

        await using var watch = s.WatchAsync(WatchRequest.Prefix(P("k/")) with { StartRevision = first + 20 }).GetAsyncEnumerator();
        var writer = Task.Run(async () =>
        {
            for (var i = 60; i < 100; i++)
            {
                await s.Put(P($"k/{i % 7}"), $"{i}");
            }
        });
        for (var i = 20; i < 100; i++)
        {
            var e = Assert.Single((await watch.NextAsync()).Events);
            Assert.Equal(first + i, e.Kv.ModRevision);
            Assert.Equal($"{i}", e.Kv.ValueString);
        }

        await writer;
    }

    [Fact]
    public async Task Watch_from_a_compacted_revision_ends_with_the_compact_revision()
    {
        await using var s = await OpenAsync();
        var first = (await s.Put(P("a"), "0")).Header.Revision;
        for (var i = 1; i < 5; i++)
        {
            await s.Put(P("a"), $"{i}");
        }

        await s.CompactAsync(first + 3);
        await using var watch = s.WatchAsync(new WatchRequest(K("a")) { StartRevision = first + 1 }).GetAsyncEnumerator();
        var error = await Assert.ThrowsAsync<CompactedException>(async () => await watch.MoveNextAsync());
        Assert.Equal(first + 3, error.CompactRevision);
        Assert.Equal(first + 1, error.RequestedRevision);
    }

    [Fact]
    public async Task Watch_from_a_future_revision_waits_for_it()
    {
        await using var s = await OpenAsync();
        var start = (await s.Put(P("b"), "x")).Header.Revision + 5;
        await using var watch = s.WatchAsync(new WatchRequest(K("a")) { StartRevision = start }).GetAsyncEnumerator();
        for (var i = 0; i < 8; i++)
        {
            await s.Put(P("a"), $"{i}");
        }

        Assert.Equal(start, Assert.Single((await watch.NextAsync()).Events).Kv.ModRevision);
        Assert.Equal(start + 1, Assert.Single((await watch.NextAsync()).Events).Kv.ModRevision);
    }

    [Fact]
    public async Task Slow_watcher_that_drains_later_gets_every_event_in_order()
    {
        await using var s = await OpenAsync();
        await using var watch = s.WatchPrefixAsync(P("s/")).GetAsyncEnumerator();
        var pending = watch.NextAsync(); // the watch is open before the writes
        var first = (await s.Put(P("s/0"), "0")).Header.Revision;
        for (var i = 1; i < 300; i++)
        {
            await s.Put(P($"s/{i % 3}"), $"{i}");
        }

        Assert.Equal(first, Assert.Single((await pending).Events).Kv.ModRevision);
        for (var i = 1; i < 300; i++)
        {
            var e = Assert.Single((await watch.NextAsync()).Events);
            Assert.Equal(first + i, e.Kv.ModRevision);
        }
    }

    [Fact]
    public async Task Progress_request_on_a_synced_watcher_reports_the_store_revision()
    {
        await using var s = await OpenAsync();
        var rev = (await s.Put(P("x"), "1")).Header.Revision;
        await using var watch = s.WatchPrefixAsync(P("p/")).GetAsyncEnumerator();
        var pending = watch.NextAsync();
        s.RequestWatchProgress();
        var response = await pending;
        Assert.True(response.IsProgressNotify);
        Assert.True(response.Header.Revision >= rev);
        Assert.Equal(s.Revision, response.Header.Revision);
    }

    [Fact]
    public async Task Create_if_absent_lets_exactly_one_concurrent_caller_win()
    {
        await using var s = await OpenAsync();
        var key = K("leader");
        var attempts = Enumerable.Range(0, 16).Select(i => Task.Run(async () => await s.TxnAsync(new TxnRequest
        {
            Compares = [Compare.CreateRevision(key, CompareResult.Equal, 0)],
            Success = [RequestOp.ForPut(new PutRequest(key, B($"broker-{i}")))],
            Failure = [RequestOp.ForRange(new RangeRequest(key))],
        })));
        var results = await Task.WhenAll(attempts);
        var winner = Assert.Single(results, r => r.Succeeded);
        var stored = Assert.Single((await s.Get(P("leader"))).Kvs);
        Assert.Equal(1, stored.Version);
        Assert.All(results.Where(r => !r.Succeeded), r => Assert.Equal(stored, Assert.Single(r.Responses[0].Range!.Kvs)));
        Assert.Equal(winner.Header.Revision, stored.ModRevision);
    }

    [Fact]
    public async Task Txn_compares_every_target_and_nested_txns_share_the_revision()
    {
        await using var s = await OpenAsync();
        var lease = await s.LeaseGrantAsync(100);
        var put = await s.Put(P("k"), "v1", lease.Id);
        var k = K("k");
        Compare[] holds =
        [
            Compare.ValueOf(k, CompareResult.Equal, B("v1")),
            Compare.ValueOf(k, CompareResult.Greater, B("v0")),
            Compare.Version(k, CompareResult.Equal, 1),
            Compare.CreateRevision(k, CompareResult.Equal, put.Header.Revision),
            Compare.ModRevision(k, CompareResult.Less, put.Header.Revision + 1),
            Compare.LeaseId(k, CompareResult.Equal, lease.Id),
            Compare.Version(K("absent"), CompareResult.Equal, 0),
            Compare.Version(K("a"), CompareResult.Greater, 0) with { RangeEnd = K("l") },
        ];
        foreach (var compare in holds)
        {
            Assert.True((await s.TxnAsync(new TxnRequest { Compares = [compare] })).Succeeded, compare.ToString());
        }

        Assert.False((await s.TxnAsync(new TxnRequest { Compares = [Compare.ValueOf(K("absent"), CompareResult.NotEqual, B("x"))] })).Succeeded);
        Assert.False((await s.TxnAsync(new TxnRequest { Compares = [Compare.LeaseId(k, CompareResult.NotEqual, lease.Id)] })).Succeeded);
        var nested = await s.TxnAsync(new TxnRequest
        {
            Success =
            [
                RequestOp.ForPut(new PutRequest(K("outer"), B("1"))),
                RequestOp.ForTxn(new TxnRequest
                {
                    Compares = [Compare.Version(K("outer"), CompareResult.Equal, 0)], // sees the state before the txn
                    Success = [RequestOp.ForPut(new PutRequest(K("inner"), B("2"))), RequestOp.ForRange(RangeRequest.Prefix(P("")))],
                }),
            ],
        });
        var inner = nested.Responses[1].Txn!;
        Assert.True(inner.Succeeded);
        Assert.Equal([P("inner"), P("k"), P("outer")], inner.Responses[1].Range!.Kvs.Select(kv => kv.KeyString));
        Assert.Equal(nested.Header.Revision, (await s.Get(P("inner"))).Kvs[0].ModRevision);
        Assert.Equal(nested.Header.Revision, (await s.Get(P("outer"))).Kvs[0].ModRevision);
        await s.LeaseRevokeAsync(lease.Id);
    }

    [Fact]
    public async Task Bad_input_gets_typed_exceptions_and_writes_nothing()
    {
        await using var s = await OpenAsync();
        var rev = (await s.Put(P("x"), "1")).Header.Revision;
        await Assert.ThrowsAsync<ArgumentException>(async () => await s.PutAsync(new PutRequest([], B("v"))));
        await Assert.ThrowsAsync<ArgumentNullException>(async () => await s.PutAsync(new PutRequest(null!, B("v"))));
        await Assert.ThrowsAsync<ArgumentException>(async () => await s.RangeAsync(new RangeRequest([])));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await s.RangeAsync(new RangeRequest(K("a")) { Limit = -1 }));
        await Assert.ThrowsAsync<FutureRevisionException>(async () => await s.RangeAsync(new RangeRequest(K("a")) { Revision = rev + 1000 }));
        await Assert.ThrowsAsync<LeaseNotFoundException>(async () => await s.Put(P("a"), "v", lease: 12345));
        await Assert.ThrowsAsync<LeaseNotFoundException>(async () => await s.LeaseKeepAliveAsync(12345));
        await Assert.ThrowsAsync<LeaseNotFoundException>(async () => await s.LeaseRevokeAsync(12345));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await s.LeaseGrantAsync(0));
        Assert.Throws<ArgumentException>(() => s.WatchAsync(new WatchRequest(K("b")) { RangeEnd = K("a") }));
        await Assert.ThrowsAsync<KeyNotFoundForUpdateException>(async () => await s.PutAsync(new PutRequest(K("nope"), []) { IgnoreValue = true }));
        var tooMany = new TxnRequest { Success = [.. Enumerable.Range(0, 129).Select(i => RequestOp.ForPut(new PutRequest(K($"k{i}"), B("v"))))] };
        await Assert.ThrowsAsync<ArgumentException>(async () => await s.TxnAsync(tooMany));
        var duplicate = new TxnRequest { Success = [RequestOp.ForPut(new PutRequest(K("k"), B("1"))), RequestOp.ForPut(new PutRequest(K("k"), B("2")))] };
        await Assert.ThrowsAsync<ArgumentException>(async () => await s.TxnAsync(duplicate));
        Assert.Equal(rev, (await s.Get(P("x"))).Header.Revision); // nothing above was written
    }

    [Fact]
    public async Task Lease_keepalive_refreshes_ttl_and_revoke_deletes_its_keys_in_one_revision()
    {
        await using var s = await OpenAsync();
        var lease = await s.LeaseGrantAsync(30);
        Assert.Equal(30, lease.Ttl);
        await s.Put(P("a"), "1", lease.Id);
        await s.Put(P("b"), "2", lease.Id);
        Assert.Contains(lease.Id, await s.LeaseLeasesAsync());
        var ttl = await s.LeaseTimeToLiveAsync(lease.Id, keys: true);
        Assert.Equal(30, ttl.GrantedTtl);
        Assert.InRange(ttl.Ttl, 1, 30);
        Assert.Equal([P("a"), P("b")], ttl.Keys.Select(S).Order());
        Assert.Equal(30, (await s.LeaseKeepAliveAsync(lease.Id)).Ttl);

        await using var watch = s.WatchAsync(new WatchRequest(K("a")) { RangeEnd = K("c") }).GetAsyncEnumerator();
        var revision = s.Revision;
        await s.LeaseRevokeAsync(lease.Id);
        var response = await watch.NextAsync();
        Assert.Equal([P("a"), P("b")], response.Events.Select(e => e.Kv.KeyString));
        Assert.All(response.Events, e => Assert.Equal((WatchEventType.Delete, revision + 1), (e.Type, e.Kv.ModRevision)));
        Assert.DoesNotContain(lease.Id, await s.LeaseLeasesAsync());
        Assert.Equal(-1, (await s.LeaseTimeToLiveAsync(lease.Id)).Ttl);
        await Assert.ThrowsAsync<LeaseNotFoundException>(async () => await s.LeaseKeepAliveAsync(lease.Id));
    }

    [Fact]
    public async Task Lease_granted_with_an_id_keeps_it_and_a_second_grant_fails()
    {
        await using var s = await OpenAsync();
        var id = Random.Shared.NextInt64(1, long.MaxValue);
        var lease = await s.LeaseGrantAsync(10, id);
        Assert.Equal(id, lease.Id);
        await Assert.ThrowsAsync<LeaseExistsException>(async () => await s.LeaseGrantAsync(10, id));
        await s.LeaseRevokeAsync(id);
    }

    [Fact]
    public async Task Expired_lease_deletes_its_key_and_watchers_see_it()
    {
        await using var s = await OpenAsync();
        var lease = await s.LeaseGrantAsync(2);
        await s.Put(P("k"), "v", lease.Id);
        await using var watch = s.WatchAsync(new WatchRequest(K("k"))).GetAsyncEnumerator();
        var e = Assert.Single((await watch.NextAsync()).Events);
        Assert.Equal((WatchEventType.Delete, P("k")), (e.Type, e.Kv.KeyString));
        Assert.Empty((await s.Get(P("k"))).Kvs);
        Assert.Equal(-1, (await s.LeaseTimeToLiveAsync(lease.Id)).Ttl);
    }

    [Fact]
    public async Task Hash_is_stable_while_nothing_changes_and_moves_with_a_write()
    {
        await using var s = await OpenAsync();
        await s.Put(P("h"), "1");
        var first = await s.HashKVAsync();
        Assert.Equal(first.Hash, (await s.HashKVAsync(first.HashRevision)).Hash);
        await s.Put(P("h"), "2");
        var second = await s.HashKVAsync();
        Assert.True(second.HashRevision > first.HashRevision);
        Assert.NotEqual(first.Hash, second.Hash);
    }

    [Fact]
    public async Task Snapshot_writes_the_store()
    {
        await using var s = await OpenAsync();
        await s.Put(P("snap"), "value-in-the-snapshot");
        using var snapshot = new MemoryStream();
        await s.SnapshotAsync(snapshot);
        Assert.True(snapshot.Length > 0);
    }
}
