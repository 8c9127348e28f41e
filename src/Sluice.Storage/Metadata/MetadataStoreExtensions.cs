namespace Sluice.Storage.Metadata;

/// <summary>String conveniences over <see cref="IMetadataStore"/> (UTF-8 keys and values).</summary>
public static class MetadataStoreExtensions
{
    /// <summary>Puts a UTF-8 key and value.</summary>
    public static ValueTask<PutResponse> PutAsync(this IMetadataStore store, string key, string value, long lease = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        return store.PutAsync(new PutRequest(KeyRanges.Utf8(key), KeyRanges.Utf8(value)) { Lease = lease }, cancellationToken);
    }

    /// <summary>Reads one key at the current revision, or null when it does not exist.</summary>
    public static async ValueTask<KeyValue?> GetAsync(this IMetadataStore store, string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        var response = await store.RangeAsync(new RangeRequest(KeyRanges.Utf8(key)), cancellationToken).ConfigureAwait(false);
        return response.Kvs.Count == 0 ? null : response.Kvs[0];
    }

    /// <summary>Reads every key under a prefix at the current revision.</summary>
    public static ValueTask<RangeResponse> GetPrefixAsync(this IMetadataStore store, string prefix, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        return store.RangeAsync(RangeRequest.Prefix(prefix), cancellationToken);
    }

    /// <summary>Deletes one key.</summary>
    public static ValueTask<DeleteRangeResponse> DeleteAsync(this IMetadataStore store, string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        return store.DeleteRangeAsync(new DeleteRangeRequest(KeyRanges.Utf8(key)), cancellationToken);
    }

    /// <summary>Watches every key under a prefix from <paramref name="startRevision"/> (0: from now).</summary>
    public static IAsyncEnumerable<WatchResponse> WatchPrefixAsync(this IMetadataStore store, string prefix, long startRevision = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        return store.WatchAsync(WatchRequest.Prefix(prefix) with { StartRevision = startRevision }, cancellationToken);
    }
}
