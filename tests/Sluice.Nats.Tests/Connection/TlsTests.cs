using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Sluice.TestKit;

namespace Sluice.Nats.Tests.Connection;

public class TlsTests
{
    [Fact]
    public async Task Server_requiring_tls_is_upgraded_and_verified_against_the_given_ca()
    {
        using var dir = new TempDirectory("nats-tls");
        var certFile = dir.Sub("server.pem");
        var keyFile = dir.Sub("server-key.pem");
        using (var key = RSA.Create(2048))
        {
            var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(san.Build());
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
            await File.WriteAllTextAsync(certFile, cert.ExportCertificatePem());
            await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem());
        }

        await using var server = await NatsServerProcess.StartAsync(new NatsServerProcessOptions
        {
            ExtraArgs = ["--tls", "--tlscert", certFile, "--tlskey", keyFile],
        });

        var options = Wait.Options(server.Url) with { Tls = NatsTlsOptions.Default with { CaFile = certFile }, ConnectTimeout = TimeSpan.FromSeconds(10) };
        await using var nats = await NatsConnection.ConnectAsync(options);
        Assert.True(nats.ServerInfo!.TlsRequired);
        await using var sub = await nats.SubscribeAsync("tls.hello");
        await nats.PublishAsync("tls.hello", "secret"u8.ToArray());
        Assert.Equal("secret"u8.ToArray(), Assert.Single(await Wait.ReadAsync(sub, 1)).Data.ToArray());

        // Without the CA the self-signed certificate is not trusted.
        await Assert.ThrowsAsync<NatsConnectionException>(() => NatsConnection.ConnectAsync(Wait.Options(server.Url)).AsTask());
    }
}
