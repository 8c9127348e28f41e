using System.Net;
using System.Net.Sockets;
using Sluice.Server.Http2;

namespace Sluice.Server.Tests.Http2;

/// <summary>The native HTTP/2 server's socket: writes never wait for the client, and nothing is lost or reordered.</summary>
public sealed class ServerSocketStreamTests
{
    [Fact]
    public async Task Writes_to_a_client_that_does_not_read_return_at_once_and_everything_arrives_in_order_later()
    {
        var (server, client) = await ConnectedPairAsync();
        using var peer = client;
        using var stream = new ServerSocketStream(server, maxPendingBytes: 64L << 20);

        // 16 MiB in 64 KiB writes: far more than the kernel's socket buffers hold, with nobody reading.
        var chunk = new byte[64 * 1024];
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < 256; i++)
        {
            Array.Fill(chunk, (byte)i);
            stream.Write(chunk);
        }

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"writes took {clock.Elapsed}: they waited for the client");
        Assert.True(stream.PendingBytes > 0, "the kernel took 16 MiB at once: the test proves nothing");

        var received = new byte[256 * chunk.Length];
        var total = 0;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (total < received.Length)
        {
            var n = await peer.ReceiveAsync(received.AsMemory(total), SocketFlags.None, timeout.Token);
            Assert.NotEqual(0, n);
            total += n;
        }

        for (var i = 0; i < 256; i++)
        {
            Assert.True(received.AsSpan(i * chunk.Length, chunk.Length).IndexOfAnyExcept((byte)i) < 0, $"chunk {i} arrived changed or out of order");
        }

        await WaitUntilAsync(() => stream.PendingBytes == 0);
    }

    [Fact]
    public async Task A_client_that_lets_too_much_output_queue_up_fails_the_stream_with_a_clear_error()
    {
        var (server, client) = await ConnectedPairAsync();
        using var peer = client;
        using var stream = new ServerSocketStream(server, maxPendingBytes: 1 << 20);
        var chunk = new byte[64 * 1024];
        var error = Assert.Throws<IOException>(() =>
        {
            for (var i = 0; i < 1024; i++)
            {
                stream.Write(chunk);
            }
        });
        Assert.Contains("stopped reading", error.Message, StringComparison.Ordinal);
        Assert.Throws<IOException>(() => stream.Write(chunk)); // and stays failed
    }

    [Fact]
    public async Task Reads_wait_for_data_and_a_read_timeout_fails_with_a_clear_error()
    {
        var (server, client) = await ConnectedPairAsync();
        using var peer = client;
        using var stream = new ServerSocketStream(server, maxPendingBytes: 1 << 20) { ReadTimeoutMilliseconds = 200 };
        var buffer = new byte[16];
        var error = Assert.Throws<IOException>(() => stream.Read(buffer));
        Assert.Contains("No data from the client within 200 ms", error.Message, StringComparison.Ordinal);

        stream.ReadTimeoutMilliseconds = -1;
        var read = Task.Run(() => stream.Read(buffer));
        await Task.Delay(50);
        Assert.False(read.IsCompleted);
        await peer.SendAsync(new byte[] { 1, 2, 3 }, SocketFlags.None);
        Assert.Equal(3, await read.WaitAsync(TimeSpan.FromSeconds(10)));

        peer.Shutdown(SocketShutdown.Send);
        Assert.Equal(0, await Task.Run(() => stream.Read(buffer)).WaitAsync(TimeSpan.FromSeconds(10)));
    }

    private static async Task<(Socket Server, Socket Client)> ConnectedPairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);
        var server = await listener.AcceptAsync();
        return (server, client);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met within 10 s");
            await Task.Delay(10);
        }
    }
}
