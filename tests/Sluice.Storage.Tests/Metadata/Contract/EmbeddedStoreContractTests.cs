using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using Sluice.TestKit;

namespace Sluice.Storage.Tests.Metadata.Contract;

/// <summary>The contract on a fresh embedded store per test.</summary>
public sealed class EmbeddedStoreContractTests : StoreContractTests, IDisposable
{
    private readonly TempDirectory _dir = new("sluice-contract");

    protected override async Task<IMetadataStore> OpenAsync() =>
        await EmbeddedMetadataStore.OpenAsync(_dir.Path, MetadataStoreOptions.Default with { MaintenanceInterval = TimeSpan.FromMilliseconds(20) });

    public void Dispose() => _dir.Dispose();
}
