using System.Net.Security;

namespace Sluice.Nats;

/// <summary>When to use TLS.</summary>
public enum NatsTlsMode
{
    /// <summary>TLS when the server's INFO says <c>tls_required</c> or the URL scheme is <c>tls://</c>.</summary>
    Auto,

    /// <summary>Always TLS; a server that does not offer it fails the connection.</summary>
    Require,
}

/// <summary>TLS settings of a <see cref="NatsConnection"/> (the server is upgraded with <see cref="SslStream"/> after INFO).</summary>
public sealed record NatsTlsOptions
{
    /// <summary>The defaults: <see cref="NatsTlsMode.Auto"/>, system trust store, no client certificate.</summary>
    public static NatsTlsOptions Default { get; } = new();

    /// <summary>When to use TLS. Default: <see cref="NatsTlsMode.Auto"/>.</summary>
    public NatsTlsMode Mode { get; init; } = NatsTlsMode.Auto;

    /// <summary>PEM file of the CA that signs the server certificate; replaces the system trust store. Default: none.</summary>
    public string? CaFile { get; init; }

    /// <summary>PEM file of the client certificate for mutual TLS. Default: none.</summary>
    public string? CertFile { get; init; }

    /// <summary>PEM file of the client certificate's private key. Default: none.</summary>
    public string? KeyFile { get; init; }

    /// <summary>Custom server certificate validation; overrides <see cref="CaFile"/>. Default: none.</summary>
    public RemoteCertificateValidationCallback? RemoteCertificateValidation { get; init; }

    /// <summary>Name the server certificate must carry. Default: the host of the server URL.</summary>
    public string? TargetHost { get; init; }

    internal bool HasSettings => CaFile is not null || CertFile is not null || RemoteCertificateValidation is not null;
}
