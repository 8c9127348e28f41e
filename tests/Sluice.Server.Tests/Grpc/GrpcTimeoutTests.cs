using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Protocol.Health;
using Sluice.Server.Grpc;
using Sluice.Server.Tests.Http2;

namespace Sluice.Server.Tests.Grpc;

/// <summary>The grpc-timeout header over its whole range: at most 8 digits and any unit, on both transports.</summary>
public sealed class GrpcTimeoutTests
{
    public static TheoryData<GrpcServerTransport, string> LongTimeouts()
    {
        var data = new TheoryData<GrpcServerTransport, string>();
        foreach (var transport in new[] { GrpcServerTransport.Native, GrpcServerTransport.Kestrel })
        {
            foreach (var timeout in new[] { "1193H", "1194H", "99999999H", "99999999M", "99999999S", "99999999m", "99999999u", "99999999n" })
            {
                data.Add(transport, timeout);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(LongTimeouts))]
    public async Task A_timeout_up_to_the_spec_maximum_is_accepted_and_the_call_succeeds(GrpcServerTransport transport, string timeout)
    {
        DateTime? seen = null;
        var registry = new GrpcMethodRegistry().AddUnary<HealthCheckRequest, HealthCheckResponse>("test.Deadline", "Check", HealthCheckRequest.Parser, (_, context) =>
        {
            seen = context.Deadline;
            return ValueTask.FromResult(new HealthCheckResponse { Status = HealthCheckResponse.Types.ServingStatus.Serving });
        });
        await using var server = new GrpcServer(GrpcServerOptions.Default with { Port = 0, Transport = transport }, registry, NullLoggerFactory.Instance);
        await server.StartAsync();
        var before = DateTime.UtcNow;

        await using var client = await RawH2Client.ConnectAndHandshakeAsync(server.Port);
        await client.SendRequestAsync(1, endStream: false, "/test.Deadline/Check", ("grpc-timeout", timeout));
        await client.SendDataAsync(1, new byte[5], endStream: true); // one empty message
        var response = await client.ReadResponseAsync(1);

        Assert.Equal("0", response.Trailer("grpc-status"));
        Assert.NotNull(seen);
        Assert.True(seen >= before, $"the deadline {seen:O} is before the call");
    }
}
