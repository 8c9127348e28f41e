using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Sluice.Etcd;

/// <summary>How <see cref="EtcdMetadataStore"/> reaches etcd. Customise <see cref="Default"/> with <c>with { ... }</c>.</summary>
public sealed record EtcdMetadataStoreOptions
{
    /// <summary>The defaults listed on each property (no endpoints: set <see cref="Endpoints"/>).</summary>
    public static EtcdMetadataStoreOptions Default { get; } = new();

    /// <summary>Client URLs of the etcd members, <c>http://host:port</c> or <c>https://host:port</c>.</summary>
    public IReadOnlyList<string> Endpoints { get; init; } = [];

    /// <summary>PEM file of the CA that signed the members' certificates (default null: the system trust store).</summary>
    public string? TlsCaFile { get; init; }

    /// <summary>PEM client certificate for mutual TLS (default null: none); needs <see cref="TlsKeyFile"/>.</summary>
    public string? TlsCertFile { get; init; }

    /// <summary>PEM private key of <see cref="TlsCertFile"/>.</summary>
    public string? TlsKeyFile { get; init; }

    /// <summary>Longest wait for a TCP (and TLS) connection to a member (default 5 s).</summary>
    public TimeSpan DialTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Deadline of every call, retries included (default 5 s); past it the call fails with <c>MetadataUnavailableException</c>.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How often a watch asks etcd for a progress notification, to prove the stream is alive (default 1 s).</summary>
    public TimeSpan WatchProbeInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A watch stream that delivers nothing, not even progress, for this long is reopened (default 3 s).</summary>
    public TimeSpan WatchLivenessTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Logger factory for the store and the gRPC channel (default <see cref="NullLoggerFactory"/>).</summary>
    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Endpoints);
        if (Endpoints.Count == 0)
        {
            throw new ArgumentException("at least one etcd endpoint is needed", nameof(Endpoints));
        }

        foreach (var endpoint in Endpoints)
        {
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            {
                throw new ArgumentException($"etcd endpoint '{endpoint}' is not an http:// or https:// URL", nameof(Endpoints));
            }
        }

        var schemes = Endpoints.Select(e => new Uri(e).Scheme).Distinct().Count();
        if (schemes > 1)
        {
            throw new ArgumentException("etcd endpoints mix http:// and https://", nameof(Endpoints));
        }

        if ((TlsCertFile is null) != (TlsKeyFile is null))
        {
            throw new ArgumentException("an etcd client certificate needs both its cert and key files", nameof(TlsCertFile));
        }

        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(DialTimeout, TimeSpan.Zero, nameof(DialTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(RequestTimeout, TimeSpan.Zero, nameof(RequestTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(WatchProbeInterval, TimeSpan.Zero, nameof(WatchProbeInterval));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(WatchLivenessTimeout, WatchProbeInterval, nameof(WatchLivenessTimeout));
        ArgumentNullException.ThrowIfNull(LoggerFactory);
    }

    internal bool UsesTls => Endpoints.Count > 0 && Endpoints[0].StartsWith("https://", StringComparison.OrdinalIgnoreCase);
}
