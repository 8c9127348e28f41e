namespace Sluice.Storage.Tests;

public class StorageInfoTests
{
    [Fact]
    public void Storage_layer_has_a_stable_name() => Assert.Equal("Sluice.Storage", StorageInfo.Name);
}
