using System.Text;
using Sluice.Client.Tests.Fakes;

namespace Sluice.Client.Tests;

internal static class TestHelpers
{
    /// <summary>Generous bound for any wait on a condition; a hung test fails instead of blocking CI.</summary>
    public static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(15);

    public static SluiceClientOptions FastOptions { get; } = SluiceClientOptions.Default with
    {
        AckWaitTime = TimeSpan.FromSeconds(5),
        ResubscribeWaitTime = TimeSpan.FromSeconds(15),
        ConnectTimeout = TimeSpan.FromSeconds(2),
    };

    public static Task<SluiceClient> ConnectAsync(FakeCluster cluster, SluiceClientOptions? options = null) =>
        SluiceClient.ConnectAsync(cluster.Addresses, options ?? FastOptions);

    public static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    public static string Text(ReadOnlyMemory<byte> bytes) => Encoding.UTF8.GetString(bytes.Span);

    public static CancellationToken TimeoutToken() => new CancellationTokenSource(WaitLimit).Token;

    /// <summary>Reads exactly <paramref name="count"/> items (or fails after <see cref="WaitLimit"/>).</summary>
    public static async Task<List<T>> TakeAsync<T>(this IAsyncEnumerable<T> source, int count)
    {
        var result = new List<T>(count);
        if (count == 0)
        {
            return result;
        }

        await foreach (var item in source.WithCancellation(TimeoutToken()))
        {
            result.Add(item);
            if (result.Count == count)
            {
                break;
            }
        }

        return result;
    }

    /// <summary>Reads until the sequence ends (or fails after <see cref="WaitLimit"/>).</summary>
    public static async Task<List<T>> ToListAsync<T>(this IAsyncEnumerable<T> source)
    {
        var result = new List<T>();
        await foreach (var item in source.WithCancellation(TimeoutToken()))
        {
            result.Add(item);
        }

        return result;
    }

    /// <summary>Waits for a condition by polling it (no fixed sleeps as synchronisation).</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var token = TimeoutToken();
        while (!condition())
        {
            if (token.IsCancellationRequested)
            {
                throw new TimeoutException($"timed out waiting until {what}");
            }

            await Task.Delay(10, CancellationToken.None);
        }
    }
}
