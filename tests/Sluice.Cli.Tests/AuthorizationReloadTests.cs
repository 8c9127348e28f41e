using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using Sluice.Client;
using Sluice.Client.Grpc;
using Sluice.Protocol.Grpc;
using Sluice.TestKit;

namespace Sluice.Cli.Tests;

/// <summary><c>sluice serve</c> with <c>tls.client.authz</c>: SIGHUP reloads the policy; bad settings stop the start.</summary>
public sealed partial class AuthorizationReloadTests
{
    private static string Config(TempDirectory dir, TestCertificate certificate, bool clientAuth = true) => $"""
        host: 127.0.0.1
        tls:
          cert: {certificate.CertificatePath}
          key: {certificate.KeyPath}
          client.auth.enabled: {(clientAuth ? "true" : "false")}
          client.auth.ca: {certificate.CertificatePath}
          client.authz.enabled: true
          client.authz.model: {dir.Sub("model.conf")}
          client.authz.policy: {dir.Sub("policy.csv")}
        """;

    [Fact]
    public async Task SIGHUP_reloads_the_policy_and_a_broken_file_keeps_the_one_in_force()
    {
        using var dir = new TempDirectory("sluice-authz");
        var certificate = TestCertificate.CreateSelfSigned(dir);
        await File.WriteAllTextAsync(dir.Sub("model.conf"), AuthorizationFiles.LiftbridgeModel);
        await File.WriteAllTextAsync(dir.Sub("policy.csv"), "p, app, *, FetchMetadata\n");
        await File.WriteAllTextAsync(dir.Sub("sluice.yaml"), Config(dir, certificate));
        await using var sluice = SluiceProcess.Start("serve", "-c", dir.Sub("sluice.yaml"), "-p", "0", "-d", dir.Sub("data"));
        var serving = await sluice.WaitForLineAsync("serving proto.API on 127.0.0.1:");
        Assert.Contains(sluice.Stdout, l => l.Contains("Authorization: 1 policy rules in force from " + dir.Sub("policy.csv"), StringComparison.Ordinal));
        var port = int.Parse(PortPattern().Match(serving).Groups[1].Value, CultureInfo.InvariantCulture);

        using var clientCertificate = certificate.IssueClientCertificate("app");
        using var authority = X509CertificateLoader.LoadCertificateFromFile(certificate.CertificatePath);
        await using var client = await SluiceClient.ConnectAsync([$"127.0.0.1:{port}"], new SluiceClientOptions
        {
            Tls = new GrpcClientTlsOptions { ClientCertificate = clientCertificate, TrustedCertificateAuthorities = new X509Certificate2Collection(authority) },
        });
        var denied = await Assert.ThrowsAnyAsync<SluiceException>(() => client.CreateStreamAsync("orders", "orders"));
        Assert.Equal(GrpcStatusCode.PermissionDenied, denied.StatusCode);

        await File.AppendAllTextAsync(dir.Sub("policy.csv"), "p, app, orders, CreateStream\n");
        await sluice.HangUpAsync();
        await sluice.WaitForLineAsync("Authorization: 2 policy rules in force");
        await client.CreateStreamAsync("orders", "orders");

        await File.WriteAllTextAsync(dir.Sub("policy.csv"), "p, app, orders\n");
        await sluice.HangUpAsync();
        var refused = await sluice.WaitForLineAsync("the policy was not reloaded, the previous one stays in force");
        Assert.Contains("policy.csv line 1: a 'p' rule needs 3 values", refused, StringComparison.Ordinal);
        Assert.False(sluice.HasExited);
        await Assert.ThrowsAsync<StreamExistsException>(() => client.CreateStreamAsync("orders", "orders")); // still allowed: the old policy is in force

        await sluice.TerminateAsync();
        Assert.Equal(0, await sluice.WaitForExitAsync());
    }

    [Fact]
    public async Task Authorization_without_client_certificates_or_with_a_broken_policy_does_not_start()
    {
        using var dir = new TempDirectory("sluice-authz");
        var certificate = TestCertificate.CreateSelfSigned(dir);
        await File.WriteAllTextAsync(dir.Sub("model.conf"), AuthorizationFiles.LiftbridgeModel);
        await File.WriteAllTextAsync(dir.Sub("policy.csv"), "p, app, *, FetchMetadata\n");

        await File.WriteAllTextAsync(dir.Sub("sluice.yaml"), Config(dir, certificate, clientAuth: false));
        var (code, sluice) = await SluiceProcess.RunAsync("serve", "-c", dir.Sub("sluice.yaml"), "-p", "0", "-d", dir.Sub("data"));
        await using (sluice)
        {
            Assert.Equal(1, code);
            Assert.Contains(sluice.Stderr, l => l.Contains("\"tls.client.authz.enabled\" is true but client certificates are off", StringComparison.Ordinal));
        }

        await File.WriteAllTextAsync(dir.Sub("sluice.yaml"), Config(dir, certificate));
        await File.WriteAllTextAsync(dir.Sub("model.conf"), AuthorizationFiles.LiftbridgeModel.Replace("r.act == p.act", "globMatch(r.act, p.act)", StringComparison.Ordinal));
        (code, sluice) = await SluiceProcess.RunAsync("serve", "-c", dir.Sub("sluice.yaml"), "-p", "0", "-d", dir.Sub("data"));
        await using (sluice)
        {
            Assert.Equal(1, code);
            Assert.Contains(sluice.Stderr, l => l.Contains("model.conf line 8: unsupported matcher function 'globMatch'", StringComparison.Ordinal));
        }
    }

    [GeneratedRegex(@"127\.0\.0\.1:(\d+)")]
    private static partial Regex PortPattern();
}
