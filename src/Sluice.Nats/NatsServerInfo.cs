using System.Text.Json.Serialization;

namespace Sluice.Nats;

/// <summary>What the server announced in its INFO operation.</summary>
public sealed record NatsServerInfo
{
    /// <summary>Unique server id.</summary>
    [JsonPropertyName("server_id")]
    public string ServerId { get; init; } = string.Empty;

    /// <summary>Server name.</summary>
    [JsonPropertyName("server_name")]
    public string? ServerName { get; init; }

    /// <summary>Server version.</summary>
    [JsonPropertyName("version")]
    public string Version { get; init; } = string.Empty;

    /// <summary>Protocol level.</summary>
    [JsonPropertyName("proto")]
    public int Protocol { get; init; }

    /// <summary>Largest message (headers and payload) the server accepts.</summary>
    [JsonPropertyName("max_payload")]
    public long MaxPayload { get; init; }

    /// <summary>Whether the server supports headers (HPUB/HMSG).</summary>
    [JsonPropertyName("headers")]
    public bool Headers { get; init; }

    /// <summary>Whether the client must authenticate.</summary>
    [JsonPropertyName("auth_required")]
    public bool AuthRequired { get; init; }

    /// <summary>Whether the client must upgrade to TLS.</summary>
    [JsonPropertyName("tls_required")]
    public bool TlsRequired { get; init; }

    /// <summary>Whether JetStream is enabled.</summary>
    [JsonPropertyName("jetstream")]
    public bool JetStream { get; init; }

    /// <summary>Client id the server assigned.</summary>
    [JsonPropertyName("client_id")]
    public ulong ClientId { get; init; }

    /// <summary>Other servers of the cluster (<c>host:port</c>), used when reconnecting.</summary>
    [JsonPropertyName("connect_urls")]
    public IReadOnlyList<string>? ConnectUrls { get; init; }

    /// <summary>Whether the server is in lame duck mode (about to shut down).</summary>
    [JsonPropertyName("ldm")]
    public bool LameDuckMode { get; init; }
}
