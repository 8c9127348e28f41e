using System.Security.Cryptography.X509Certificates;
using Microsoft.Playwright;
using Sluice.Client.Grpc;
using Sluice.Server.Configuration;
using Sluice.TestKit;
using static Microsoft.Playwright.Assertions;

namespace Sluice.Console.Tests;

/// <summary>
/// With TLS client certificates and <c>tls.client.authz</c>, the console's actions obey the gRPC API's policy, with the
/// browser's client certificate CN as the subject; a denial is shown with the server's reason and changes nothing.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class ConsoleAuthorizationTests(Browser browser) : IAsyncLifetime
{
    private const string Policy = """
        p, setup, *, FetchMetadata
        p, setup, protected, CreateStream
        p, setup, protected, Publish
        p, operator, allowed, CreateStream
        p, operator, allowed, PauseStream
        """;

    private TestCertificate _authority = null!;
    private ConsoleServer _node = null!;

    public async Task InitializeAsync()
    {
        _node = await ConsoleServer.StartAsync(
            (options, dir) =>
            {
                _authority = TestCertificate.CreateSelfSigned(dir);
                File.WriteAllText(dir.Sub("model.conf"), AuthorizationFiles.LiftbridgeModel);
                File.WriteAllText(dir.Sub("policy.csv"), Policy);
                return options with
                {
                    Tls = TlsOptions.Default with
                    {
                        Cert = _authority.CertificatePath,
                        Key = _authority.KeyPath,
                        ClientAuthEnabled = true,
                        ClientAuthCa = _authority.CertificatePath,
                        ClientAuthzEnabled = true,
                        ClientAuthzModel = dir.Sub("model.conf"),
                        ClientAuthzPolicy = dir.Sub("policy.csv"),
                    },
                };
            },
            (_, client) => client with
            {
                Tls = new GrpcClientTlsOptions
                {
                    ClientCertificate = _authority.IssueClientCertificate("setup"),
                    TrustedCertificateAuthorities = [X509CertificateLoader.LoadCertificateFromFile(_authority.CertificatePath)],
                },
            },
            http: null);
        await _node.Client.CreateStreamAsync("protected", "protected");
    }

    public async Task DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task Actions_are_checked_against_the_policy_with_the_browsers_client_certificate()
    {
        var (certPath, keyPath) = WritePem(_authority.IssueClientCertificate("operator"), "operator");
        var page = await ConsolePageTests.OpenAsync(browser, _node, "streams", new BrowserNewContextOptions
        {
            IgnoreHTTPSErrors = true, // the test authority's server certificate
            ViewportSize = new ViewportSize { Width = 1440, Height = 900 },
            ClientCertificates = [new ClientCertificate { Origin = _node.Origin, CertPath = certPath, KeyPath = keyPath }],
        });

        await ConsoleActionTests.FillCreateAsync(page, "allowed", "allowed", partitions: 1);
        await page.Locator("#confirm-ok").ClickAsync();
        await Expect(page.Locator("#notice-text")).ToContainTextAsync("stream 'allowed' created");

        await ConsoleActionTests.FillCreateAsync(page, "forbidden", "forbidden", partitions: 1);
        await page.Locator("#confirm-ok").ClickAsync();
        await Expect(page.Locator("#notice")).ToHaveClassAsync("error");
        await Expect(page.Locator("#notice-text")).ToContainTextAsync("Create failed (403): client 'operator' is not authorized to CreateStream on 'forbidden'");

        var row = page.Locator("#streams-table tr[data-stream='protected']");
        await row.Locator("button[data-action='delete']").ClickAsync();
        await page.Locator("#confirm-type").FillAsync("protected");
        await page.Locator("#confirm-ok").ClickAsync();
        await Expect(page.Locator("#notice-text")).ToContainTextAsync("Delete failed (403): client 'operator' is not authorized to DeleteStream on 'protected'");
        await Expect(row).ToHaveCountAsync(1);

        await page.Locator("#streams-table tr[data-stream='allowed'] button[data-action='pause']").ClickAsync();
        await page.Locator("#confirm-ok").ClickAsync();
        await Expect(page.Locator("#notice-text")).ToContainTextAsync("stream 'allowed' paused");
        await page.Context.CloseAsync();

        var metadata = await _node.Client.FetchMetadataAsync();
        Assert.NotNull(metadata.GetStream("allowed"));
        Assert.NotNull(metadata.GetStream("protected"));
        Assert.Null(metadata.GetStream("forbidden"));
    }

    private (string Cert, string Key) WritePem(X509Certificate2 certificate, string name)
    {
        var cert = _node.Sub(name + ".crt");
        var key = _node.Sub(name + ".key");
        File.WriteAllText(cert, certificate.ExportCertificatePem());
        using var ecdsa = certificate.GetECDsaPrivateKey()!;
        File.WriteAllText(key, ecdsa.ExportPkcs8PrivateKeyPem());
        return (cert, key);
    }
}
