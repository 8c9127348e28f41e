using System.Diagnostics;
using Sluice.Client.Grpc;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests.Http2;

/// <summary>
/// On the native transport an awaited publish resumes on the connection's reader thread, and ack
/// callbacks run there too. User code that blocks there must not stall the connection: another
/// reader takes over. Each test would otherwise wait for the 5 s ack timeout or fail it.
/// </summary>
public sealed class ReaderThreadTests
{
    [Fact]
    public async Task A_continuation_that_blocks_on_another_publish_does_not_deadlock_the_connection()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions with { Transport = GrpcTransport.Native });
        await client.CreateStreamAsync("s", "s");

        var watch = Stopwatch.StartNew();
        for (var i = 0; i < 3; i++)
        {
            await client.PublishAsync("s", Bytes($"a{i}"));

            // Sync over async right where the previous ack resumed this method: the ack of this publish
            // must be read by another thread than the one now blocked here.
#pragma warning disable xUnit1031 // blocking is the point of this test
            var ack = client.PublishAsync("s", Bytes($"b{i}")).GetAwaiter().GetResult();
#pragma warning restore xUnit1031
            Assert.Equal((2 * i) + 1, ack!.Offset);
        }

        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(4), $"took {watch.Elapsed}: the blocked reader was not taken over");
    }

    [Fact]
    public async Task A_slow_ack_callback_does_not_hold_up_other_acks_on_the_connection()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions with { Transport = GrpcTransport.Native });
        await client.CreateStreamAsync("s", "s");
        await client.PublishAsync("s", Bytes("warm"));

        using var release = new ManualResetEventSlim();
        var callbackRan = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await client.PublishAsync("s", Bytes("slow"), (_, _) =>
        {
            callbackRan.TrySetResult();
            release.Wait(TimeSpan.FromSeconds(10)); // holds the thread that delivered this ack
        });
        await callbackRan.Task.WaitAsync(WaitLimit);
        try
        {
            var watch = Stopwatch.StartNew();
            for (var i = 0; i < 5; i++)
            {
                Assert.NotNull(await client.PublishAsync("s", Bytes($"next{i}")).WaitAsync(TimeSpan.FromSeconds(3)));
            }

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"took {watch.Elapsed}");
        }
        finally
        {
            release.Set();
        }
    }

    [Fact]
    public async Task Acks_resume_awaiting_publishers_on_the_reader_thread_and_callbacks_elsewhere_see_every_ack()
    {
        await using var server = await RealServer.StartAsync();
        await using var client = await SluiceClient.ConnectAsync([server.Address], FastOptions with { Transport = GrpcTransport.Native });
        await client.CreateStreamAsync("s", "s");
        await client.PublishAsync("s", Bytes("warm"));

        // The first acks may be read by the pool thread that started the ack reader; after that, acks
        // are read, and their publishers resumed, on the connection's reader thread.
        var onReader = 0;
        for (var i = 0; i < 20; i++)
        {
            await client.PublishAsync("s", Bytes("x"));
            onReader += (Thread.CurrentThread.Name ?? string.Empty).StartsWith("sluice h2", StringComparison.Ordinal) ? 1 : 0;
        }

        Assert.True(onReader >= 10, $"{onReader} of 20 publishers resumed on the reader thread");

        var acks = 0;
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        for (var i = 0; i < 200; i++)
        {
            await client.PublishAsync("s", Bytes($"{i}"), (ack, error) =>
            {
                if (error is null && Interlocked.Increment(ref acks) == 200)
                {
                    all.TrySetResult();
                }
            });
        }

        await all.Task.WaitAsync(WaitLimit);
    }
}
