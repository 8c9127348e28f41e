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
}
