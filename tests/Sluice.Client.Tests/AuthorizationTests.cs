using System.Security.Cryptography.X509Certificates;
using Sluice.Client.Grpc;
using Sluice.Protocol.Grpc;
using Sluice.Server.Configuration;
using Sluice.TestKit;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary><c>tls.client.authz</c>: Liftbridge's ACL model enforced on a real server with client certificates.</summary>
public sealed class AuthorizationTests : IAsyncLifetime, IDisposable
{
    private const string Policy = """
        p, client1, *, FetchMetadata
        p, client1, foo, CreateStream
        p, client1, bar, CreateStream
        p, client1, foo, Publish
        p, client1, foo, Subscribe
        p, client1, foo, SetCursor
        p, client1, foo, FetchCursor
        p, client1, __cursors, Publish
        p, client1, foo, FetchPartitionMetadata
        p, client1, bar, FetchPartitionMetadata
        p, client1, orders, JoinConsumerGroup
        p, client1, orders, FetchConsumerGroupAssignments
        p, client1, orders, LeaveConsumerGroup
        p, client2, *, FetchMetadata
        """;

    private readonly TempDirectory _dir = new("sluice-authz");
    private TestCertificate _authority = null!;
    private RealServer _server = null!;

    private string PolicyPath => _dir.Sub("policy.csv");

    public async Task InitializeAsync()
    {
        _authority = TestCertificate.CreateSelfSigned(_dir);
        await File.WriteAllTextAsync(_dir.Sub("model.conf"), AuthorizationFiles.LiftbridgeModel);
        await File.WriteAllTextAsync(PolicyPath, Policy);
        _server = await RealServer.StartAsync(o => o with
        {
            Tls = TlsOptions.Default with
            {
                Cert = _authority.CertificatePath,
                Key = _authority.KeyPath,
                ClientAuthEnabled = true,
                ClientAuthCa = _authority.CertificatePath,
                ClientAuthzEnabled = true,
                ClientAuthzModel = _dir.Sub("model.conf"),
                ClientAuthzPolicy = PolicyPath,
            },
        });
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Dispose();
    }

    public void Dispose() => _dir.Dispose();

    private async Task<SluiceClient> ConnectAsync(string commonName)
    {
        var certificate = _authority.IssueClientCertificate(commonName);
        var trusted = new X509Certificate2Collection(X509CertificateLoader.LoadCertificateFromFile(_authority.CertificatePath));
        return await SluiceClient.ConnectAsync([_server.Address], FastOptions with
        {
            ConnectTimeout = TimeSpan.FromSeconds(3),
            Tls = new GrpcClientTlsOptions { ClientCertificate = certificate, TrustedCertificateAuthorities = trusted },
        });
    }

    private static async Task AssertDeniedAsync(Func<Task> call, string reason)
    {
        var error = await Assert.ThrowsAnyAsync<SluiceException>(call);
        Assert.Equal(GrpcStatusCode.PermissionDenied, error.StatusCode);
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [SluiceOnly("Liftbridge answers denials with Unknown and stores a denied PublishAsync message anyway")]
    [Fact]
    public async Task Each_call_is_checked_against_the_policy_for_the_certificate_CN()
    {
        await using var client1 = await ConnectAsync("client1");
        await client1.CreateStreamAsync("foo", "foo");
        await client1.CreateStreamAsync("bar", "bar");
        await AssertDeniedAsync(() => client1.CreateStreamAsync("baz", "baz"), "client 'client1' is not authorized to CreateStream on 'baz'");
        await AssertDeniedAsync(() => client1.DeleteStreamAsync("foo"), "not authorized to DeleteStream on 'foo'");

        Assert.Equal(0, (await client1.PublishAsync("foo", Bytes("allowed")))!.Offset);
        Assert.Equal("allowed", (await client1.SubscribeAsync("foo", SubscribeOptions.Default.StartAtEarliest()).TakeAsync(1))[0].GetValueAsString());
        await client1.SetCursorAsync("c", "foo", 0, 0);
        Assert.Equal(0, await client1.FetchCursorAsync("c", "foo", 0));
        Assert.Equal(0, (await client1.FetchPartitionMetadataAsync("foo", 0)).NewestOffset);

        // A denied message on the PublishAsync stream gets PERMISSION_DENIED and is not stored (Liftbridge stores it).
        var refused = await Assert.ThrowsAsync<PublishFailedException>(() => client1.PublishAsync("bar", Bytes("denied")));
        Assert.Equal(PublishErrorCode.PermissionDenied, refused.Code);
        Assert.Contains("not authorized to Publish on 'bar'", refused.Message, StringComparison.Ordinal);
        await AssertDeniedAsync(() => client1.SubscribeAsync("bar", SubscribeOptions.Default.StartAtEarliest()).TakeAsync(1), "not authorized to Subscribe on 'bar'");
        Assert.Equal(-1, (await client1.FetchPartitionMetadataAsync("bar", 0)).NewestOffset);

        // Consumer-group calls are checked too (Liftbridge does not), with the group as the object.
        await using (var member = client1.CreateConsumer("orders", ConsumerOptions.Default with { ConsumerId = "m1" }))
        {
            await member.SubscribeAsync(["foo"], (_, _) => ValueTask.CompletedTask);
        }

        await using var stranger = client1.CreateConsumer("other-group");
        await AssertDeniedAsync(() => stranger.SubscribeAsync(["foo"], (_, _) => ValueTask.CompletedTask), "not authorized to JoinConsumerGroup on 'other-group'");

        // client2 may only read metadata.
        await using var client2 = await ConnectAsync("client2");
        var denied = await Assert.ThrowsAsync<PublishFailedException>(() => client2.PublishAsync("foo", Bytes("x")));
        Assert.Equal(PublishErrorCode.PermissionDenied, denied.Code);
        Assert.Contains("client 'client2' is not authorized to Publish on 'foo'", denied.Message, StringComparison.Ordinal);

        // client3 has no rule at all: even connecting (FetchMetadata on "*") is refused.
        await AssertDeniedAsync(() => ConnectAsync("client3"), "client 'client3' is not authorized to FetchMetadata on '*'");
    }

    [SluiceOnly("reloads the policy through the in-process server (SIGHUP in a process)")]
    [Fact]
    public async Task A_reload_applies_a_changed_policy_and_a_broken_one_keeps_the_policy_in_force()
    {
        await using var client2 = await ConnectAsync("client2");
        await AssertDeniedAsync(() => client2.CreateStreamAsync("foo", "foo"), "not authorized to CreateStream on 'foo'");

        await File.AppendAllTextAsync(PolicyPath, "\np, client2, foo, CreateStream\n");
        Assert.True(_server.Server.ReloadAuthorization());
        await client2.CreateStreamAsync("foo", "foo");

        await File.WriteAllTextAsync(PolicyPath, "p, client2, foo\n"); // a rule with a value missing
        Assert.False(_server.Server.ReloadAuthorization());
        Assert.Equal(15, _server.Server.Authorization!.RuleCount); // the previous policy, still in force
        await AssertDeniedAsync(() => client2.DeleteStreamAsync("foo"), "not authorized to DeleteStream on 'foo'");
        Assert.True(_server.Server.Authorization.IsAllowed("client2", "foo", "CreateStream"));
    }
}
