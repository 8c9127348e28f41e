using FsCheck;
using FsCheck.Fluent;
using Sluice.Bench.Histograms;

namespace Sluice.Bench.Tests;

public class LatencyHistogramTests
{
    private static readonly Config Config = Config.QuickThrowOnFailure.WithMaxTest(200);
    private static readonly double[] Percentiles = [0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100];

    /// <summary>Values spread over every scale from 0 to 60 s, with repeats, from one seed.</summary>
    private static long[] Values(int seed, int count)
    {
        var random = new Random(seed);
        var values = new long[1 + Math.Abs(count % 5000)];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = random.Next(4) switch
            {
                0 => random.Next(0, 2048),
                1 => (long)Math.Pow(10, random.NextDouble() * Math.Log10(LatencyHistogram.HighestTrackableValue)),
                2 => random.NextInt64(0, LatencyHistogram.HighestTrackableValue + 1),
                _ => i > 0 ? values[random.Next(i)] : 1,
            };
        }

        return values;
    }

    /// <summary>The value at a percentile the textbook way: the value at rank ceil(p% * n) of the sorted values.</summary>
    private static long Reference(long[] sorted, double percentile)
    {
        var rank = (long)Math.Ceiling((decimal)percentile * sorted.Length / 100m);
        return sorted[Math.Clamp(rank, 1, sorted.Length) - 1];
    }

    [Fact]
    public void Percentiles_match_a_sorted_array_to_three_significant_digits()
    {
        Prop.ForAll<int, int, double>((seed, count, extra) =>
        {
            var values = Values(seed, count);
            var histogram = new LatencyHistogram();
            foreach (var value in values)
            {
                histogram.Record(value);
            }

            var sorted = values.Order().ToArray();
            var percentiles = Percentiles.Append(double.IsFinite(extra) ? Math.Abs(extra % 100) : 42);
            foreach (var p in percentiles)
            {
                var expected = Reference(sorted, p);
                var actual = histogram.ValueAtPercentile(p);
                // Within 1/1024 of the true value (exact below 2048 µs), and never outside the recorded range.
                if (Math.Abs(actual - expected) > expected / 1024 || actual < sorted[0] || actual > sorted[^1])
                {
                    throw new InvalidOperationException($"p{p}: expected {expected}, got {actual} ({values.Length} values)");
                }
            }

            return histogram.TotalCount == values.Length
                && histogram.Min == sorted[0]
                && histogram.Max == sorted[^1]
                && Math.Abs(histogram.Mean - values.Average(v => (double)v)) < 1e-6 * Math.Max(1, histogram.Mean);
        }).Check(Config);
    }

    [Fact]
    public void Adding_histograms_equals_recording_everything_in_one()
    {
        Prop.ForAll<int, int>((seed, count) =>
        {
            var values = Values(seed, count);
            var whole = new LatencyHistogram();
            var left = new LatencyHistogram();
            var right = new LatencyHistogram();
            for (var i = 0; i < values.Length; i++)
            {
                whole.Record(values[i]);
                (i % 3 == 0 ? left : right).Record(values[i]);
            }

            left.Add(right);
            return Percentiles.All(p => left.ValueAtPercentile(p) == whole.ValueAtPercentile(p))
                && left.TotalCount == whole.TotalCount
                && left.Min == whole.Min
                && left.Max == whole.Max
                && left.Mean.Equals(whole.Mean);
        }).Check(Config);
    }

    [Fact]
    public void Every_value_lands_in_a_bucket_whose_bounds_contain_it()
    {
        Prop.ForAll<long>(raw =>
        {
            var value = Math.Abs(raw % (LatencyHistogram.HighestTrackableValue + 1));
            var index = LatencyHistogram.IndexOf(value);
            return LatencyHistogram.LowestEquivalentValue(index) <= value
                && value <= LatencyHistogram.HighestEquivalentValue(index)
                && LatencyHistogram.HighestEquivalentValue(index) - LatencyHistogram.LowestEquivalentValue(index) <= Math.Max(0, value / 1024);
        }).Check(Config);
    }

    [Fact]
    public void Out_of_range_values_are_clamped_and_an_empty_histogram_reports_zero()
    {
        var histogram = new LatencyHistogram();
        Assert.Equal(0, histogram.ValueAtPercentile(99));
        Assert.Equal(0, histogram.Min);
        Assert.Equal(0, histogram.Mean);

        histogram.Record(-5);
        histogram.Record(long.MaxValue);
        Assert.Equal(0, histogram.Min);
        Assert.Equal(LatencyHistogram.HighestTrackableValue, histogram.Max);
        Assert.Equal(LatencyHistogram.HighestTrackableValue, histogram.ValueAtPercentile(100));
        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.ValueAtPercentile(100.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => histogram.ValueAtPercentile(double.NaN));
    }

    [Fact]
    public void Small_values_are_exact()
    {
        var histogram = new LatencyHistogram();
        for (var v = 1; v <= 1000; v++)
        {
            histogram.Record(v);
        }

        Assert.Equal(500, histogram.ValueAtPercentile(50));
        Assert.Equal(990, histogram.ValueAtPercentile(99));
        Assert.Equal(999, histogram.ValueAtPercentile(99.9));
        Assert.Equal(1000, histogram.ValueAtPercentile(100));
        Assert.Equal(500.5, histogram.Mean);
    }
}
