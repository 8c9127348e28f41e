using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using Sluice.TestKit;
using static Sluice.Storage.Tests.Metadata.Meta;

namespace Sluice.Storage.Tests.Metadata;

public class DiskFullTests
{
    [Fact]
    public async Task A_write_on_a_full_disk_fails_alone_and_writes_succeed_again_once_space_is_freed()
    {
        using var tmpfs = new SmallTmpfs(4 * 1024 * 1024);
        var directory = Path.Combine(tmpfs.Path, "metadata");
        var value = new string('v', 16 * 1024);
        var store = await EmbeddedMetadataStore.OpenAsync(directory);
        try
        {
            await store.Put("before", "1");
            var filler = tmpfs.Fill();

            // The filler leaves less than a page, so the first large value cannot fit.
            var failed = await Assert.ThrowsAsync<MetadataStoreFaultedException>(async () => await store.Put("lost", value));
            Assert.Contains("No space left", failed.Message, StringComparison.OrdinalIgnoreCase);
            var revision = store.Revision;

            File.Delete(filler);
            await WaitUntilAsync(async () =>
            {
                try
                {
                    await store.Put("after", value);
                    return true;
                }
                catch (MetadataStoreFaultedException)
                {
                    return false; // the cut-back may still be running
                }
            }, "a write to succeed once space is back");

            Assert.Equal(revision + 1, store.Revision);
            Assert.Empty((await store.Get("lost")).Kvs);
            Assert.Equal(value, Assert.Single((await store.Get("after")).Kvs).ValueString);
        }
        finally
        {
            await store.DisposeAsync();
        }

        // The log holds whole records only: a reopen finds every acknowledged write and nothing of the failed one.
        await using var reopened = await EmbeddedMetadataStore.OpenAsync(directory);
        Assert.Equal("1", Assert.Single((await reopened.Get("before")).Kvs).ValueString);
        Assert.Empty((await reopened.Get("lost")).Kvs);
        Assert.Equal(value, Assert.Single((await reopened.Get("after")).Kvs).ValueString);
        Assert.Equal(3, reopened.Revision);
    }
}
