using Sluice.Etcd;
using Sluice.Storage.Metadata;
using Sluice.TestKit;

namespace Sluice.Storage.Tests.Metadata.Contract;

/// <summary>clustering.etcd.tls.*: an etcd that serves TLS and requires client certificates.</summary>
public sealed class EtcdTlsTests
{
    [Fact]
    public async Task A_store_with_the_CA_and_a_client_certificate_talks_to_an_etcd_that_requires_them()
    {
        using var dir = new TempDirectory("sluice-etcd-tls");
        var certificate = TestCertificate.CreateSelfSigned(dir);
        await using var etcd = await LocalEtcd.StartAsync(tls: new LocalEtcdTls(certificate.CertificatePath, certificate.KeyPath, ClientCaFile: certificate.CertificatePath));
        Assert.StartsWith("https://", etcd.ClientUrl, StringComparison.Ordinal);
        var options = EtcdMetadataStoreOptions.Default with
        {
            Endpoints = [etcd.ClientUrl],
            TlsCaFile = certificate.CertificatePath,
            TlsCertFile = certificate.CertificatePath,
            TlsKeyFile = certificate.KeyPath,
            RequestTimeout = TimeSpan.FromSeconds(3),
        };

        await using (var store = await EtcdMetadataStore.ConnectAsync(options))
        {
            var put = await store.PutAsync("tls/k", "v");
            Assert.Equal("v", (await store.GetAsync("tls/k"))!.ValueString);
            Assert.Equal(put.Header.Revision, store.Revision);
        }

        // Without the client certificate etcd refuses the connection; without the CA the server is not trusted.
        await Assert.ThrowsAsync<MetadataUnavailableException>(() => EtcdMetadataStore.ConnectAsync(options with { TlsCertFile = null, TlsKeyFile = null }));
        var untrusted = await Assert.ThrowsAsync<MetadataUnavailableException>(() => EtcdMetadataStore.ConnectAsync(options with { TlsCaFile = null }));
        Assert.Contains("TLS handshake failed", untrusted.Message, StringComparison.Ordinal);
    }
}
