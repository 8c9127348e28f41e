using System.Collections.Concurrent;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Health;
using ServingStatus = Sluice.Protocol.Health.HealthCheckResponse.Types.ServingStatus;

namespace Sluice.Server.Grpc;

/// <summary>
/// The standard grpc.health.v1.Health/Check service. The server marks "" and every registered
/// service SERVING once it listens and NOT_SERVING when it stops (as Liftbridge does for "proto.API").
/// Watch is not served (UNIMPLEMENTED); probes use Check.
/// </summary>
public sealed class GrpcHealth
{
    public const string ServiceName = "grpc.health.v1.Health";

    private readonly ConcurrentDictionary<string, ServingStatus> _statuses = new(StringComparer.Ordinal);

    public void SetStatus(string service, ServingStatus status)
    {
        ArgumentNullException.ThrowIfNull(service);
        _statuses[service] = status;
    }

    /// <summary>Every known service, and the server as a whole (""), to NOT_SERVING.</summary>
    public void SetAllNotServing()
    {
        foreach (var service in _statuses.Keys)
        {
            _statuses[service] = ServingStatus.NotServing;
        }
    }

    public ServingStatus? GetStatus(string service) => _statuses.TryGetValue(service, out var s) ? s : null;

    internal void Register(GrpcMethodRegistry registry) =>
        registry.AddUnary<HealthCheckRequest, HealthCheckResponse>(ServiceName, "Check", HealthCheckRequest.Parser, Check);

    private ValueTask<HealthCheckResponse> Check(HealthCheckRequest request, GrpcCallContext context) =>
        _statuses.TryGetValue(request.Service, out var status)
            ? ValueTask.FromResult(new HealthCheckResponse { Status = status })
            : throw new GrpcException(GrpcStatusCode.NotFound, $"unknown service {request.Service}");
}
