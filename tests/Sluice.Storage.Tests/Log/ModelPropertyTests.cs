using FsCheck;
using FsCheck.Fluent;
using Sluice.Storage.Log;
using Sluice.TestKit;
using static Sluice.Storage.Tests.Log.LogTestKit;

namespace Sluice.Storage.Tests.Log;

/// <summary>Random operation sequences against a list-of-records model.</summary>
public class ModelPropertyTests
{
    private sealed record Entry(long Offset, string? Key, string Value);

    [Fact]
    public void Random_operations_agree_with_an_in_memory_model()
    {
        Prop.ForAll<int[]>(ops => Run(ops.Take(60).ToArray())).QuickCheckThrowOnFailure();
    }

    private static bool Run(int[] ops)
    {
        using var dir = new TempDirectory("sluice-model");
        var options = Small(400) with { RetentionMaxMessages = 25 };
        var log = CommitLog.Open(dir.Path, options);
        try
        {
            var model = new List<Entry>();
            long next = 0, hw = -1;
            var counter = 0;
            foreach (var raw in ops)
            {
                var x = raw == int.MinValue ? 0 : Math.Abs(raw);
                var param = x / 8;
                switch (x % 8)
                {
                    case 0:
                    case 1:
                        {
                            var n = (param % 5) + 1;
                            var batch = new LogRecord[n];
                            for (var i = 0; i < n; i++)
                            {
                                var key = (param + i) % 3 == 0 ? null : $"k{(param + i) % 4}";
                                var value = $"v{counter++}";
                                batch[i] = Rec(value, key, timestamp: counter);
                                model.Add(new Entry(next + i, key, value));
                            }

                            Assert.Equal(next, log.Append(batch, param % 2 == 0 ? next : -1));
                            next += n;
                            break;
                        }

                    case 2:
                        {
                            var from = param % (next + 2);
                            using var batch = log.Read(from, 40 + (param % 400));
                            var expected = model.Where(e => e.Offset >= from).ToList();
                            Assert.Equal(expected.Count > 0, !batch.IsEmpty);
                            for (var i = 0; i < batch.Count; i++)
                            {
                                Assert.Equal(expected[i].Offset, batch[i].Offset);
                                Assert.Equal(expected[i].Value, Text(batch[i].Value));
                                Assert.Equal(expected[i].Key, Text(batch[i].Key));
                            }

                            break;
                        }

                    case 3:
                        hw = (param % (next + 1)) - 1;
                        log.SetHighWatermark(hw);
                        break;
                    case 4:
                        {
                            var activeBase = log.Segments[^1].BaseOffset;
                            var sealedCount = log.SegmentCount - 1;
                            log.Compact();
                            if (hw >= 0 && sealedCount > 0)
                            {
                                var latest = new Dictionary<string, long>();
                                foreach (var e in model.Where(e => e.Offset <= hw && e.Key is not null))
                                {
                                    latest[e.Key!] = e.Offset;
                                }

                                model = model.Where(e => e.Offset >= activeBase || e.Offset >= hw || e.Key is null || latest[e.Key] == e.Offset).ToList();
                            }

                            break;
                        }

                    case 5:
                        {
                            var to = param % (next + 1);
                            log.Truncate(to);
                            model = model.Where(e => e.Offset < to).ToList();
                            next = Math.Min(next, to);
                            hw = Math.Min(hw, to - 1);
                            break;
                        }

                    case 6:
                        {
                            log.EnforceRetention();
                            var oldest = log.OldestOffset;
                            var kept = oldest < 0 ? [] : model.Where(e => e.Offset >= oldest).ToList();
                            Assert.True(kept.Count == 0 || kept.Count >= Math.Min(25, model.Count) || model.Count - kept.Count > 0);
                            Assert.True(model.Count(e => e.Offset >= log.Segments[^1].BaseOffset) <= kept.Count);
                            model = kept;
                            break;
                        }

                    default:
                        log.Dispose();
                        log = CommitLog.Open(dir.Path, options);
                        break;
                }

                var all = ReadAll(log, maxBytes: 200);
                Assert.Equal(model.Select(e => (e.Offset, e.Key, e.Value)), all.Select(r => (r.Offset, r.Key, r.Value!)));
                Assert.Equal(next - 1, log.NewestOffset);
                Assert.Equal(hw, log.HighWatermark);
            }

            return true;
        }
        finally
        {
            log.Dispose();
        }
    }
}
