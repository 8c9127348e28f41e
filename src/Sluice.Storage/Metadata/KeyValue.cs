namespace Sluice.Storage.Metadata;

/// <summary>
/// One version of a key, as etcd's <c>mvccpb.KeyValue</c>. Equality compares the bytes of key and value.
/// </summary>
/// <param name="Key">The key bytes.</param>
/// <param name="Value">The value bytes (empty for a tombstone or a keys-only read).</param>
/// <param name="CreateRevision">Revision of the put that created this generation of the key (0 for a tombstone).</param>
/// <param name="ModRevision">Revision of the last change to the key.</param>
/// <param name="Version">1 on creation, +1 per put; reset by a delete (0 for a tombstone).</param>
/// <param name="Lease">Attached lease id, 0 for none.</param>
public sealed record KeyValue(byte[] Key, byte[] Value, long CreateRevision, long ModRevision, long Version, long Lease)
{
    /// <summary>The key as UTF-8 text.</summary>
    public string KeyString => System.Text.Encoding.UTF8.GetString(Key);

    /// <summary>The value as UTF-8 text.</summary>
    public string ValueString => System.Text.Encoding.UTF8.GetString(Value);

    public bool Equals(KeyValue? other) =>
        other is not null
        && CreateRevision == other.CreateRevision
        && ModRevision == other.ModRevision
        && Version == other.Version
        && Lease == other.Lease
        && Key.AsSpan().SequenceEqual(other.Key)
        && Value.AsSpan().SequenceEqual(other.Value);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.AddBytes(Key);
        hash.Add(ModRevision);
        return hash.ToHashCode();
    }

    public override string ToString() =>
        $"{KeyString}={ValueString} (create {CreateRevision}, mod {ModRevision}, version {Version}, lease {Lease})";
}

/// <summary>Header carried by every response; a remote etcd adds cluster, member and term here.</summary>
/// <param name="Revision">Store revision after the operation (the current one for reads).</param>
public readonly record struct ResponseHeader(long Revision);
