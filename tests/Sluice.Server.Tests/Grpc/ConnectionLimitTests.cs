using System.Net;
using System.Net.Sockets;
using System.Text;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Protocol.Http2;
using Sluice.Server.Grpc;
using Sluice.Server.Tests.Http2;

namespace Sluice.Server.Tests.Grpc;

/// <summary><see cref="GrpcServerOptions.MaxConnectionsPerAddress"/> on both transports: one client address cannot take every slot.</summary>
public sealed class ConnectionLimitTests
{
    private static readonly IPAddress OtherClient = IPAddress.Parse("127.0.0.2");

    [Theory]
    [InlineData(GrpcServerTransport.Native)]
    [InlineData(GrpcServerTransport.Kestrel)]
    public async Task A_client_address_over_its_limit_gets_goaway_with_the_reason_while_other_addresses_are_served(GrpcServerTransport transport)
    {
        await using var server = await StartAsync(transport, maxConnections: 10, perAddress: 2);
        await using var first = await HealthyAsync(await RawH2Client.ConnectAndHandshakeAsync(server.Port));
        await using var second = await HealthyAsync(await RawH2Client.ConnectAndHandshakeAsync(server.Port));

        await using (var third = await RawH2Client.ConnectAsync(server.Port))
        {
            var goAway = await third.WaitForGoAwayAsync();
            Assert.Equal(Http2ErrorCode.EnhanceYourCalm, goAway.ErrorCode);
            Assert.Equal(
                "the server serves at most 2 connections from one client address (grpc.max.connections.per.address)",
                Encoding.UTF8.GetString(goAway.Payload.AsSpan(8)));
            await third.WaitForCloseAsync();
        }

        // Another address still gets in, and the first two go on working.
        await using var other = await HealthyAsync(await RawH2Client.ConnectAndHandshakeAsync(server.Port, OtherClient));
        await HealthyAsync(second, streamId: 3);

        // A slot freed by the first address is its own again.
        await first.DisposeAsync();
        await using var again = await ConnectWhenFreedAsync(server.Port);
        await HealthyAsync(again);
    }

    [Fact]
    public async Task A_broker_address_gets_in_past_the_limits_and_keeps_its_place_only_by_proving_it_is_a_broker()
    {
        // Every connection here comes from 127.0.0.1, which the cluster would list as a broker's address.
        var registry = new GrpcMethodRegistry().AddUnary<Empty, Empty>("test.Internal", "Identify", Empty.Parser, (_, context) =>
        {
            context.MarkPeerBroker(); // what the replication service does once a caller's broker id and lease check out
            return ValueTask.FromResult(new Empty());
        });
        var options = GrpcServerOptions.Default with
        {
            Port = 0,
            MaxConnections = 10,
            MaxConnectionsPerAddress = 1,
            IsPeerBrokerAddress = address => IPAddress.IsLoopback(address),
            PeerIdentifyTimeout = TimeSpan.FromMilliseconds(300),
        };
        await using var server = new GrpcServer(options, registry, NullLoggerFactory.Instance);
        await server.StartAsync();
        await using var client = await HealthyAsync(await RawH2Client.ConnectAndHandshakeAsync(server.Port));

        // Past the per-address limit: admitted from the broker reserve. This one proves it is a broker and stays.
        await using var broker = await RawH2Client.ConnectAndHandshakeAsync(server.Port);
        await broker.SendRequestAsync(1, endStream: false, "/test.Internal/Identify");
        await broker.SendDataAsync(1, new byte[5], endStream: true);
        Assert.Equal("0", (await broker.ReadResponseAsync(1)).Trailer("grpc-status"));

        // This one only makes client calls: once its time to prove itself is up, it is refused as at accept.
        await using var pretender = await HealthyAsync(await RawH2Client.ConnectAndHandshakeAsync(server.Port));
        var goAway = await pretender.WaitForGoAwayAsync();
        Assert.Equal(Http2ErrorCode.EnhanceYourCalm, goAway.ErrorCode);
        Assert.Equal(
            "the server serves at most 1 connections from one client address (grpc.max.connections.per.address)",
            Encoding.UTF8.GetString(goAway.Payload.AsSpan(8)));

        // The broker's connection does not take the client's place: both go on working.
        Assert.False(await broker.SeesWithinAsync(f => f.Type == FrameType.GoAway, TimeSpan.FromMilliseconds(600)));
        await HealthyAsync(broker, streamId: 3);
        await HealthyAsync(client, streamId: 3);
    }

    private static async Task<GrpcServer> StartAsync(GrpcServerTransport transport, int maxConnections, int perAddress)
    {
        var server = new GrpcServer(
            GrpcServerOptions.Default with { Port = 0, Transport = transport, MaxConnections = maxConnections, MaxConnectionsPerAddress = perAddress },
            new GrpcMethodRegistry(),
            NullLoggerFactory.Instance);
        await server.StartAsync();
        return server;
    }

    /// <summary>A health check on the connection must answer SERVING.</summary>
    private static async Task<RawH2Client> HealthyAsync(RawH2Client client, int streamId = 1)
    {
        await client.SendRequestAsync(streamId, endStream: false, "/grpc.health.v1.Health/Check");
        await client.SendDataAsync(streamId, new byte[5], endStream: true);
        var response = await client.ReadResponseAsync(streamId);
        Assert.Equal("0", response.Trailer("grpc-status"));
        return client;
    }

    /// <summary>The server notes a closed connection a moment after the client closed it: retry until the slot is free.</summary>
    private static async Task<RawH2Client> ConnectWhenFreedAsync(int port)
    {
        var deadline = DateTime.UtcNow + RawH2Client.Timeout;
        while (true)
        {
            var client = await RawH2Client.ConnectAsync(port);
            try
            {
                await client.HandshakeAsync();
                if (!await client.SeesWithinAsync(f => f.Type == FrameType.GoAway))
                {
                    return client;
                }
            }
            catch (Exception ex) when (ex is IOException or SocketException)
            {
                // Refused: the server has not seen the freed slot yet.
            }

            await client.DisposeAsync();
            Assert.True(DateTime.UtcNow < deadline, "the closed connection's slot never came free");
            await Task.Delay(50);
        }
    }
}
