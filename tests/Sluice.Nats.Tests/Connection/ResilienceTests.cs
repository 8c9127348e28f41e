using System.Net;
using System.Net.Sockets;
using System.Text;
using Sluice.TestKit;

namespace Sluice.Nats.Tests.Connection;

public class ResilienceTests
{
    [Fact]
    public async Task Server_killed_and_restarted_the_client_reconnects_resubscribes_and_delivers_the_buffered_messages()
    {
        await using var server = await NatsServerProcess.StartAsync(new NatsServerProcessOptions { StableAddress = true });
        await using var nats = await NatsConnection.ConnectAsync(Wait.Options(server.Url));
        var disconnected = new TaskCompletionSource();
        var reconnected = new TaskCompletionSource();
        nats.Disconnected += (_, _) => disconnected.TrySetResult();
        nats.Reconnected += (_, _) => reconnected.TrySetResult();
        var sub = await nats.SubscribeAsync("stream.events");
        var sid = sub.Sid;
        await nats.PublishAsync("stream.events", "before"u8.ToArray());
        Assert.Equal("before", Encoding.UTF8.GetString((await Wait.ReadAsync(sub, 1))[0].Data.Span));

        await server.KillAsync();
        await disconnected.Task.WaitAsync(Wait.Timeout);
        Assert.Equal(NatsConnectionState.Reconnecting, nats.State);
        for (var i = 0; i < 10; i++)
        {
            await nats.PublishAsync("stream.events", Encoding.UTF8.GetBytes($"buffered {i}"));
        }

        await server.RestartAsync();
        await reconnected.Task.WaitAsync(Wait.Timeout);
        var buffered = await Wait.ReadAsync(sub, 10);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"buffered {i}"), buffered.Select(m => Encoding.UTF8.GetString(m.Data.Span)));

        await nats.PublishAsync("stream.events", "after"u8.ToArray());
        Assert.Equal("after", Encoding.UTF8.GetString((await Wait.ReadAsync(sub, 1))[0].Data.Span));
        Assert.Equal(sid, sub.Sid);
        Assert.Equal(NatsConnectionState.Connected, nats.State);
    }

    [Fact]
    public async Task Publishing_beyond_the_reconnect_buffer_while_disconnected_fails_clearly()
    {
        // A stable address: the killed server's port cannot be taken by another test's nats-server,
        // and every reconnect is refused until a restart (which never comes).
        await using var server = await NatsServerProcess.StartAsync(new NatsServerProcessOptions { StableAddress = true });
        await using var nats = await NatsConnection.ConnectAsync(Wait.Options(server.Url) with { ReconnectBufferSize = 4096 });
        await server.KillAsync();
        await Wait.UntilAsync(() => nats.State == NatsConnectionState.Reconnecting, "the client notices the server is gone");
        var accepted = 0;
        var ex = await Assert.ThrowsAsync<NatsReconnectBufferFullException>(async () =>
        {
            for (var i = 0; i < 1000; i++)
            {
                await nats.PublishAsync("full", new byte[100]);
                accepted++;
            }
        });
        Assert.InRange(accepted, 30, 40);
        Assert.Contains("reconnect buffer is full", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task User_and_password_authenticate_and_wrong_ones_are_rejected()
    {
        await using var server = await NatsServerProcess.StartAsync(new NatsServerProcessOptions { User = "sluice", Password = "s3cret" });
        await using (var ok = await NatsConnection.ConnectAsync(Wait.Options(server.Url) with { User = "sluice", Password = "s3cret" }))
        {
            await ok.FlushAsync();
            Assert.True(ok.ServerInfo!.AuthRequired);
        }

        await using (var inUrl = await NatsConnection.ConnectAsync(Wait.Options($"nats://sluice:s3cret@127.0.0.1:{server.Port}")))
        {
            await inUrl.FlushAsync();
        }

        var ex = await Assert.ThrowsAsync<NatsAuthorizationException>(() => NatsConnection.ConnectAsync(Wait.Options(server.Url) with { User = "sluice", Password = "wrong" }).AsTask());
        Assert.Contains("Authorization Violation", ex.ServerMessage, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Token_authenticates_and_a_missing_token_is_rejected()
    {
        await using var server = await NatsServerProcess.StartAsync(new NatsServerProcessOptions { Token = "t0ken" });
        await using (var ok = await NatsConnection.ConnectAsync(Wait.Options(server.Url) with { Token = "t0ken" }))
        {
            await using var sub = await ok.SubscribeAsync("auth.token");
            await ok.PublishAsync("auth.token", new byte[] { 7 });
            Assert.Single(await Wait.ReadAsync(sub, 1));
        }

        await Assert.ThrowsAsync<NatsAuthorizationException>(() => NatsConnection.ConnectAsync(Wait.Options(server.Url)).AsTask());
    }

    [Fact]
    public async Task Max_payload_from_a_configured_server_is_enforced_on_publish()
    {
        await using var server = await NatsServerProcess.StartAsync(new NatsServerProcessOptions { Config = "max_payload: 1024\n" });
        await using var nats = await NatsConnection.ConnectAsync(Wait.Options(server.Url));
        Assert.Equal(1024, nats.ServerInfo!.MaxPayload);
        var headers = new NatsHeaders { ["K"] = "v" };
        await Assert.ThrowsAsync<NatsMaxPayloadExceededException>(() => nats.PublishAsync("big", new byte[1020], headers).AsTask());
        await nats.PublishAsync("big", new byte[1024]);
        await nats.FlushAsync();
    }

    [Fact]
    public async Task No_server_listening_fails_connect_with_a_connection_exception()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        await Assert.ThrowsAsync<NatsConnectionException>(() => NatsConnection.ConnectAsync(Wait.Options($"nats://127.0.0.1:{port}")).AsTask());
    }

    [Fact]
    public async Task Unanswered_pings_mark_the_connection_stale_and_it_reconnects()
    {
        // A fake server that completes the handshake, then never answers again.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var accepted = 0;
        using var stop = new CancellationTokenSource();
        var fake = Task.Run(async () =>
        {
            var clients = new List<TcpClient>();
            try
            {
                while (true)
                {
                    var client = await listener.AcceptTcpClientAsync(stop.Token);
                    clients.Add(client);
                    Interlocked.Increment(ref accepted);
                    var stream = client.GetStream();
                    await stream.WriteAsync("INFO {\"server_id\":\"fake\",\"max_payload\":1048576,\"headers\":true}\r\n"u8.ToArray(), stop.Token);
                    var seen = new StringBuilder();
                    var buffer = new byte[1024];
                    while (!seen.ToString().Contains("PING\r\n", StringComparison.Ordinal))
                    {
                        var n = await stream.ReadAsync(buffer, stop.Token);
                        if (n == 0)
                        {
                            break;
                        }

                        seen.Append(Encoding.ASCII.GetString(buffer, 0, n));
                    }

                    await stream.WriteAsync("PONG\r\n"u8.ToArray(), stop.Token);
                }
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                clients.ForEach(c => c.Dispose());
            }
        });

        var options = Wait.Options($"nats://127.0.0.1:{port}") with { PingInterval = TimeSpan.FromMilliseconds(50), MaxPingsOut = 2 };
        await using var nats = await NatsConnection.ConnectAsync(options);
        var disconnected = new TaskCompletionSource<NatsConnectionEventArgs>();
        nats.Disconnected += (_, e) => disconnected.TrySetResult(e);
        var e = await disconnected.Task.WaitAsync(Wait.Timeout);
        Assert.Contains("Stale connection", e.Error!.Message, StringComparison.Ordinal);
        await Wait.UntilAsync(() => Volatile.Read(ref accepted) >= 2, "the client reconnects to the server");
        await nats.CloseAsync();
        await stop.CancelAsync();
        await fake;
    }
}
