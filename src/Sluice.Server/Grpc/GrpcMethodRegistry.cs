using System.Runtime.CompilerServices;
using Google.Protobuf;
using Sluice.Protocol.Grpc;

namespace Sluice.Server.Grpc;

/// <summary>Handles a unary call. Throw <see cref="GrpcException"/> to fail it with a chosen status.</summary>
public delegate ValueTask<TResponse> UnaryHandler<TRequest, TResponse>(TRequest request, GrpcCallContext context);

/// <summary>Handles a server-streaming call; the call ends (status OK) when the task completes. Responses are protobuf messages or <see cref="IGrpcEncodable"/>s.</summary>
public delegate Task ServerStreamingHandler<TRequest, TResponse>(TRequest request, GrpcStreamWriter<TResponse> responses, GrpcCallContext context)
    where TResponse : class;

/// <summary>Handles a bidirectional call; <paramref name="requests"/> ends when the client half-closes.</summary>
public delegate Task DuplexStreamingHandler<TRequest, TResponse>(IAsyncEnumerable<TRequest> requests, GrpcStreamWriter<TResponse> responses, GrpcCallContext context)
    where TResponse : class;

/// <summary>Maps "/package.Service/Method" paths to typed handlers. Fill it before starting the server.</summary>
public sealed class GrpcMethodRegistry
{
    private readonly Dictionary<string, GrpcMethod> _methods = new(StringComparer.Ordinal);

    /// <summary>The services with at least one method ("proto.API", ...).</summary>
    public IReadOnlyCollection<string> ServiceNames => _methods.Values.Select(m => m.Service).Distinct(StringComparer.Ordinal).ToArray();

    public GrpcMethodRegistry AddUnary<TRequest, TResponse>(string service, string method, MessageParser<TRequest> parser, UnaryHandler<TRequest, TResponse> handler)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
        => AddUnary<TRequest, TResponse>(service, method, parser.ParseFrom, handler);

    /// <summary>A unary method whose requests are read by <paramref name="decode"/> (e.g. a hand-written codec).</summary>
    public GrpcMethodRegistry AddUnary<TRequest, TResponse>(string service, string method, GrpcDecoder<TRequest> decode, UnaryHandler<TRequest, TResponse> handler)
        where TRequest : class
        where TResponse : class, IMessage<TResponse>
        => Add(new UnaryMethod<TRequest, TResponse>(service, method, decode, handler));

    public GrpcMethodRegistry AddServerStreaming<TRequest, TResponse>(string service, string method, MessageParser<TRequest> parser, ServerStreamingHandler<TRequest, TResponse> handler)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class
        => Add(new ServerStreamingMethod<TRequest, TResponse>(service, method, parser.ParseFrom, handler));

    public GrpcMethodRegistry AddDuplexStreaming<TRequest, TResponse>(string service, string method, MessageParser<TRequest> parser, DuplexStreamingHandler<TRequest, TResponse> handler)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class
        => AddDuplexStreaming<TRequest, TResponse>(service, method, parser.ParseFrom, handler);

    /// <summary>A bidirectional method whose requests are read by <paramref name="decode"/> (e.g. a hand-written codec).</summary>
    public GrpcMethodRegistry AddDuplexStreaming<TRequest, TResponse>(string service, string method, GrpcDecoder<TRequest> decode, DuplexStreamingHandler<TRequest, TResponse> handler)
        where TRequest : class
        where TResponse : class
        => Add(new DuplexStreamingMethod<TRequest, TResponse>(service, method, decode, handler));

    internal bool TryGet(string path, out GrpcMethod method) => _methods.TryGetValue(path, out method!);

    private GrpcMethodRegistry Add(GrpcMethod method)
    {
        if (!_methods.TryAdd(method.Path, method))
        {
            throw new InvalidOperationException($"gRPC method {method.Path} is already registered.");
        }

        return this;
    }
}

/// <summary>One registered method: knows how to read its requests and run its handler.</summary>
internal abstract class GrpcMethod(string service, string method)
{
    public string Service { get; } = ValidName(service, nameof(service));

    public string Path { get; } = $"/{service}/{ValidName(method, nameof(method))}";

    /// <summary>Runs the call; the pipeline around it writes the status.</summary>
    public abstract Task InvokeAsync(GrpcServerCall call);

    private static string ValidName(string name, string paramName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name, paramName);
        return name.Contains('/', StringComparison.Ordinal) ? throw new ArgumentException("Must not contain '/'.", paramName) : name;
    }
}

internal sealed class UnaryMethod<TRequest, TResponse>(string service, string method, GrpcDecoder<TRequest> decode, UnaryHandler<TRequest, TResponse> handler)
    : GrpcMethod(service, method)
    where TRequest : class
    where TResponse : class, IMessage<TResponse>
{
    public override async Task InvokeAsync(GrpcServerCall call)
    {
        var request = await call.ReadSingleRequestAsync(decode).ConfigureAwait(false);
        var response = await handler(request, call.Context).ConfigureAwait(false);
        call.WriteSingleResponse(response);
    }
}

internal sealed class ServerStreamingMethod<TRequest, TResponse>(string service, string method, GrpcDecoder<TRequest> decode, ServerStreamingHandler<TRequest, TResponse> handler)
    : GrpcMethod(service, method)
    where TRequest : class
    where TResponse : class
{
    public override async Task InvokeAsync(GrpcServerCall call)
    {
        var request = await call.ReadSingleRequestAsync(decode).ConfigureAwait(false);
        var writer = call.CreateStreamWriter<TResponse>();
        await GrpcServerCall.RunStreamingAsync(writer, () => handler(request, writer, call.Context)).ConfigureAwait(false);
    }
}

internal sealed class DuplexStreamingMethod<TRequest, TResponse>(string service, string method, GrpcDecoder<TRequest> decode, DuplexStreamingHandler<TRequest, TResponse> handler)
    : GrpcMethod(service, method)
    where TRequest : class
    where TResponse : class
{
    public override async Task InvokeAsync(GrpcServerCall call)
    {
        var reader = call.CreateRequestReader(decode);
        var writer = call.CreateStreamWriter<TResponse>();
        await GrpcServerCall.RunStreamingAsync(writer, () => handler(ReadAllAsync(reader, call.Context.CancellationToken), writer, call.Context)).ConfigureAwait(false);
    }

    private static async IAsyncEnumerable<TRequest> ReadAllAsync(GrpcMessageReader<TRequest> reader, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false) is { } message)
        {
            yield return message;
        }
    }
}
