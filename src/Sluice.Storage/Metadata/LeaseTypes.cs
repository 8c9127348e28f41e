namespace Sluice.Storage.Metadata;

/// <summary>etcd's <c>LeaseGrantResponse</c>.</summary>
public sealed record LeaseGrantResponse(ResponseHeader Header, long Id, long Ttl);

/// <summary>etcd's <c>LeaseKeepAliveResponse</c>: the TTL the lease was refreshed to.</summary>
public sealed record LeaseKeepAliveResponse(ResponseHeader Header, long Id, long Ttl);

/// <summary>etcd's <c>LeaseTimeToLiveResponse</c>; <see cref="Ttl"/> is -1 for a lease that does not exist.</summary>
public sealed record LeaseTimeToLiveResponse(ResponseHeader Header, long Id, long Ttl, long GrantedTtl, IReadOnlyList<byte[]> Keys);
