using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Protocol.Health;
using Sluice.Server.Grpc;
using Sluice.Server.Tests.Http2;

namespace Sluice.Server.Tests.Grpc;

/// <summary>A handler that fails unexpectedly: the client learns that it failed, never the server's paths or exception types.</summary>
public sealed class HandlerFailureTests
{
    [Theory]
    [InlineData(GrpcServerTransport.Native)]
    [InlineData(GrpcServerTransport.Kestrel)]
    public async Task An_unexpected_handler_failure_answers_internal_without_its_exception_type_or_message(GrpcServerTransport transport)
    {
        var registry = new GrpcMethodRegistry().AddUnary<HealthCheckRequest, HealthCheckResponse>("test.Failing", "Check", HealthCheckRequest.Parser,
            (_, _) => throw new DirectoryNotFoundException("Could not find a part of the path '/var/lib/sluice/secret/streams'"));
        await using var server = new GrpcServer(GrpcServerOptions.Default with { Port = 0, Transport = transport }, registry, NullLoggerFactory.Instance);
        await server.StartAsync();

        await using var client = await RawH2Client.ConnectAndHandshakeAsync(server.Port);
        await client.SendRequestAsync(1, endStream: false, "/test.Failing/Check");
        await client.SendDataAsync(1, new byte[5], endStream: true); // one empty message
        var response = await client.ReadResponseAsync(1);

        Assert.Equal("13", response.Trailer("grpc-status"));
        var message = Uri.UnescapeDataString(response.Trailer("grpc-message") ?? string.Empty);
        Assert.Contains("Exception was thrown by handler", message, StringComparison.Ordinal);
        Assert.DoesNotContain("/var/lib/sluice", message, StringComparison.Ordinal);
        Assert.DoesNotContain(nameof(DirectoryNotFoundException), message, StringComparison.Ordinal);
    }
}
