namespace Sluice.Storage.Log;

/// <summary>A range of offsets, <paramref name="First"/> to <paramref name="Last"/> inclusive.</summary>
/// <param name="First">The first offset of the range.</param>
/// <param name="Last">The last offset of the range.</param>
public readonly record struct OffsetGap(long First, long Last)
{
    /// <summary>How many offsets the range covers.</summary>
    public long Count => Last - First + 1;
}
