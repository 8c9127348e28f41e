namespace Sluice.Storage.Metadata;

/// <summary>etcd's watch create request.</summary>
public sealed record WatchRequest(byte[] Key)
{
    /// <summary>Exclusive end of the range; null or empty for a single key.</summary>
    public byte[]? RangeEnd { get; init; }

    /// <summary>First revision to deliver; 0 or less for "after the current revision".</summary>
    public long StartRevision { get; init; }

    /// <summary>Attach the previous version to each event.</summary>
    public bool PrevKv { get; init; }

    /// <summary>Send an empty response every <see cref="MetadataStoreOptions.WatchProgressInterval"/> while idle.</summary>
    public bool ProgressNotify { get; init; }

    /// <summary>Drop put events.</summary>
    public bool NoPut { get; init; }

    /// <summary>Drop delete events.</summary>
    public bool NoDelete { get; init; }

    /// <summary>A watch on every key that starts with <paramref name="prefix"/>.</summary>
    public static WatchRequest Prefix(byte[] prefix) => new(KeyRanges.PrefixStart(prefix)) { RangeEnd = KeyRanges.PrefixEnd(prefix) };

    /// <summary>A watch on every key that starts with <paramref name="prefix"/>.</summary>
    public static WatchRequest Prefix(string prefix) => Prefix(KeyRanges.Utf8(prefix));
}

/// <summary>Kind of a watch event.</summary>
public enum WatchEventType
{
    Put = 0,
    Delete = 1,
}

/// <summary>
/// One change. For a delete, <see cref="Kv"/> holds the key and the delete's revision as <c>ModRevision</c>.
/// </summary>
public sealed record WatchEvent(WatchEventType Type, KeyValue Kv, KeyValue? PrevKv);

/// <summary>
/// The events of one revision, in the order they were made; or, with no events, a progress notification
/// saying the watcher has seen everything up to <see cref="ResponseHeader.Revision"/>.
/// </summary>
public sealed record WatchResponse(ResponseHeader Header, IReadOnlyList<WatchEvent> Events)
{
    /// <summary>True for a progress notification (no events).</summary>
    public bool IsProgressNotify => Events.Count == 0;

    /// <summary>Revision of the events (their common mod revision), or the header revision for progress.</summary>
    public long EventRevision => Events.Count == 0 ? Header.Revision : Events[0].Kv.ModRevision;
}
