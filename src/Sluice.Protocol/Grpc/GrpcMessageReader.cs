using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Google.Protobuf;

namespace Sluice.Protocol.Grpc;

/// <summary>
/// Turns one gRPC message's payload into a value. Throws <see cref="InvalidProtocolBufferException"/>
/// or <see cref="InvalidDataException"/> for bytes that are not a valid message. A protobuf type's
/// decoder is its parser's <c>ParseFrom</c>, e.g. <c>Ack.Parser.ParseFrom</c>.
/// </summary>
public delegate T GrpcDecoder<out T>(ReadOnlySequence<byte> payload);

/// <summary>
/// Reads length-prefixed protobuf messages from a pipe (a request body on the server, a response
/// body on the client). Every whole message a read brought is parsed at once (up to
/// <see cref="MaxReadAhead"/> messages and about <see cref="MaxReadAheadBytes"/>, so a slow reader
/// of large messages does not take much more from the peer than one message at a time would) and
/// handed out from a queue without touching the pipe again: a busy stream costs one pipe read and
/// one advance per batch instead of per message. A message that fails to parse is reported after
/// the good ones before it, as if read one by one.
/// </summary>
public sealed class GrpcMessageReader<T>
    where T : class
{
    /// <summary>At most this many parsed messages wait in the queue.</summary>
    public const int MaxReadAhead = 256;

    /// <summary>Parsing ahead stops once the messages parsed in one go reach this many payload bytes.</summary>
    public const int MaxReadAheadBytes = 64 * 1024;

    // The name errors give: the wire readers (WirePublishRequest, ...) read the proto message named without the prefix.
    private static readonly string MessageName = typeof(T).Name.StartsWith("Wire", StringComparison.Ordinal) && typeof(T).Name.Length > 4 ? typeof(T).Name[4..] : typeof(T).Name;

    private readonly PipeReader _reader;
    private readonly GrpcDecoder<T> _decode;
    private readonly int _maxMessageSize;
    private readonly bool _gzip;
    private readonly Queue<T> _ready = new();
    private Exception? _failure;
    private bool _ended;

    /// <summary>Reads from <paramref name="reader"/>; <paramref name="encoding"/> is the peer's <c>grpc-encoding</c> (null/"identity" or "gzip").</summary>
    public GrpcMessageReader(PipeReader reader, GrpcDecoder<T> decode, int maxMessageSize, string? encoding)
    {
        _reader = reader;
        _decode = decode;
        _maxMessageSize = maxMessageSize;
        _gzip = string.Equals(encoding, GrpcCompression.Gzip, StringComparison.Ordinal);
    }

    /// <summary>
    /// The next message, or null at a clean end of stream. A stream that ends inside a message
    /// is an INTERNAL error (the gRPC spec's answer to a truncated message).
    /// </summary>
    public ValueTask<T?> ReadAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<T?>(cancellationToken);
        }

        if (_ready.TryDequeue(out var message))
        {
            return new ValueTask<T?>(message);
        }

        if (_failure is { } failure)
        {
            _failure = null;
            return ValueTask.FromException<T?>(failure);
        }

        return _ended ? new ValueTask<T?>((T?)null) : ReadMoreAsync(cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // awaited once per message: the box is reused
    private async ValueTask<T?> ReadMoreAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await _reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            var consumed = buffer.Start; // just past the last message parsed
            long parsedBytes = 0;
            try
            {
                while (_ready.Count < MaxReadAhead && parsedBytes < MaxReadAheadBytes
                    && GrpcFrame.TryRead(ref buffer, _maxMessageSize, out var compressed, out var payload))
                {
                    _ready.Enqueue(Parse(compressed, payload));
                    consumed = buffer.Start;
                    parsedBytes += payload.Length;
                }
            }
            catch (Exception ex)
            {
                _reader.AdvanceTo(consumed);
                if (_ready.Count == 0)
                {
                    throw;
                }

                _failure = ex; // reported after the good messages before it
                return _ready.Dequeue();
            }

            if (_ready.TryDequeue(out var message))
            {
                _reader.AdvanceTo(consumed);
                return message;
            }

            if (result.IsCanceled)
            {
                _reader.AdvanceTo(buffer.Start);
                throw new OperationCanceledException("The read was canceled.");
            }

            if (result.IsCompleted)
            {
                var left = buffer.Length;
                _reader.AdvanceTo(buffer.End);
                if (left == 0)
                {
                    _ended = true;
                    return null;
                }

                throw new GrpcException(
                    GrpcStatusCode.Internal,
                    $"Incomplete gRPC message: the stream ended with {left} bytes of an unfinished message");
            }

            // Not a whole message yet: keep everything, ask for more.
            _reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private T Parse(bool compressed, ReadOnlySequence<byte> payload)
    {
        try
        {
            if (!compressed)
            {
                return _decode(payload);
            }

            if (!_gzip)
            {
                throw new GrpcException(
                    GrpcStatusCode.Internal,
                    "Received a compressed message but no supported grpc-encoding was declared");
            }

            return _decode(new ReadOnlySequence<byte>(GrpcCompression.Decompress(payload, _maxMessageSize)));
        }
        catch (Exception ex) when (ex is InvalidProtocolBufferException or InvalidDataException)
        {
            throw new GrpcException(GrpcStatusCode.Internal, $"Failed to parse {MessageName}: {ex.Message}", ex);
        }
    }
}
