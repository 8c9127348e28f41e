using System.Runtime.ExceptionServices;
using Google.Protobuf;
using Sluice.Protocol.Grpc;
using Sluice.Server.Http2;

namespace Sluice.Server.Grpc;

/// <summary>The per-call plumbing the method adapters use: request reading, response writing.</summary>
internal sealed class GrpcServerCall(IHttp2Exchange exchange, GrpcCallContext context, GrpcServerOptions options, string? requestEncoding)
{
    public GrpcCallContext Context { get; } = context;

    /// <summary>
    /// Set once a message is in the response pipe. The response counts as started only after a flush,
    /// and a status put in the headers then would turn a real response into a trailers-only one.
    /// </summary>
    public bool HasWrittenMessages { get; private set; }

    public GrpcMessageReader<T> CreateRequestReader<T>(GrpcDecoder<T> decode)
        where T : class
        => new(exchange.RequestBody, decode, options.MaxReceiveMessageSize, requestEncoding);

    /// <summary>Unary and server-streaming requests: exactly one message, then end of stream.</summary>
    public async ValueTask<T> ReadSingleRequestAsync<T>(GrpcDecoder<T> decode)
        where T : class
    {
        var reader = CreateRequestReader(decode);
        var request = await reader.ReadAsync(Context.CancellationToken).ConfigureAwait(false)
            ?? throw new GrpcException(GrpcStatusCode.Internal, "The request ended without a message");
        if (await reader.ReadAsync(Context.CancellationToken).ConfigureAwait(false) is not null)
        {
            throw new GrpcException(GrpcStatusCode.Internal, "More than one request message for a call that takes one");
        }

        return request;
    }

    public void WriteSingleResponse<T>(T response)
        where T : class, IMessage<T>
    {
        ArgumentNullException.ThrowIfNull(response, "the handler's response");
        GrpcFrame.WriteMessage(exchange.ResponseBody, response, options.MaxSendMessageSize);
        HasWrittenMessages = true;
    }

    public GrpcStreamWriter<T> CreateStreamWriter<T>()
        where T : class
        => new(exchange.ResponseBody, options.MaxSendMessageSize, () => HasWrittenMessages = true, Context.CancellationToken);

    /// <summary>
    /// Runs a streaming handler, then drains its queued responses, even when it failed (the client
    /// gets them, then the status). The handler's error wins over a writer error it caused.
    /// </summary>
    public static async Task RunStreamingAsync<T>(GrpcStreamWriter<T> writer, Func<Task> handler)
        where T : class
    {
        Exception? handlerError = null;
        try
        {
            await handler().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            handlerError = ex;
        }

        try
        {
            await writer.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception) when (handlerError is not null)
        {
            // Secondary: the writer failed for the same reason the handler did.
        }

        if (handlerError is not null)
        {
            ExceptionDispatchInfo.Throw(handlerError);
        }
    }
}
