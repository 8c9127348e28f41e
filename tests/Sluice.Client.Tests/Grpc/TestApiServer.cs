using Google.Protobuf;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Server.Grpc;

namespace Sluice.Client.Tests.Grpc;

/// <summary>
/// A TEST implementation of a few proto.API methods on the real gRPC server, on 127.0.0.1:0.
/// Its behaviour is keyed on request fields, and the conformance script (tests/conformance)
/// relies on the same conventions:
/// CreateStream: name "exists" → ALREADY_EXISTS; "bad" → INVALID_ARGUMENT with <see cref="OddMessage"/>;
///   "throw" → the handler throws; "slow" → waits until cancelled; anything else → OK.
/// FetchMetadata: one broker "b1" and one StreamMetadata per requested stream.
/// Subscribe: an empty handshake Message, then startOffset messages (offset i, 256-byte value);
///   stream "missing" → NOT_FOUND before any message; stream "forever" → handshake, then waits.
/// Publish: ack with offset = value length and msgSubject = the request's grpc-encoding header.
/// PublishAsync: one PublishResponse per request with its correlationId (none for AckPolicy NONE).
/// </summary>
public sealed class TestApiServer : IAsyncDisposable
{
    public const string OddMessage = "bad name: naïve ünïcode, 流, 100% sure\ttab";
    public const string Service = "proto.API";

    private TaskCompletionSource _subscribeCancelled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private TestApiServer(GrpcServer server) => Server = server;

    public GrpcServer Server { get; }

    public Uri Address => new($"http://127.0.0.1:{Server.Port}");

    /// <summary>Completes when a "forever" subscription's handler sees its cancellation.</summary>
    public Task SubscribeCancelled => _subscribeCancelled.Task;

    public void ResetSubscribeCancelled() =>
        _subscribeCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public static async Task<TestApiServer> StartAsync(GrpcServerOptions? options = null)
    {
        var methods = new GrpcMethodRegistry();
        var server = new GrpcServer((options ?? GrpcServerOptions.Default) with { Host = "127.0.0.1", Port = 0 }, methods);
        var api = new TestApiServer(server);
        api.Register(methods);
        await server.StartAsync();
        return api;
    }

    public ValueTask DisposeAsync() => Server.DisposeAsync();

    private void Register(GrpcMethodRegistry methods)
    {
        methods.AddUnary<CreateStreamRequest, CreateStreamResponse>(Service, "CreateStream", CreateStreamRequest.Parser, CreateStreamAsync);
        methods.AddUnary<FetchMetadataRequest, FetchMetadataResponse>(Service, "FetchMetadata", FetchMetadataRequest.Parser, FetchMetadata);
        methods.AddUnary<PublishRequest, PublishResponse>(Service, "Publish", PublishRequest.Parser, Publish);
        methods.AddServerStreaming<SubscribeRequest, Message>(Service, "Subscribe", SubscribeRequest.Parser, SubscribeAsync);
        methods.AddDuplexStreaming<PublishRequest, PublishResponse>(Service, "PublishAsync", PublishRequest.Parser, PublishAsync);
    }

    private static async ValueTask<CreateStreamResponse> CreateStreamAsync(CreateStreamRequest request, GrpcCallContext context)
    {
        switch (request.Name)
        {
            case "exists":
                throw new GrpcException(GrpcStatusCode.AlreadyExists, "stream already exists");
            case "bad":
                throw new GrpcException(GrpcStatusCode.InvalidArgument, OddMessage);
            case "throw":
                throw new InvalidOperationException("boom from the test handler");
            case "slow":
                await Task.Delay(Timeout.Infinite, context.CancellationToken);
                break;
        }

        return new CreateStreamResponse();
    }

    private static ValueTask<FetchMetadataResponse> FetchMetadata(FetchMetadataRequest request, GrpcCallContext context)
    {
        var response = new FetchMetadataResponse
        {
            Brokers = { new Broker { Id = "b1", Host = "127.0.0.1", Port = 9292, PartitionCount = 1, LeaderCount = 1 } },
        };
        foreach (var stream in request.Streams)
        {
            response.StreamMetadata.Add(new StreamMetadata
            {
                Name = stream,
                Subject = "subj." + stream,
                Partitions = { [0] = new PartitionMetadata { Id = 0, Leader = "b1", HighWatermark = 41, NewestOffset = 42 } },
            });
        }

        return ValueTask.FromResult(response);
    }

    private static ValueTask<PublishResponse> Publish(PublishRequest request, GrpcCallContext context) =>
        ValueTask.FromResult(new PublishResponse
        {
            CorrelationId = request.CorrelationId,
            Ack = new Ack
            {
                Stream = request.Stream,
                Offset = request.Value.Length,
                CorrelationId = request.CorrelationId,
                MsgSubject = context.RequestHeader("grpc-encoding") ?? string.Empty,
            },
        });

    private async Task SubscribeAsync(SubscribeRequest request, GrpcStreamWriter<Message> responses, GrpcCallContext context)
    {
        if (request.Stream == "missing")
        {
            throw new GrpcException(GrpcStatusCode.NotFound, "No such partition");
        }

        await responses.WriteAsync(new Message(), context.CancellationToken); // Liftbridge's handshake frame
        if (request.Stream == "forever")
        {
            try
            {
                await Task.Delay(Timeout.Infinite, context.CancellationToken);
            }
            finally
            {
                _subscribeCancelled.TrySetResult();
            }
        }

        var value = ByteString.CopyFrom(new byte[256]);
        for (long i = 0; i < request.StartOffset; i++)
        {
            await responses.WriteAsync(new Message { Offset = i, Value = value, Stream = request.Stream }, context.CancellationToken);
        }
    }

    private static async Task PublishAsync(IAsyncEnumerable<PublishRequest> requests, GrpcStreamWriter<PublishResponse> responses, GrpcCallContext context)
    {
        long offset = 0;
        await foreach (var request in requests.WithCancellation(context.CancellationToken))
        {
            if (request.AckPolicy == Sluice.Protocol.Api.AckPolicy.None)
            {
                continue;
            }

            var response = new PublishResponse { CorrelationId = request.CorrelationId };
            if (request.Stream == "missing")
            {
                response.AsyncError = new PublishAsyncError { Code = PublishAsyncError.Types.Code.NotFound, Message = "no such stream: missing" };
            }
            else
            {
                response.Ack = new Ack { Stream = request.Stream, Offset = offset++, CorrelationId = request.CorrelationId, AckPolicy = request.AckPolicy };
            }

            await responses.WriteAsync(response, context.CancellationToken);
        }
    }
}
