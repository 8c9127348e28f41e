namespace Sluice.Nats.Connection;

/// <summary>One server to connect to, parsed from <c>nats://[user:pass@]host[:port]</c> or <c>tls://...</c>.</summary>
internal sealed record ServerAddress(string Host, int Port, bool Tls, string? User, string? Password)
{
    public const int DefaultPort = 4222;

    public static ServerAddress Parse(string url)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(url);
        var text = url.Contains("://", StringComparison.Ordinal) ? url : "nats://" + url;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            throw new ArgumentException($"'{url}' is not a NATS server URL (nats://host:port).", nameof(url));
        }

        var tls = uri.Scheme switch
        {
            "nats" => false,
            "tls" => true,
            _ => throw new ArgumentException($"Unsupported scheme '{uri.Scheme}' in '{url}'; use nats:// or tls://.", nameof(url)),
        };

        string? user = null;
        string? password = null;
        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            user = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]);
            password = colon < 0 ? null : Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
        }

        return new ServerAddress(uri.DnsSafeHost, uri.Port < 0 ? DefaultPort : uri.Port, tls, user, password);
    }

    public override string ToString() => $"{(Tls ? "tls" : "nats")}://{Host}:{Port}";
}
