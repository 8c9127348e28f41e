using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using Sluice.Protocol.Grpc;

namespace Sluice.Client.Grpc;

/// <summary>
/// The response side of a call: reads messages until the server's status, and turns a non-OK
/// status (in the trailers, or trailers-only in the headers) into a <see cref="GrpcException"/>.
/// Disposing an unfinished call cancels it (the server sees RST_STREAM CANCEL).
/// </summary>
internal class GrpcStreamingCall<TResponse> : IAsyncDisposable
    where TResponse : class
{
    private readonly GrpcDecoder<TResponse> _decode;
    private readonly GrpcChannelOptions _options;
    private readonly CancellationToken _callerToken;
    private readonly CancellationTokenSource? _deadline;
    private Task<HttpResponseMessage>? _responseTask;
    private HttpResponseMessage? _response;
    private Stream? _body;
    private GrpcMessageReader<TResponse>? _reader;
    private CancellationTokenRegistration _abortOnCancel;
    private bool _finished;
    private bool _cancelledLocally;
    private bool _disposed;

    internal GrpcStreamingCall(GrpcDecoder<TResponse> decode, GrpcChannelOptions options, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        _decode = decode;
        _options = options;
        _callerToken = cancellationToken;
        if (timeout is { } t)
        {
            _deadline = new CancellationTokenSource(t < TimeSpan.Zero ? TimeSpan.Zero : t);
            CallCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _deadline.Token);
        }
        else
        {
            CallCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        }
    }

    /// <summary>The message read by the last successful <see cref="MoveNextAsync"/>.</summary>
    public TResponse Current { get; private set; } = null!;

    /// <summary>Cancelled by the caller's token, the deadline, or disposal; aborts the HTTP/2 stream.</summary>
    protected CancellationTokenSource CallCancellation { get; }

    /// <summary>Completes with the response headers.</summary>
    protected Task<HttpResponseMessage> ResponseTask => _responseTask ?? throw new InvalidOperationException("The call is not started.");

    /// <summary>
    /// Reads the next message: true with <see cref="Current"/> set, false at the end of an OK stream.
    /// Throws <see cref="GrpcException"/> for a non-OK status or a transport failure.
    /// </summary>
    public ValueTask<bool> MoveNextAsync()
    {
        if (_finished)
        {
            return new ValueTask<bool>(false);
        }

        if (_reader is not { } reader)
        {
            return MoveNextSlowAsync(read: null);
        }

        // A message already read ahead: no async state machine for it.
        var read = reader.ReadAsync(CallCancellation.Token);
        if (!read.IsCompletedSuccessfully)
        {
            return MoveNextSlowAsync(read);
        }

        var message = read.Result;
        if (message is null)
        {
            return MoveNextSlowAsync(new ValueTask<TResponse?>((TResponse?)null));
        }

        Current = message;
        return new ValueTask<bool>(true);
    }

    /// <summary>Reads the headers first when needed, then waits for <paramref name="read"/> (or a new read when null).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // awaited once per message: the box is reused
    private async ValueTask<bool> MoveNextSlowAsync(ValueTask<TResponse?>? read)
    {
        try
        {
            TResponse? message;
            if (read is { } pending)
            {
                message = await pending.ConfigureAwait(false);
            }
            else
            {
                if (_reader is null && !await ReadHeadersAsync().ConfigureAwait(false))
                {
                    _finished = true;
                    return false;
                }

                message = await _reader!.ReadAsync(CallCancellation.Token).ConfigureAwait(false);
            }

            if (message is not null)
            {
                Current = message;
                return true;
            }

            _finished = true;
            ThrowIfNotOk(_response!.TrailingHeaders);
            return false;
        }
        catch (Exception ex)
        {
            _finished = true;
            var mapped = MapException(ex);
            if (ReferenceEquals(mapped, ex))
            {
                throw;
            }

            throw mapped;
        }
    }

    /// <summary>Every remaining message; cancelling <paramref name="cancellationToken"/> cancels the call.</summary>
    public async IAsyncEnumerable<TResponse> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var registration = cancellationToken.Register(CancelLocally);
        while (await MoveNextAsync().ConfigureAwait(false))
        {
            yield return Current;
        }
    }

    /// <summary>Cancels the call if it is still running and releases the connection stream.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (!_finished)
        {
            CancelLocally();
        }

        await _abortOnCancel.DisposeAsync().ConfigureAwait(false);
        await OnDisposeAsync().ConfigureAwait(false);
        if (_responseTask is not null)
        {
            try
            {
                await _responseTask.ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The call was cancelled or failed; its outcome was (or is now of no) interest to the caller.
            }
        }

        if (_body is not null)
        {
            await _body.DisposeAsync().ConfigureAwait(false);
        }

        _response?.Dispose();
        CallCancellation.Dispose();
        _deadline?.Dispose();
        GC.SuppressFinalize(this);
    }

    internal void Start(HttpClient client, HttpRequestMessage request) =>
        _responseTask = client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, CallCancellation.Token);

    /// <summary>Extra cleanup of derived calls, before the response is released.</summary>
    protected virtual ValueTask OnDisposeAsync() => default;

    /// <summary>Maps a transport or cancellation failure to what the caller should see.</summary>
    protected Exception MapException(Exception ex)
    {
        if (ex is GrpcException)
        {
            return ex;
        }

        if (_callerToken.IsCancellationRequested || _cancelledLocally)
        {
            return ex as OperationCanceledException ?? new OperationCanceledException("The gRPC call was cancelled.", ex, _callerToken);
        }

        if (_deadline?.IsCancellationRequested == true)
        {
            return new GrpcException(GrpcStatusCode.DeadlineExceeded, "Deadline Exceeded", ex);
        }

        var protocolError = ex as HttpProtocolException ?? ex.InnerException as HttpProtocolException;
        if (protocolError is not null)
        {
            return new GrpcException(FromHttp2ErrorCode(protocolError.ErrorCode), $"HTTP/2 stream reset: {protocolError.Message}", ex);
        }

        return ex switch
        {
            HttpRequestException or IOException => new GrpcException(GrpcStatusCode.Unavailable, $"Connection failed: {ex.Message}", ex),
            OperationCanceledException => new GrpcException(GrpcStatusCode.Cancelled, "The call was cancelled", ex),
            _ => ex,
        };
    }

    private void AbortTransport()
    {
        try
        {
            _body?.Dispose();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or HttpRequestException)
        {
            // The stream is already broken: that is the goal here.
        }
    }

    private void CancelLocally()
    {
        _cancelledLocally = true;
        try
        {
            CallCancellation.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Already disposed: nothing left to cancel.
        }
    }

    /// <summary>False when the whole response was trailers-only with status OK (no messages).</summary>
    private async ValueTask<bool> ReadHeadersAsync()
    {
        _response = await ResponseTask.ConfigureAwait(false);
        if (_response.Headers.NonValidated.Contains("grpc-status"))
        {
            ThrowIfNotOk(_response.Headers);
            return false;
        }

        if (_response.StatusCode != HttpStatusCode.OK)
        {
            throw new GrpcException(FromHttpStatus(_response.StatusCode), $"Bad gRPC response: HTTP status {(int)_response.StatusCode}");
        }

        var mediaType = _response.Content.Headers.ContentType?.MediaType;
        if (mediaType is null || !mediaType.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase))
        {
            throw new GrpcException(GrpcStatusCode.Unknown, $"Bad gRPC response: content-type '{mediaType}'");
        }

        string? encoding = _response.Headers.NonValidated.TryGetValues("grpc-encoding", out var e) ? e.ToString() : null;
        _body = await _response.Content.ReadAsStreamAsync(CallCancellation.Token).ConfigureAwait(false);
        var pipe = PipeReader.Create(_body, new StreamPipeReaderOptions(bufferSize: 64 * 1024)); // 64 KB reads: many messages per read on a fast stream
        _reader = new GrpcMessageReader<TResponse>(pipe, _decode, _options.MaxReceiveMessageSize, encoding);

        // Once the headers are in, cancelling a read does not reliably reset the HTTP/2 stream;
        // disposing the body does (RST_STREAM CANCEL), so the server's handler learns of it at once.
        _abortOnCancel = CallCancellation.Token.Register(static state => ((GrpcStreamingCall<TResponse>)state!).AbortTransport(), this);
        return true;
    }

    private static void ThrowIfNotOk(HttpHeaders headers)
    {
        if (!headers.NonValidated.TryGetValues("grpc-status", out var statusValue))
        {
            throw new GrpcException(GrpcStatusCode.Internal, "The response ended without a grpc-status");
        }

        if (!int.TryParse(statusValue.ToString(), System.Globalization.CultureInfo.InvariantCulture, out var status))
        {
            throw new GrpcException(GrpcStatusCode.Unknown, $"Invalid grpc-status '{statusValue}'");
        }

        if (status == 0)
        {
            return;
        }

        var message = headers.NonValidated.TryGetValues("grpc-message", out var m) ? GrpcStatusMessage.Decode(m.ToString()) : string.Empty;
        throw new GrpcException((GrpcStatusCode)status, message);
    }

    /// <summary>The gRPC spec's mapping for responses that carry no grpc-status.</summary>
    private static GrpcStatusCode FromHttpStatus(HttpStatusCode code) => (int)code switch
    {
        400 => GrpcStatusCode.Internal,
        401 => GrpcStatusCode.Unauthenticated,
        403 => GrpcStatusCode.PermissionDenied,
        404 => GrpcStatusCode.Unimplemented,
        429 or 502 or 503 or 504 => GrpcStatusCode.Unavailable,
        _ => GrpcStatusCode.Unknown,
    };

    /// <summary>The gRPC spec's mapping of RST_STREAM error codes.</summary>
    private static GrpcStatusCode FromHttp2ErrorCode(long code) => code switch
    {
        0x7 => GrpcStatusCode.Unavailable,       // REFUSED_STREAM: safe to retry
        0x8 => GrpcStatusCode.Cancelled,         // CANCEL
        0xB => GrpcStatusCode.ResourceExhausted, // ENHANCE_YOUR_CALM
        0xC => GrpcStatusCode.PermissionDenied,  // INADEQUATE_SECURITY
        _ => GrpcStatusCode.Internal,
    };
}
