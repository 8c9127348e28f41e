using System.Text;
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using Sluice.TestKit;

namespace Sluice.Storage.Tests.Metadata;

/// <summary>A store in a temp directory that can be restarted in place.</summary>
internal sealed class StoreHarness : IAsyncDisposable
{
    private readonly TempDirectory _dir = new("sluice-meta");

    private StoreHarness(MetadataStoreOptions options) => Options = options;

    public MetadataStoreOptions Options { get; }

    public EmbeddedMetadataStore Store { get; private set; } = null!;

    public string Directory => _dir.Path;

    public static async Task<StoreHarness> StartAsync(MetadataStoreOptions? options = null)
    {
        var harness = new StoreHarness(options ?? MetadataStoreOptions.Default with { MaintenanceInterval = TimeSpan.FromMilliseconds(20) });
        harness.Store = await EmbeddedMetadataStore.OpenAsync(harness.Directory, harness.Options);
        return harness;
    }

    public async Task RestartAsync()
    {
        await Store.DisposeAsync();
        Store = await EmbeddedMetadataStore.OpenAsync(Directory, Options);
    }

    public async ValueTask DisposeAsync()
    {
        await Store.DisposeAsync();
        _dir.Dispose();
    }
}

/// <summary>A clock the test moves by hand; timers still run on real time, so periodic checks see the new time.</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private long _ticks = TimeSpan.FromDays(1).Ticks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => Interlocked.Read(ref _ticks);

    public override DateTimeOffset GetUtcNow() => new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(GetTimestamp());

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}

internal static class Meta
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    public static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    public static string S(byte[] b) => Encoding.UTF8.GetString(b);

    public static ValueTask<PutResponse> Put(this IMetadataStore store, string key, string value, long lease = 0, bool prevKv = false) =>
        store.PutAsync(new PutRequest(B(key), B(value)) { Lease = lease, PrevKv = prevKv });

    public static ValueTask<RangeResponse> Get(this IMetadataStore store, string key, long revision = 0) =>
        store.RangeAsync(new RangeRequest(B(key)) { Revision = revision });

    public static ValueTask<DeleteRangeResponse> Delete(this IMetadataStore store, string key) =>
        store.DeleteRangeAsync(new DeleteRangeRequest(B(key)));

    /// <summary>Next watch response, failing the test if none comes within the timeout.</summary>
    public static async Task<WatchResponse> NextAsync(this IAsyncEnumerator<WatchResponse> watch)
    {
        var move = watch.MoveNextAsync().AsTask();
        var winner = await Task.WhenAny(move, Task.Delay(Timeout));
        Assert.True(winner == move, "no watch response within the timeout");
        Assert.True(await move, "watch ended");
        return watch.Current;
    }

    /// <summary>Waits for a condition, polling; fails after the timeout.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(10);
        }
    }
}
