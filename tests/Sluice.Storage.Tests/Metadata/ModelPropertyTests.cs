using FsCheck;
using FsCheck.Fluent;
using Sluice.Storage.Metadata;
using static Sluice.Storage.Tests.Metadata.Meta;

namespace Sluice.Storage.Tests.Metadata;

#pragma warning disable CA1859 // written against the contract, so the etcd-backed store can run the same model later

/// <summary>
/// Random sequences of put, delete, txn, compact, range, watch and restart against a simple reference model
/// (a full copy of the key space per revision) must give identical answers and identical event streams.
/// </summary>
public class ModelPropertyTests
{
    private static readonly string[] Keys = ["a", "ab", "b", "ba", "c"];
    private static readonly string?[] Ends = [null, null, "b", "c", "\0"];

    internal abstract record Op;

    internal sealed record PutOp(string Key, string Value) : Op;

    internal sealed record DeleteOp(string Key, string? End) : Op;

    internal sealed record TxnOp(string CompareKey, CompareResult Result, int Version, string PutKey, string Value, string DeleteKey, string ReadKey) : Op;

    internal sealed record CompactOp(int Back) : Op;

    internal sealed record RangeOp(string Key, string? End, int Back, int Limit) : Op;

    internal sealed record WatchOp(string Key, string? End, int Back) : Op;

    internal sealed record RestartOp : Op;

    [Fact]
    public void Store_matches_the_reference_model()
    {
        var key = Gen.Elements(Keys);
        var end = Gen.Elements(Ends);
        var value = Gen.Elements("x", "y", "z");
        var op = Gen.Frequency(
            (6, from k in key from v in value select (Op)new PutOp(k, v)),
            (2, from k in key from e in end select (Op)new DeleteOp(k, e)),
            (3, from ck in key
                from r in Gen.Elements(CompareResult.Equal, CompareResult.NotEqual, CompareResult.Less, CompareResult.Greater)
                from ver in Gen.Choose(0, 3)
                from pk in key
                from v in value
                from dk in key
                from rk in key
                select (Op)new TxnOp(ck, r, ver, pk, v, dk, rk)),
            (1, Gen.Choose(-1, 6).Select(b => (Op)new CompactOp(b))),
            (3, from k in key from e in end from b in Gen.Choose(-1, 8) from l in Gen.Choose(0, 2) select (Op)new RangeOp(k, e, b, l)),
            (2, from k in key from e in end from b in Gen.Choose(-1, 8) select (Op)new WatchOp(k, e, b)),
            (1, Gen.Constant((Op)new RestartOp())));
        var ops = from n in Gen.Choose(1, 30) from list in op.ArrayOf(n) select list;

        Prop.ForAll(ops.ToArbitrary(), sequence => Task.Run(() => RunAsync(sequence)).GetAwaiter().GetResult())
            .Check(Config.QuickThrowOnFailure.WithMaxTest(60));
    }

    private sealed record MKv(string Key, string Value, long Create, long Mod, long Version);

    private sealed record MEvent(WatchEventType Type, MKv Kv, MKv? Prev);

    private sealed class Model
    {
        public List<SortedDictionary<string, MKv>> States { get; } = [new(StringComparer.Ordinal)];

        public Dictionary<long, List<MEvent>> Events { get; } = [];

        public long Rev => States.Count;

        public long Compact { get; set; }

        public SortedDictionary<string, MKv> At(long rev) => States[(int)rev - 1];

        public static bool InRange(string key, string start, string? end) =>
            end is null ? key == start : string.CompareOrdinal(key, start) >= 0 && (end == "\0" || string.CompareOrdinal(key, end) < 0);

        public static List<MKv> Range(SortedDictionary<string, MKv> state, string key, string? end) =>
            state.Values.Where(kv => InRange(kv.Key, key, end)).ToList();
    }

    private sealed record OpenWatch(IAsyncEnumerator<WatchResponse> Enumerator, WatchOp Op, long Start);

    private static async Task RunAsync(Op[] sequence)
    {
        await using var h = await StoreHarness.StartAsync(MetadataStoreOptions.Default with { AutoCompactionRetainRevisions = 0 });
        var model = new Model();
        var watches = new List<OpenWatch>();
        foreach (var op in sequence)
        {
            switch (op)
            {
                case PutOp put:
                    {
                        var response = await h.Store.PutAsync(new PutRequest(B(put.Key), B(put.Value)) { PrevKv = true });
                        var prev = model.At(model.Rev).GetValueOrDefault(put.Key);
                        Commit(model, [(put.Key, put.Value)]);
                        Assert.Equal(model.Rev, response.Header.Revision);
                        AssertKv(prev, response.PrevKv);
                        break;
                    }

                case DeleteOp delete:
                    {
                        var response = await h.Store.DeleteRangeAsync(new DeleteRangeRequest(B(delete.Key)) { RangeEnd = EndBytes(delete.End), PrevKv = true });
                        var doomed = Model.Range(model.At(model.Rev), delete.Key, delete.End);
                        if (doomed.Count > 0)
                        {
                            Commit(model, doomed.Select(kv => (kv.Key, (string?)null)).ToList());
                        }

                        Assert.Equal(doomed.Count, response.Deleted);
                        Assert.Equal(model.Rev, response.Header.Revision);
                        AssertKvs(doomed, response.PrevKvs);
                        break;
                    }

                case TxnOp txn:
                    await RunTxnAsync(h.Store, model, txn);
                    break;
                case CompactOp compact:
                    {
                        var rev = compact.Back < 0 ? model.Rev + 1 : model.Rev - compact.Back;
                        if (rev > model.Rev)
                        {
                            await Assert.ThrowsAsync<FutureRevisionException>(async () => await h.Store.CompactAsync(rev));
                        }
                        else if (rev <= model.Compact)
                        {
                            await Assert.ThrowsAsync<CompactedException>(async () => await h.Store.CompactAsync(rev));
                        }
                        else
                        {
                            await h.Store.CompactAsync(rev);
                            model.Compact = rev;
                        }

                        break;
                    }

                case RangeOp range:
                    {
                        var rev = range.Back < 0 ? 0 : Math.Max(0, model.Rev - range.Back); // 0 or less reads the current revision
                        var request = new RangeRequest(B(range.Key)) { RangeEnd = EndBytes(range.End), Revision = rev, Limit = range.Limit };
                        if (rev > 0 && rev < model.Compact)
                        {
                            await Assert.ThrowsAsync<CompactedException>(async () => await h.Store.RangeAsync(request));
                            break;
                        }

                        var response = await h.Store.RangeAsync(request);
                        var expected = Model.Range(model.At(rev == 0 ? model.Rev : rev), range.Key, range.End);
                        Assert.Equal(expected.Count, response.Count);
                        var shown = range.Limit > 0 ? expected.Take(range.Limit).ToList() : expected;
                        AssertKvs(shown, response.Kvs);
                        Assert.Equal(shown.Count < expected.Count, response.More);
                        Assert.Equal(model.Rev, response.Header.Revision);
                        Assert.Equal(model.Rev, h.Store.Revision);
                        break;
                    }

                case WatchOp watch:
                    {
                        var start = watch.Back < 0 ? 0 : Math.Max(1, model.Rev - watch.Back);
                        var request = new WatchRequest(B(watch.Key)) { RangeEnd = EndBytes(watch.End), StartRevision = start, PrevKv = true };
                        if (watch.End is not null and not "\0" && string.CompareOrdinal(watch.Key, watch.End) >= 0)
                        {
                            Assert.Throws<ArgumentException>(() => h.Store.WatchAsync(request));
                            break;
                        }

                        watches.Add(new OpenWatch(h.Store.WatchAsync(request).GetAsyncEnumerator(), watch, start == 0 ? model.Rev + 1 : start));
                        break;
                    }

                case RestartOp:
                    {
                        await DrainAsync(h.Store, model, watches);
                        var hash = await h.Store.HashKVAsync();
                        await h.RestartAsync();
                        Assert.Equal(model.Rev, h.Store.Revision);
                        Assert.Equal(model.Compact, h.Store.CompactRevision);
                        Assert.Equal(hash.Hash, (await h.Store.HashKVAsync()).Hash);
                        break;
                    }
            }
        }

        await DrainAsync(h.Store, model, watches);
    }

    private static async Task RunTxnAsync(IMetadataStore store, Model model, TxnOp txn)
    {
        var response = await store.TxnAsync(new TxnRequest
        {
            Compares = [Compare.Version(B(txn.CompareKey), txn.Result, txn.Version)],
            Success = [RequestOp.ForPut(new PutRequest(B(txn.PutKey), B(txn.Value))), RequestOp.ForRange(new RangeRequest(B(txn.ReadKey)))],
            Failure = [RequestOp.ForDeleteRange(new DeleteRangeRequest(B(txn.DeleteKey))), RequestOp.ForRange(new RangeRequest(B(txn.ReadKey)))],
        });
        var state = model.At(model.Rev);
        var version = state.GetValueOrDefault(txn.CompareKey)?.Version ?? 0;
        var order = version.CompareTo(txn.Version);
        var succeeded = txn.Result switch
        {
            CompareResult.Equal => order == 0,
            CompareResult.NotEqual => order != 0,
            CompareResult.Less => order < 0,
            _ => order > 0,
        };
        if (succeeded)
        {
            Commit(model, [(txn.PutKey, txn.Value)]);
        }
        else if (state.ContainsKey(txn.DeleteKey))
        {
            Commit(model, [(txn.DeleteKey, null)]);
        }

        Assert.Equal(succeeded, response.Succeeded);
        Assert.Equal(model.Rev, response.Header.Revision);
        var seen = model.At(model.Rev).GetValueOrDefault(txn.ReadKey); // the txn's read sees its own write
        AssertKvs(seen is null ? [] : [seen], response.Responses[1].Range!.Kvs);
    }

    /// <summary>Applies one write transaction to the model: a value sets, null deletes.</summary>
    private static void Commit(Model model, List<(string Key, string? Value)> changes)
    {
        var rev = model.Rev + 1;
        var state = new SortedDictionary<string, MKv>(model.At(model.Rev), StringComparer.Ordinal);
        var events = new List<MEvent>();
        foreach (var (key, value) in changes)
        {
            var prev = state.GetValueOrDefault(key);
            if (value is null)
            {
                state.Remove(key);
                events.Add(new MEvent(WatchEventType.Delete, new MKv(key, "", 0, rev, 0), prev));
            }
            else
            {
                var kv = new MKv(key, value, prev?.Create ?? rev, rev, (prev?.Version ?? 0) + 1);
                state[key] = kv;
                events.Add(new MEvent(WatchEventType.Put, kv, prev));
            }
        }

        model.States.Add(state);
        model.Events[rev] = events;
    }

    private static async Task DrainAsync(IMetadataStore store, Model model, List<OpenWatch> watches)
    {
        store.RequestWatchProgress();
        foreach (var watch in watches)
        {
            await using var enumerator = watch.Enumerator;
            if (watch.Start <= model.Compact)
            {
                var error = await Assert.ThrowsAsync<CompactedException>(async () => await enumerator.MoveNextAsync());
                Assert.Equal(model.Compact, error.CompactRevision);
                continue;
            }

            for (var rev = watch.Start; rev <= model.Rev; rev++)
            {
                var expected = model.Events.GetValueOrDefault(rev, []).Where(e => Model.InRange(e.Kv.Key, watch.Op.Key, watch.Op.End)).ToList();
                if (expected.Count == 0)
                {
                    continue;
                }

                var response = await enumerator.NextAsync();
                Assert.Equal(expected.Count, response.Events.Count);
                for (var i = 0; i < expected.Count; i++)
                {
                    Assert.Equal(expected[i].Type, response.Events[i].Type);
                    AssertKv(expected[i].Kv, response.Events[i].Kv);
                    AssertKv(expected[i].Prev, response.Events[i].PrevKv);
                }
            }

            var progress = await enumerator.NextAsync();
            Assert.True(progress.IsProgressNotify, "expected the progress notification after the last event");
            Assert.Equal(model.Rev, progress.Header.Revision);
        }

        watches.Clear();
    }

    private static byte[]? EndBytes(string? end) => end is null ? null : end == "\0" ? KeyRanges.FromKey : B(end);

    private static void AssertKvs(List<MKv> expected, IReadOnlyList<KeyValue> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            AssertKv(expected[i], actual[i]);
        }
    }

    private static void AssertKv(MKv? expected, KeyValue? actual)
    {
        if (expected is null)
        {
            Assert.Null(actual);
            return;
        }

        Assert.NotNull(actual);
        Assert.Equal(expected, new MKv(actual.KeyString, actual.ValueString, actual.CreateRevision, actual.ModRevision, actual.Version));
    }
}
