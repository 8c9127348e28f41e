using System.Buffers;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using Sluice.Storage.Metadata.Persistence;
using Sluice.TestKit;
using static Sluice.Storage.Tests.Metadata.Meta;

namespace Sluice.Storage.Tests.Metadata;

public class PersistenceTests
{
    [Fact]
    public void Crc32C_matches_the_standard_check_value() => Assert.Equal(0xE3069283u, Crc32C.Compute(B("123456789")));

    [Fact]
    public void Log_records_round_trip_and_a_torn_tail_is_truncated()
    {
        using var dir = new TempDirectory("sluice-wal");
        var records = new[]
        {
            new LogRecord(2, [LogEntry.Put(B("k"), B("v"), 2, 1, 0), LogEntry.Delete(B("d"))]),
            new LogRecord(2, [LogEntry.LeaseGrant(7, 30)]),
            new LogRecord(3, [LogEntry.Compact(2), LogEntry.LeaseRevoke(7)]),
        };
        var framed = new ArrayBufferWriter<byte>();
        using (var wal = WriteAheadLog.Create(dir.Path, 1))
        {
            foreach (var r in records)
            {
                WriteAheadLog.Frame(framed, r, new ArrayBufferWriter<byte>());
            }

            wal.Append(framed.WrittenSpan);
            wal.Append(framed.WrittenSpan[..^5]); // a torn copy of the same records
            wal.Sync();
        }

        var path = Path.Combine(dir.Path, WriteAheadLog.FileName(1));
        var intact = WriteAheadLog.HeaderSize + framed.WrittenCount;
        var read = new List<LogRecord>();
        using (WriteAheadLog.OpenAndRecover(path, 1, read, NullLogger.Instance))
        {
        }

        Assert.Equal(5, read.Count); // three, then the two whole ones of the torn copy
        Assert.Equal(records.Select(r => r.Revision), read.Take(3).Select(r => r.Revision));
        Assert.Equal(records[0].Entries, read[0].Entries, (a, b) => a.Kind == b.Kind && a.Key.AsSpan().SequenceEqual(b.Key) && a.Value.AsSpan().SequenceEqual(b.Value) && (a.A, a.B, a.C) == (b.A, b.B, b.C));
        Assert.True(new FileInfo(path).Length < intact + framed.WrittenCount);

        // A flipped bit in the last record ends the log there.
        var bytes = File.ReadAllBytes(path);
        bytes[^2] ^= 0x40;
        File.WriteAllBytes(path, bytes);
        read.Clear();
        using (WriteAheadLog.OpenAndRecover(path, 1, read, NullLogger.Instance))
        {
        }

        Assert.Equal(4, read.Count);
    }

    [Fact]
    public void A_log_with_a_foreign_header_is_refused()
    {
        using var dir = new TempDirectory("sluice-wal");
        var path = Path.Combine(dir.Path, WriteAheadLog.FileName(1));
        File.WriteAllBytes(path, new byte[64]);
        Assert.Throws<MetadataCorruptException>(() => WriteAheadLog.OpenAndRecover(path, 1, [], NullLogger.Instance));
    }

    [Fact]
    public async Task Garbage_appended_to_the_log_is_dropped_on_reopen_and_writes_continue()
    {
        await using var h = await StoreHarness.StartAsync();
        await h.Store.Put("a", "1");
        await h.Store.Put("b", "2");
        await h.Store.DisposeAsync();
        var wal = Directory.GetFiles(h.Directory, "wal-*.log").Single();
        await File.AppendAllTextAsync(wal, "torn garbage from a crash");
        await h.RestartAsync();
        Assert.Equal(3, h.Store.Revision);
        Assert.Equal(4, (await h.Store.Put("c", "3")).Header.Revision);
        await h.RestartAsync();
        Assert.Equal(3, (await h.Store.RangeAsync(new RangeRequest([0]) { RangeEnd = KeyRanges.FromKey })).Count);
    }

    [Fact]
    public async Task Snapshot_rotation_keeps_history_and_deletes_the_old_log()
    {
        await using var h = await StoreHarness.StartAsync();
        for (var i = 0; i < 20; i++)
        {
            await h.Store.Put($"k{i % 4}", $"{i}");
        }

        h.Store.Checkpoint();
        await h.Store.Put("after", "x");
        Assert.Single(Directory.GetFiles(h.Directory, "wal-*.log"));
        var hash = await h.Store.HashKVAsync();
        await h.RestartAsync();
        Assert.Equal(hash.Hash, (await h.Store.HashKVAsync()).Hash);
        Assert.Equal("2", Assert.Single((await h.Store.Get("k2", revision: 4)).Kvs).ValueString);
    }

    [Fact]
    public async Task A_corrupt_snapshot_fails_the_open_loudly()
    {
        await using var h = await StoreHarness.StartAsync();
        await h.Store.Put("a", "1");
        h.Store.Checkpoint();
        await h.Store.DisposeAsync();
        var snap = Path.Combine(h.Directory, SnapshotFile.FileName);
        var bytes = File.ReadAllBytes(snap);
        bytes[20] ^= 1;
        File.WriteAllBytes(snap, bytes);
        await Assert.ThrowsAsync<MetadataCorruptException>(() => EmbeddedMetadataStore.OpenAsync(h.Directory));
        bytes[20] ^= 1;
        File.WriteAllBytes(snap, bytes);
        await h.RestartAsync();
        Assert.Equal(2, h.Store.Revision);
    }

    [Fact]
    public async Task A_second_open_of_the_same_directory_is_refused_as_in_use()
    {
        await using var h = await StoreHarness.StartAsync();
        var e = await Assert.ThrowsAsync<MetadataStoreLockedException>(() => EmbeddedMetadataStore.OpenAsync(h.Directory));
        Assert.Contains("in use by another Sluice process", e.Message, StringComparison.Ordinal);
    }
}
