using Sluice.Etcd;
using Sluice.Storage.Metadata;

namespace Sluice.Storage.Tests.Metadata.Contract;

/// <summary>One etcd for a test class (started on first use, stopped by PID at the end).</summary>
public sealed class EtcdFixture : IAsyncLifetime
{
    public LocalEtcd Etcd { get; private set; } = null!;

    public async Task InitializeAsync() => Etcd = await LocalEtcd.StartAsync();

    public async Task DisposeAsync() => await Etcd.DisposeAsync();

    public EtcdMetadataStoreOptions Options => EtcdMetadataStoreOptions.Default with { Endpoints = [Etcd.ClientUrl] };

    public async Task<EtcdMetadataStore> ConnectAsync(EtcdMetadataStoreOptions? options = null) =>
        await EtcdMetadataStore.ConnectAsync(options ?? Options);
}

/// <summary>The contract on a real etcd (one per class; each test has its own client and key prefix).</summary>
public sealed class EtcdStoreContractTests(EtcdFixture fixture) : StoreContractTests, IClassFixture<EtcdFixture>
{
    protected override async Task<IMetadataStore> OpenAsync() => await fixture.ConnectAsync();
}
