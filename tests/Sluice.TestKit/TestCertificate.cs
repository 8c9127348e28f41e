using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Sluice.TestKit;

/// <summary>PEM files of a self-signed certificate for 127.0.0.1, for TLS tests on loopback.</summary>
/// <param name="CertificatePath">The certificate (PEM); also the CA file a client trusts.</param>
/// <param name="KeyPath">Its private key (PKCS#8 PEM).</param>
public sealed record TestCertificate(string CertificatePath, string KeyPath)
{
    /// <summary>
    /// Writes <c>cert.pem</c> and <c>key.pem</c> into <paramref name="dir"/>: an ECDSA P-256 certificate
    /// with CN and IP SAN 127.0.0.1, marked as a CA so it can be its own trust anchor, valid for a day.
    /// </summary>
    public static TestCertificate CreateSelfSigned(TempDirectory dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var result = new TestCertificate(dir.Sub("cert.pem"), dir.Sub("key.pem"));
        File.WriteAllText(result.CertificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(result.KeyPath, key.ExportPkcs8PrivateKeyPem());
        return result;
    }

    /// <summary>
    /// A client certificate with the given CN, signed by this certificate (a CA), with its private key: what mutual TLS
    /// and authorization tests present as a client.
    /// </summary>
    public X509Certificate2 IssueClientCertificate(string commonName)
    {
        using var authority = X509Certificate2.CreateFromPemFile(CertificatePath, KeyPath);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=" + commonName, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false)); // client authentication
        var serial = new byte[8];
        RandomNumberGenerator.Fill(serial);
        using var issued = request.Create(authority, DateTimeOffset.UtcNow.AddMinutes(-4), DateTimeOffset.UtcNow.AddHours(12), serial); // within the authority's validity
        return issued.CopyWithPrivateKey(key);
    }
}
