using Sluice.Storage.Metadata;
using static Sluice.Storage.Tests.Metadata.Meta;

namespace Sluice.Storage.Tests.Metadata;

public class ContractTests
{
    [Fact]
    public async Task Bad_input_gets_typed_exceptions()
    {
        await using var h = await StoreHarness.StartAsync();
        var s = h.Store;
        await Assert.ThrowsAsync<ArgumentException>(async () => await s.PutAsync(new PutRequest([], B("v"))));
        await Assert.ThrowsAsync<ArgumentNullException>(async () => await s.PutAsync(new PutRequest(null!, B("v"))));
        await Assert.ThrowsAsync<ArgumentException>(async () => await s.RangeAsync(new RangeRequest([])));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await s.RangeAsync(new RangeRequest(B("a")) { Limit = -1 }));
        await Assert.ThrowsAsync<FutureRevisionException>(async () => await s.RangeAsync(new RangeRequest(B("a")) { Revision = 99 }));
        await Assert.ThrowsAsync<LeaseNotFoundException>(async () => await s.Put("a", "v", lease: 12345));
        await Assert.ThrowsAsync<LeaseNotFoundException>(async () => await s.LeaseKeepAliveAsync(12345));
        await Assert.ThrowsAsync<LeaseNotFoundException>(async () => await s.LeaseRevokeAsync(12345));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await s.LeaseGrantAsync(0));
        Assert.Throws<ArgumentException>(() => s.WatchAsync(new WatchRequest(B("b")) { RangeEnd = B("a") }));
        await Assert.ThrowsAsync<KeyNotFoundForUpdateException>(async () => await s.PutAsync(new PutRequest(B("nope"), []) { IgnoreValue = true }));
        var tooMany = new TxnRequest { Success = [.. Enumerable.Range(0, 129).Select(i => RequestOp.ForPut(new PutRequest(B($"k{i}"), B("v"))))] };
        await Assert.ThrowsAsync<ArgumentException>(async () => await s.TxnAsync(tooMany));
        var duplicate = new TxnRequest { Success = [RequestOp.ForPut(new PutRequest(B("k"), B("1"))), RequestOp.ForPut(new PutRequest(B("k"), B("2")))] };
        await Assert.ThrowsAsync<ArgumentException>(async () => await s.TxnAsync(duplicate));
        Assert.Equal(1, s.Revision); // nothing above was written
    }

    [Fact]
    public async Task Txn_compares_every_target_and_nested_txns_share_the_revision()
    {
        await using var h = await StoreHarness.StartAsync();
        var lease = await h.Store.LeaseGrantAsync(100);
        var put = await h.Store.Put("k", "v1", lease.Id);
        var k = B("k");
        Compare[] holds =
        [
            Compare.ValueOf(k, CompareResult.Equal, B("v1")),
            Compare.ValueOf(k, CompareResult.Greater, B("v0")),
            Compare.Version(k, CompareResult.Equal, 1),
            Compare.CreateRevision(k, CompareResult.Equal, put.Header.Revision),
            Compare.ModRevision(k, CompareResult.Less, put.Header.Revision + 1),
            Compare.LeaseId(k, CompareResult.Equal, lease.Id),
            Compare.Version(B("absent"), CompareResult.Equal, 0),
            Compare.Version(B("a"), CompareResult.Greater, 0) with { RangeEnd = B("l") },
        ];
        foreach (var compare in holds)
        {
            Assert.True((await h.Store.TxnAsync(new TxnRequest { Compares = [compare] })).Succeeded, compare.ToString());
        }

        Assert.False((await h.Store.TxnAsync(new TxnRequest { Compares = [Compare.ValueOf(B("absent"), CompareResult.NotEqual, B("x"))] })).Succeeded);
        var nested = await h.Store.TxnAsync(new TxnRequest
        {
            Success =
            [
                RequestOp.ForPut(new PutRequest(B("outer"), B("1"))),
                RequestOp.ForTxn(new TxnRequest
                {
                    Compares = [Compare.Version(B("outer"), CompareResult.Equal, 0)], // sees the state before the txn
                    Success = [RequestOp.ForPut(new PutRequest(B("inner"), B("2"))), RequestOp.ForRange(RangeRequest.Prefix(B("")))],
                }),
            ],
        });
        var inner = nested.Responses[1].Txn!;
        Assert.True(inner.Succeeded);
        Assert.Equal(["inner", "k", "outer"], inner.Responses[1].Range!.Kvs.Select(kv => kv.KeyString));
        Assert.Equal(nested.Header.Revision, (await h.Store.Get("inner")).Kvs[0].ModRevision);
        Assert.Equal(nested.Header.Revision, (await h.Store.Get("outer")).Kvs[0].ModRevision);
    }

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
