using Sluice.Storage.Log;
using Sluice.TestKit;
using static Sluice.Storage.Tests.Log.LogTestKit;

namespace Sluice.Storage.Tests.Log;

public class RecoveryTests
{
    [Fact]
    public void Every_cut_inside_the_last_record_recovers_exactly_the_complete_records()
    {
        using var dir = new TempDirectory();
        var source = dir.Sub("source");
        using (var log = CommitLog.Open(source))
        {
            AppendValues(log, 5);
            log.Append([Rec("the last one", "key", 77, headers: [("h", "v")])]);
        }

        var segment = Path.Combine(source, "00000000000000000000.log");
        var bytes = File.ReadAllBytes(segment);
        long lastStart;
        using (var log = CommitLog.Open(source))
        {
            lastStart = log.Segments[0].PositionOf(5);
        }

        for (var cut = lastStart; cut < bytes.Length; cut++)
        {
            var copy = dir.Sub($"cut-{cut}");
            Directory.CreateDirectory(copy);
            File.WriteAllBytes(Path.Combine(copy, "00000000000000000000.log"), bytes.AsSpan(0, (int)cut).ToArray());
            foreach (var index in Directory.GetFiles(source, "*index"))
            {
                File.Copy(index, Path.Combine(copy, Path.GetFileName(index)));
            }

            using (var log = CommitLog.Open(copy))
            {
                Assert.Equal(4, log.NewestOffset);
                Assert.Equal(Enumerable.Range(0, 5).Select(i => $"v{i}"), ReadAll(log).Select(r => r.Value));
                Assert.Equal(5, log.Append([Rec("again")]));
            }

            using (var log = CommitLog.Open(copy))
            {
                Assert.Equal("again", ReadAll(log)[^1].Value);
            }

            Directory.Delete(copy, recursive: true);
        }
    }

    private static void AppendLarge(CommitLog log, int count, long timestampStep = 0)
    {
        for (var i = 0; i < count; i++)
        {
            log.Append([Rec($"v{i}|" + new string('x', 1000), timestamp: i * timestampStep)]);
        }
    }

    [Fact]
    public void Missing_or_damaged_indexes_are_rebuilt()
    {
        using var dir = new TempDirectory();
        var options = Small(100_000);
        using (var log = CommitLog.Open(dir.Path, options))
        {
            AppendLarge(log, 300, timestampStep: 5);
        }

        var indexes = Directory.GetFiles(dir.Path, "*.index").Order().ToArray();
        Assert.True(indexes.Length >= 3);
        File.Delete(indexes[0]);
        var bytes = File.ReadAllBytes(indexes[1]);
        bytes[^3] ^= 0xFF;
        File.WriteAllBytes(indexes[1], bytes);
        File.WriteAllBytes(Directory.GetFiles(dir.Path, "*.timeindex").Order().ToArray()[2], [1, 2, 3]);
        File.Delete(Directory.GetFiles(dir.Path, "*.timeindex").Order().ToArray()[^1]);

        using (var log = CommitLog.Open(dir.Path, options))
        {
            Assert.Equal(Enumerable.Range(0, 300).Select(i => $"v{i}"), ReadAll(log).Select(r => r.Value![..r.Value!.IndexOf('|')]));
            for (var i = 0; i < 300; i += 13)
            {
                using var batch = log.Read(i, 1);
                Assert.Equal(i, batch[0].Offset);
                Assert.Equal(i, log.EarliestOffsetAfterTimestamp(i * 5));
            }
        }

        using (var log = CommitLog.Open(dir.Path, options))
        {
            Assert.Equal(299, log.NewestOffset);
        }
    }

    [Fact]
    public void Damage_in_a_sealed_segment_is_reported_with_file_and_offset_never_dropped()
    {
        using var dir = new TempDirectory();
        var options = Small(100_000);
        using (var log = CommitLog.Open(dir.Path, options))
        {
            AppendLarge(log, 300);
        }

        var first = Path.Combine(dir.Path, "00000000000000000000.log");
        var bytes = File.ReadAllBytes(first);
        bytes[bytes.Length / 2] ^= 0x55;
        File.WriteAllBytes(first, bytes);

        using (var log = CommitLog.Open(dir.Path, options))
        {
            var error = Assert.Throws<CorruptLogException>(() => ReadAll(log));
            Assert.Equal(first, error.FilePath);
            Assert.Contains("00000000000000000000.log", error.Message);
            Assert.True(error.Position > 0);
        }

        File.Delete(Path.ChangeExtension(first, ".index"));
        var opening = Assert.Throws<CorruptLogException>(() => CommitLog.Open(dir.Path, options));
        Assert.Equal(first, opening.FilePath);
        Assert.True(opening.Offset > 0);
    }

    [Fact]
    public void Damage_in_the_middle_of_the_active_segment_is_reported_but_a_damaged_last_record_is_cut()
    {
        using var dir = new TempDirectory();
        using (var log = CommitLog.Open(dir.Path))
        {
            AppendValues(log, 20);
        }

        var path = Path.Combine(dir.Path, "00000000000000000000.log");
        var bytes = File.ReadAllBytes(path);
        var original = (byte[])bytes.Clone();
        bytes[bytes.Length / 2] ^= 0x55;
        File.WriteAllBytes(path, bytes);
        File.Delete(Path.ChangeExtension(path, ".index"));
        Assert.Throws<CorruptLogException>(() => CommitLog.Open(dir.Path));

        original[^2] ^= 0x55;
        File.WriteAllBytes(path, original);
        using (var log = CommitLog.Open(dir.Path))
        {
            Assert.Equal(18, log.NewestOffset);
        }
    }

    [Fact]
    public void Leftover_temporary_files_are_removed_on_open()
    {
        using var dir = new TempDirectory();
        using (var log = CommitLog.Open(dir.Path))
        {
            AppendValues(log, 3);
        }

        File.WriteAllText(Path.Combine(dir.Path, "00000000000000000000.log.cleaned"), "half");
        File.WriteAllText(Path.Combine(dir.Path, "high-watermark.tmp"), "half");
        File.WriteAllText(Path.Combine(dir.Path, "00000000000000000099.index"), "orphan");
        using (var log = CommitLog.Open(dir.Path))
        {
            Assert.Equal(2, log.NewestOffset);
        }

        // Small segments keep no index files: they are cheaper to rescan than to index on disk.
        Assert.Equal(["00000000000000000000.log", "leader-epochs", "segments"], Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order());
    }
}
