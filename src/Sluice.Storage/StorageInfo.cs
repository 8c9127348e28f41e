namespace Sluice.Storage;

/// <summary>Identity of the storage layer's on-disk formats.</summary>
public static class StorageInfo
{
    /// <summary>Name used for the storage layer's meter and log categories.</summary>
    public const string Name = "Sluice.Storage";
}
