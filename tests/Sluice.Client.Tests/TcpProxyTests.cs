using System.Net;
using System.Net.Sockets;
using System.Text;
using Sluice.TestKit;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>The test kit's <see cref="TcpProxy"/>: forwarding, pausing without loss, and resets.</summary>
public sealed class TcpProxyTests
{
    [Fact]
    public async Task Forwards_both_ways_and_passes_a_half_close_on()
    {
        await using var target = Target.Start();
        await using var proxy = TcpProxy.Start(target.EndPoint);
        using var client = await ConnectAsync(proxy);
        using var server = await target.AcceptAsync();

        await SendAsync(client, "ping");
        Assert.Equal("ping", await ReceiveAsync(server, 4));
        await SendAsync(server, "pong");
        Assert.Equal("pong", await ReceiveAsync(client, 4));
        Assert.Equal(1, proxy.ConnectionCount);

        client.Shutdown(SocketShutdown.Send);
        Assert.Equal(0, await server.ReceiveAsync(new byte[1], SocketFlags.None, TimeoutToken())); // the FIN came through
        await SendAsync(server, "bye"); // the other direction still works after a half-close
        Assert.Equal("bye", await ReceiveAsync(client, 3));
        server.Shutdown(SocketShutdown.Send);
        Assert.Equal(0, await client.ReceiveAsync(new byte[1], SocketFlags.None, TimeoutToken()));
        await WaitUntilAsync(() => proxy.ConnectionCount == 0, "the proxy closed the finished connection");
    }

    [Theory]
    [InlineData(ProxyDirection.ClientToServer)]
    [InlineData(ProxyDirection.ServerToClient)]
    public async Task Pause_holds_bytes_in_one_direction_and_resume_delivers_all_of_them_in_order(ProxyDirection direction)
    {
        await using var target = Target.Start();
        await using var proxy = TcpProxy.Start(target.EndPoint);
        using var client = await ConnectAsync(proxy);
        using var server = await target.AcceptAsync();
        var (sender, receiver) = direction == ProxyDirection.ClientToServer ? (client, server) : (server, client);
        var (otherSender, otherReceiver) = (receiver, sender);

        proxy.Pause(direction);
        await SendAsync(sender, "hello");
        await WaitUntilAsync(() => proxy.HeldBytes(direction) == 5, "the proxy read and held the bytes");
        await SendAsync(sender, " world"); // waits in the socket buffers behind the held chunk
        await SendAsync(otherSender, "other way");
        Assert.Equal("other way", await ReceiveAsync(otherReceiver, 9)); // only the paused direction stops
        Assert.Equal(0, receiver.Available); // the proxy holds the bytes, so none can have arrived
        Assert.Equal(0, proxy.HeldBytes(ProxyDirection.Both ^ direction));

        proxy.Resume(direction);
        Assert.Equal("hello world", await ReceiveAsync(receiver, 11));
        Assert.Equal(0, proxy.HeldBytes());
    }

    [Fact]
    public async Task Pause_applies_to_connections_opened_while_paused()
    {
        await using var target = Target.Start();
        await using var proxy = TcpProxy.Start(target.EndPoint);
        proxy.Pause();
        using var client = await ConnectAsync(proxy);
        using var server = await target.AcceptAsync();
        await SendAsync(client, "abc");
        await WaitUntilAsync(() => proxy.HeldBytes(ProxyDirection.ClientToServer) == 3, "the bytes are held");
        proxy.Resume();
        Assert.Equal("abc", await ReceiveAsync(server, 3));
    }

    [Fact]
    public async Task DropConnections_resets_both_sides_of_every_connection_and_new_ones_still_work()
    {
        await using var target = Target.Start();
        await using var proxy = TcpProxy.Start(target.EndPoint);
        using var client1 = await ConnectAsync(proxy);
        using var server1 = await target.AcceptAsync();
        using var client2 = await ConnectAsync(proxy);
        using var server2 = await target.AcceptAsync();
        await WaitUntilAsync(() => proxy.ConnectionCount == 2, "both connections are forwarded");
        proxy.Pause(); // held bytes go with the connection
        await SendAsync(client1, "lost");

        proxy.DropConnections();

        foreach (var socket in new[] { client1, server1, client2, server2 })
        {
            var ex = await Assert.ThrowsAsync<SocketException>(async () => await socket.ReceiveAsync(new byte[16], SocketFlags.None, TimeoutToken()));
            Assert.Equal(SocketError.ConnectionReset, ex.SocketErrorCode);
        }

        Assert.Equal(0, proxy.ConnectionCount);
        proxy.Resume();
        using var client3 = await ConnectAsync(proxy);
        using var server3 = await target.AcceptAsync();
        await SendAsync(client3, "again");
        Assert.Equal("again", await ReceiveAsync(server3, 5));
        Assert.Equal(3, proxy.AcceptedCount);
    }

    [Fact]
    public async Task A_connection_without_a_target_is_reset_and_the_target_can_be_set_later()
    {
        await using var target = Target.Start();
        await using var proxy = TcpProxy.Start();
        var ex = await Assert.ThrowsAsync<SocketException>(async () =>
        {
            // The reset may come before the connect completes or before the first read.
            using var early = await ConnectAsync(proxy);
            await early.ReceiveAsync(new byte[1], SocketFlags.None, TimeoutToken());
        });
        Assert.Equal(SocketError.ConnectionReset, ex.SocketErrorCode);

        proxy.Target = target.EndPoint;
        using var client = await ConnectAsync(proxy);
        using var server = await target.AcceptAsync();
        await SendAsync(client, "x");
        Assert.Equal("x", await ReceiveAsync(server, 1));
    }

    private static async Task<Socket> ConnectAsync(TcpProxy proxy)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(IPAddress.Loopback, proxy.Port, TimeoutToken());
        return socket;
    }

    private static async Task SendAsync(Socket socket, string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        var sent = 0;
        while (sent < bytes.Length)
        {
            sent += await socket.SendAsync(bytes.AsMemory(sent), SocketFlags.None, TimeoutToken());
        }
    }

    private static async Task<string> ReceiveAsync(Socket socket, int count)
    {
        var buffer = new byte[count];
        var token = TimeoutToken();
        var read = 0;
        while (read < count)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, token);
            Assert.True(n > 0, $"the connection closed after {read} of {count} bytes");
            read += n;
        }

        return Encoding.ASCII.GetString(buffer);
    }

    /// <summary>A plain listener standing in for the server behind the proxy.</summary>
    private sealed class Target : IAsyncDisposable
    {
        private readonly Socket _listener;

        private Target()
        {
            _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen(16);
        }

        public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

        public static Target Start() => new();

        public async Task<Socket> AcceptAsync()
        {
            var socket = await _listener.AcceptAsync(TimeoutToken());
            socket.NoDelay = true;
            return socket;
        }

        public ValueTask DisposeAsync()
        {
            _listener.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
