using System.Numerics;

namespace Sluice.Bench.Histograms;

/// <summary>
/// A log-linear latency histogram in microseconds, 1 µs to 60 s, in the style of HdrHistogram:
/// values below 2048 get a bucket each; above, every power-of-two range is split into 1024 equal
/// buckets, so a reported value is within 1/1024 (better than 3 significant digits) of the true
/// one. Min, max and the mean are exact. Not thread-safe: one per writer, then <see cref="Add"/>.
/// </summary>
public sealed class LatencyHistogram
{
    /// <summary>Largest value kept; larger ones are recorded as this (60 s in µs).</summary>
    public const long HighestTrackableValue = 60_000_000;

    // 2^11 sub-buckets: the upper half (1024) sets the relative resolution 1/1024 < 0.1 %.
    private const int SubBucketBits = 11;
    private const int SubBucketCount = 1 << SubBucketBits;
    private const int SubBucketHalfCount = SubBucketCount / 2;

    private readonly long[] _counts = new long[IndexOf(HighestTrackableValue) + 1];
    private long _min = long.MaxValue;
    private long _max;
    private long _sum; // 60 s in µs times a billion values still fits a long.

    /// <summary>Values recorded.</summary>
    public long TotalCount { get; private set; }

    /// <summary>Smallest value recorded (0 when empty).</summary>
    public long Min => TotalCount == 0 ? 0 : _min;

    /// <summary>Largest value recorded (after clamping to <see cref="HighestTrackableValue"/>).</summary>
    public long Max => _max;

    /// <summary>Exact mean of the recorded (clamped) values; 0 when empty.</summary>
    public double Mean => TotalCount == 0 ? 0 : (double)_sum / TotalCount;

    /// <summary>Records one value in µs; negative values count as 0, values above 60 s as 60 s.</summary>
    public void Record(long microseconds)
    {
        var value = Math.Clamp(microseconds, 0, HighestTrackableValue);
        _counts[IndexOf(value)]++;
        TotalCount++;
        _sum += value;
        if (value < _min)
        {
            _min = value;
        }

        if (value > _max)
        {
            _max = value;
        }
    }

    /// <summary>Adds every value of <paramref name="other"/> to this histogram.</summary>
    public void Add(LatencyHistogram other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.TotalCount == 0)
        {
            return;
        }

        for (var i = 0; i < _counts.Length; i++)
        {
            _counts[i] += other._counts[i];
        }

        TotalCount += other.TotalCount;
        _sum += other._sum;
        _min = Math.Min(_min, other._min);
        _max = Math.Max(_max, other._max);
    }

    /// <summary>
    /// The value at <paramref name="percentile"/> (0–100): the smallest recorded value such that at
    /// least that share of values is at or below it, reported as the top of its bucket (never above
    /// <see cref="Max"/>). 0 when empty.
    /// </summary>
    public long ValueAtPercentile(double percentile)
    {
        if (double.IsNaN(percentile) || percentile < 0 || percentile > 100)
        {
            throw new ArgumentOutOfRangeException(nameof(percentile), percentile, "Must be within 0..100.");
        }

        if (TotalCount == 0)
        {
            return 0;
        }

        var rank = RankOf(percentile, TotalCount);
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return Math.Max(Math.Min(HighestEquivalentValue(i), _max), _min);
            }
        }

        return _max;
    }

    /// <summary>1-based rank of the value at <paramref name="percentile"/> among <paramref name="count"/> sorted values.</summary>
    internal static long RankOf(double percentile, long count)
    {
        // The epsilon keeps 99.9 % of 1000 at rank 999 despite binary floating point (99.9/100*1000 = 999.0000000000001).
        var rank = (long)Math.Ceiling((percentile / 100.0 * count) - 1e-9);
        return Math.Clamp(rank, 1, count);
    }

    /// <summary>The bucket a value falls in.</summary>
    internal static int IndexOf(long value)
    {
        if (value < SubBucketCount)
        {
            return (int)value;
        }

        // Shift so the value's top 11 bits land in [1024, 2048): bucket (shift) and sub-bucket (top bits).
        var shift = (63 - BitOperations.LeadingZeroCount((ulong)value)) - (SubBucketBits - 1);
        return SubBucketCount + ((shift - 1) * SubBucketHalfCount) + (int)((value >> shift) - SubBucketHalfCount);
    }

    /// <summary>Smallest value that lands in bucket <paramref name="index"/>.</summary>
    internal static long LowestEquivalentValue(int index)
    {
        if (index < SubBucketCount)
        {
            return index;
        }

        var k = index - SubBucketCount;
        var shift = (k / SubBucketHalfCount) + 1;
        return (long)((k % SubBucketHalfCount) + SubBucketHalfCount) << shift;
    }

    /// <summary>Largest value that lands in bucket <paramref name="index"/>.</summary>
    internal static long HighestEquivalentValue(int index)
    {
        if (index < SubBucketCount)
        {
            return index;
        }

        var shift = ((index - SubBucketCount) / SubBucketHalfCount) + 1;
        return LowestEquivalentValue(index) + (1L << shift) - 1;
    }
}
