using System.Buffers.Binary;
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using Sluice.Storage.Metadata.Persistence;
using Sluice.TestKit;

namespace Sluice.Storage.Tests.Metadata;

public class LogDamageTests
{
    [Fact]
    public async Task A_flipped_byte_mid_log_stops_the_open_naming_file_and_position_and_leaves_the_file_unchanged()
    {
        using var dir = new TempDirectory("sluice-meta-damage");
        var wal = await WriteKeysAsync(dir.Path, 10);
        var offsets = RecordOffsets(wal);
        Flip(wal, offsets[4] + WriteAheadLog.RecordHeaderSize + 3); // inside the payload of the fifth record
        var before = await File.ReadAllBytesAsync(wal);

        var e = await Assert.ThrowsAsync<MetadataLogDamagedException>(() => EmbeddedMetadataStore.OpenAsync(dir.Path));

        Assert.Equal(wal, e.Path);
        Assert.Equal(offsets[4], e.Position);
        Assert.Equal(4, e.IntactRecords);
        Assert.Contains(wal, e.Message, StringComparison.Ordinal);
        Assert.Contains($"at byte {offsets[4]}", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllBytesAsync(wal));
    }

    [Fact]
    public async Task A_damaged_length_field_mid_log_is_damage_too()
    {
        using var dir = new TempDirectory("sluice-meta-damage");
        var wal = await WriteKeysAsync(dir.Path, 10);
        var offsets = RecordOffsets(wal);
        Flip(wal, offsets[6] + 2); // the length now points far past the end of the file

        var e = await Assert.ThrowsAsync<MetadataLogDamagedException>(() => EmbeddedMetadataStore.OpenAsync(dir.Path));
        Assert.Equal(offsets[6], e.Position);
    }

    [Fact]
    public async Task A_zero_filled_remainder_after_the_last_record_is_a_torn_tail_and_is_truncated()
    {
        using var dir = new TempDirectory("sluice-meta-damage");
        var wal = await WriteKeysAsync(dir.Path, 5);
        var length = new FileInfo(wal).Length;
        await using (var file = new FileStream(wal, FileMode.Append))
        {
            file.Write(new byte[8192]); // what a preallocated, never written remainder reads as
        }

        await using (var store = await EmbeddedMetadataStore.OpenAsync(dir.Path))
        {
            Assert.Equal(5, (await store.RangeAsync(RangeRequest.Prefix("k/") with { CountOnly = true })).Count);
        }

        Assert.Equal(length, new FileInfo(wal).Length);
    }

    [Fact]
    public async Task A_damaged_last_record_with_nothing_intact_after_it_is_a_torn_tail()
    {
        using var dir = new TempDirectory("sluice-meta-damage");
        var wal = await WriteKeysAsync(dir.Path, 5);
        var offsets = RecordOffsets(wal);
        Flip(wal, (int)new FileInfo(wal).Length - 2);

        await using var store = await EmbeddedMetadataStore.OpenAsync(dir.Path);
        Assert.Equal(4, (await store.RangeAsync(RangeRequest.Prefix("k/") with { CountOnly = true })).Count);
        Assert.Equal(offsets[^1], new FileInfo(wal).Length);
    }

    [Fact]
    public async Task Repair_keeps_the_records_before_the_damage_and_moves_the_damaged_log_aside()
    {
        using var dir = new TempDirectory("sluice-meta-damage");
        var wal = await WriteKeysAsync(dir.Path, 10);
        var offsets = RecordOffsets(wal);
        Flip(wal, offsets[4] + WriteAheadLog.RecordHeaderSize + 3);
        var damaged = await File.ReadAllBytesAsync(wal);

        var dry = await MetadataRepair.RunAsync(dir.Path, dryRun: true);
        var dryCheck = Assert.Single(dry.Files);
        Assert.Equal(MetadataFileCondition.Damaged, dryCheck.Condition);
        Assert.Equal(4, dryCheck.KeptRecords);
        Assert.Equal(damaged, await File.ReadAllBytesAsync(wal)); // a dry run changes nothing
        Assert.Single(Directory.GetFiles(dir.Path, "wal-*"));

        long revision = 0;
        var report = await MetadataRepair.RunAsync(dir.Path, dryRun: false, async store =>
        {
            revision = store.Revision;
            Assert.Equal(4, (await store.RangeAsync(RangeRequest.Prefix("k/") with { CountOnly = true })).Count);
        });

        var check = Assert.Single(report.Files);
        Assert.Equal((MetadataFileCondition.Damaged, 4, (long)offsets[4], 5), (check.Condition, check.KeptRecords, check.DamagePosition, check.LostIntactRecords));
        Assert.Equal(damaged.Length - offsets[4], check.LostBytes);
        var moved = Path.Combine(dir.Path, check.MovedTo!);
        Assert.StartsWith(Path.GetFileName(wal) + ".damaged-", check.MovedTo, StringComparison.Ordinal);
        Assert.Equal(damaged, await File.ReadAllBytesAsync(moved)); // the damaged bytes are kept, not deleted

        await using var reopened = await EmbeddedMetadataStore.OpenAsync(dir.Path);
        Assert.Equal(5, revision); // revision 1 is the empty store; keys 0..3 took 2..5
        Assert.Equal(revision, reopened.Revision);
        Assert.Equal("3", Assert.Single((await reopened.Get("k/03")).Kvs).ValueString);
        Assert.Empty((await reopened.Get("k/04")).Kvs);
        await reopened.Put("k/04", "again");
        Assert.Equal(6, reopened.Revision);
    }

    [Fact]
    public async Task Repair_of_a_log_with_a_damaged_header_keeps_no_record_and_moves_the_whole_file_aside()
    {
        using var dir = new TempDirectory("sluice-meta-damage");
        var wal = await WriteKeysAsync(dir.Path, 3);
        Flip(wal, 0);
        var damaged = await File.ReadAllBytesAsync(wal);
        await Assert.ThrowsAsync<MetadataCorruptException>(() => EmbeddedMetadataStore.OpenAsync(dir.Path));

        var check = Assert.Single((await MetadataRepair.RunAsync(dir.Path, dryRun: false)).Files);
        Assert.Equal((MetadataFileCondition.Damaged, 0, 0L, 3), (check.Condition, check.KeptRecords, check.DamagePosition, check.LostIntactRecords));
        Assert.Equal(damaged, await File.ReadAllBytesAsync(Path.Combine(dir.Path, check.MovedTo!)));
        await using var reopened = await EmbeddedMetadataStore.OpenAsync(dir.Path);
        Assert.Equal(1, reopened.Revision);
    }

    [Fact]
    public async Task Repair_of_an_intact_store_changes_nothing()
    {
        using var dir = new TempDirectory("sluice-meta-damage");
        var wal = await WriteKeysAsync(dir.Path, 3);
        var before = await File.ReadAllBytesAsync(wal);
        var report = await MetadataRepair.RunAsync(dir.Path, dryRun: false);
        Assert.False(report.DamageFound);
        Assert.Equal(MetadataFileCondition.Intact, Assert.Single(report.Files).Condition);
        Assert.Equal(before, await File.ReadAllBytesAsync(wal));
    }

    [Fact]
    public async Task Repair_of_a_damaged_snapshot_moves_it_aside_and_keeps_the_log_after_it()
    {
        using var dir = new TempDirectory("sluice-meta-damage");
        await using (var store = await EmbeddedMetadataStore.OpenAsync(dir.Path))
        {
            await store.Put("old", "1");
            store.Checkpoint();
            await store.Put("new", "2");
        }

        Flip(Path.Combine(dir.Path, SnapshotFile.FileName), 30);
        var e = await Assert.ThrowsAsync<MetadataCorruptException>(() => EmbeddedMetadataStore.OpenAsync(dir.Path));
        Assert.Contains(Path.Combine(dir.Path, SnapshotFile.FileName), e.Message, StringComparison.Ordinal);

        var report = await MetadataRepair.RunAsync(dir.Path, dryRun: false);
        Assert.Equal(MetadataFileCondition.Damaged, report.Files.Single(f => f.File == SnapshotFile.FileName).Condition);
        Assert.False(File.Exists(Path.Combine(dir.Path, SnapshotFile.FileName)));
        Assert.Single(Directory.GetFiles(dir.Path, SnapshotFile.FileName + ".damaged-*"));

        await using var reopened = await EmbeddedMetadataStore.OpenAsync(dir.Path);
        Assert.Empty((await reopened.Get("old")).Kvs); // only in the lost snapshot
        Assert.Equal("2", Assert.Single((await reopened.Get("new")).Kvs).ValueString);
        Assert.Equal(3, reopened.Revision);
    }

    [Fact]
    public async Task Repair_refuses_a_directory_a_store_has_open()
    {
        using var dir = new TempDirectory("sluice-meta-damage");
        await using var store = await EmbeddedMetadataStore.OpenAsync(dir.Path);
        var e = await Assert.ThrowsAsync<MetadataStoreLockedException>(() => MetadataRepair.RunAsync(dir.Path, dryRun: false));
        Assert.Contains("in use by another Sluice process", e.Message, StringComparison.Ordinal);
    }

    /// <summary>Writes keys k/00.. one transaction (one log record) each and returns the log's path.</summary>
    private static async Task<string> WriteKeysAsync(string directory, int count)
    {
        await using (var store = await EmbeddedMetadataStore.OpenAsync(directory))
        {
            for (var i = 0; i < count; i++)
            {
                await store.Put($"k/{i:D2}", i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return Directory.GetFiles(directory, "wal-*.log").Single();
    }

    private static List<int> RecordOffsets(string wal)
    {
        var data = File.ReadAllBytes(wal);
        var offsets = new List<int>();
        for (var position = WriteAheadLog.HeaderSize; position < data.Length;)
        {
            offsets.Add(position);
            position += WriteAheadLog.RecordHeaderSize + BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(position));
        }

        return offsets;
    }

    private static void Flip(string path, int offset)
    {
        var bytes = File.ReadAllBytes(path);
        bytes[offset] ^= 0x5A;
        File.WriteAllBytes(path, bytes);
    }
}
