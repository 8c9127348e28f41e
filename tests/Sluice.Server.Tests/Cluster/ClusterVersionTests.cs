using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Etcd;
using Sluice.Server.Cluster;
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using Sluice.Storage.Sql;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Cluster;

/// <summary>Brokers declaring different versions meet at the cluster's version gate (in etcd, or the embedded store with etcd's contract).</summary>
public sealed class ClusterVersionTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(20);

    private static Task Join(IMetadataStore store, string id, int schema, int api, CancellationToken cancellationToken = default) =>
        ClusterVersion.EnsureAsync(store, id, new BrokerVersion(schema, api), "test", NullLogger.Instance, Interval, cancellationToken);

    private static async Task<(IMetadataStore Store, IAsyncDisposable Owner)> OpenAsync(Metadata metadata, TempDirectory dir)
    {
        if (metadata == Metadata.Embedded)
        {
            var embedded = await EmbeddedMetadataStore.OpenAsync(dir.Path, MetadataStoreOptions.Default);
            return (embedded, embedded);
        }

        var etcd = await LocalEtcd.StartAsync(dir.Path);
        var client = await EtcdMetadataStore.ConnectAsync(new EtcdMetadataStoreOptions { Endpoints = [etcd.ClientUrl] });
        return (client, new Owners(client, etcd));
    }

    private sealed class Owners(IAsyncDisposable client, IAsyncDisposable etcd) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await client.DisposeAsync();
            await etcd.DisposeAsync();
        }
    }

    [Theory]
    [InlineData(Metadata.Embedded)]
    [InlineData(Metadata.Etcd)]
    public async Task A_rolling_upgrade_waits_for_the_brokers_behind_and_refuses_a_broker_left_behind(Metadata metadata)
    {
        using var dir = new TempDirectory("sluice-version-gate");
        var (store, owner) = await OpenAsync(metadata, dir);
        await using var _ = owner;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        // Three brokers at one version join at once; so does a restart at the same version.
        foreach (var id in new[] { "b1", "b2", "b3" })
        {
            await Join(store, id, 1, 4, timeout.Token);
        }

        await Join(store, "b2", 1, 4, timeout.Token);

        // b1 is upgraded: it waits while b2 and b3 are behind.
        var b1 = Join(store, "b1", 1, 5, timeout.Token);
        await Task.Delay(200);
        Assert.False(b1.IsCompleted);

        // b3 restarted on the old binary is behind b1 now: it refuses to start and says to upgrade it.
        var behind = await Assert.ThrowsAsync<SchemaException>(() => Join(store, "b3", 1, 4, timeout.Token));
        Assert.Contains("This broker (b3: schema 1, API extensions 4, Sluice test) is behind broker b1 (schema 1, API extensions 5", behind.Message, StringComparison.Ordinal);
        Assert.Contains("upgrade this broker", behind.Message, StringComparison.Ordinal);

        // b2 and b3 upgraded: each waits only for the ones still behind; b1 joins when the last one is.
        var b2 = Join(store, "b2", 1, 5, timeout.Token);
        await Task.Delay(200);
        Assert.False(b2.IsCompleted); // b3 still recorded at the old version
        await Join(store, "b3", 1, 5, timeout.Token);
        await Task.WhenAll(b1, b2).WaitAsync(timeout.Token);

        // A mix (ahead on one count, behind on the other) is refused.
        var mixed = await Assert.ThrowsAsync<SchemaException>(() => Join(store, "b4", 2, 4, timeout.Token));
        Assert.Contains("inconsistent versions", mixed.Message, StringComparison.Ordinal);
        Assert.True(await ClusterVersion.ForgetAsync(store, "b4", timeout.Token));

        // A broker that left for good, forgotten, no longer holds an upgrade back.
        var upgrade = Join(store, "b1", 2, 5, timeout.Token);
        await Task.Delay(100);
        Assert.False(upgrade.IsCompleted);
        Assert.True(await ClusterVersion.ForgetAsync(store, "b2", timeout.Token));
        Assert.True(await ClusterVersion.ForgetAsync(store, "b3", timeout.Token));
        await upgrade.WaitAsync(timeout.Token);
    }

    [Fact]
    public void This_binary_declares_its_schema_and_extensions()
    {
        Assert.Equal(new BrokerVersion(ClusterVersion.Schema, ClusterVersion.Extensions.Count), ClusterVersion.Current);
        Assert.Equal(ClusterVersion.Extensions.Count, ClusterVersion.Extensions.Distinct().Count());
    }
}
