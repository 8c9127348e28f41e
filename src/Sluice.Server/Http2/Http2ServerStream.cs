using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Security.Cryptography.X509Certificates;
using Sluice.Protocol.Http2;

namespace Sluice.Server.Http2;

/// <summary>
/// One request stream on an <see cref="Http2ServerConnection"/> and the exchange (<see cref="IHttp2Exchange"/>) the request
/// handler serves on it. The request body arrives through a pipe the reader thread fills; the response body
/// is buffered until a flush, when the connection frames and sends it on the flushing thread.
/// State fields marked "under the connection's lock" are read and written only holding it.
/// </summary>
internal sealed class Http2ServerStream : IHttp2Exchange, IDisposable
{
    private static readonly string[] ConnectionSpecific = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"];

    private readonly Http2ServerConnection _connection;
    private readonly List<KeyValuePair<string, string>> _requestHeaders;
    private readonly Pipe _body;
    private readonly CancellationTokenSource _aborted = new();
    private readonly List<KeyValuePair<string, string>> _responseHeaders = [];
    private readonly List<KeyValuePair<string, string>> _trailers = [];
    private int _statusCode = 200;
    private volatile bool _reset;

    /// <summary>How long the trailers may wait for flow-control credit after the handler returned.</summary>
    internal static readonly TimeSpan FinalSendTimeout = TimeSpan.FromSeconds(10);

    public Http2ServerStream(Http2ServerConnection connection, int id, List<KeyValuePair<string, string>> requestHeaders, int sendWindow, int receiveWindow, bool requestEnded)
    {
        _connection = connection;
        Id = id;
        SendWindow = sendWindow;
        ReceiveWindow = receiveWindow;
        RequestEnded = requestEnded;
        _requestHeaders = [];
        foreach (var header in requestHeaders)
        {
            switch (header.Key)
            {
                case ":method":
                    Method = header.Value;
                    break;
                case ":path":
                    Path = header.Value;
                    break;
                case ":scheme" or ":authority":
                    break;
                default:
                    _requestHeaders.Add(header);
                    break;
            }
        }

        ContentType = RequestHeader("content-type");
        var inline = connection.Listener.InlineRequestReads;
        _body = new Pipe(new PipeOptions(
            readerScheduler: inline ? PipeScheduler.Inline : PipeScheduler.ThreadPool,
            writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: 0, // flow control bounds what a client may send ahead
            resumeWriterThreshold: 0,
            useSynchronizationContext: false));
        RequestBody = new Http2RequestBodyReader(this, _body.Reader);
        ResponseBody = new Http2ResponseBodyWriter(this);
        if (requestEnded)
        {
            EndRequest();
        }
    }

    public int Id { get; }

    /// <summary>Flow-control credit for response DATA (under the connection's lock).</summary>
    public long SendWindow { get; set; }

    /// <summary>What the client may still send before our next WINDOW_UPDATE (under the connection's lock).</summary>
    public int ReceiveWindow { get; set; }

    /// <summary>Consumed request bytes not yet returned to the client (under the connection's lock).</summary>
    public int ReceiveCredit { get; set; }

    /// <summary>
    /// Request bytes in the body pipe that the handler has not examined yet: connection credit that goes
    /// back to the client when they are examined, or when the stream closes (guarded by the connection's lock).
    /// </summary>
    public long BufferedRequestBytes { get; set; }

    /// <summary>The client ended its request (under the connection's lock).</summary>
    public bool RequestEnded { get; set; }

    /// <summary>Our END_STREAM is sent (under the connection's lock).</summary>
    public bool ResponseEnded { get; set; }

    /// <summary>The response HEADERS are sent (under the connection's write lock).</summary>
    public bool HeadersSent { get; set; }

    /// <summary>
    /// Every response byte buffered at the last send went out, so the DATA sent ends between two gRPC messages
    /// (a flush buffers whole messages) and trailers may follow (under the connection's write lock).
    /// </summary>
    public bool SentWholeMessages { get; set; } = true;

    /// <summary>The handler was started (reader thread only).</summary>
    public bool Started { get; set; }

    /// <summary>Reset by either side, or the connection ended: nothing more may be sent.</summary>
    public bool IsReset => _reset;

    public string Method { get; } = string.Empty;

    public string Path { get; } = string.Empty;

    public string? ContentType { get; }

    public PipeReader RequestBody { get; }

    public PipeWriter ResponseBody { get; }

    public bool ResponseStarted => HeadersSent;

    public CancellationToken Aborted => _aborted.Token;

    public X509Certificate2? ClientCertificate => _connection.ClientCertificate;

    public string Peer => _connection.Peer;

    public void MarkPeerBroker() => _connection.Listener.MarkPeerBroker(_connection);

    internal Http2ServerConnection Connection => _connection;

    /// <summary>The buffered response bytes not yet sent.</summary>
    internal ReadOnlyMemory<byte> Body => ((Http2ResponseBodyWriter)ResponseBody).Buffered;

    /// <summary>
    /// Why a request's header list is malformed (RFC 9113 section 8.3), or null when it is fine.
    /// Such a stream is reset with PROTOCOL_ERROR.
    /// </summary>
    public static string? ValidateRequestHeaders(List<KeyValuePair<string, string>> headers)
    {
        bool method = false, scheme = false, path = false, authority = false, regular = false;
        foreach (var (name, value) in headers)
        {
            if (name.Length > 0 && name[0] == ':')
            {
                if (regular)
                {
                    return $"pseudo-header {name} after a regular header";
                }

                ref var seen = ref method;
                switch (name)
                {
                    case ":method":
                        break;
                    case ":scheme":
                        seen = ref scheme;
                        break;
                    case ":path":
                        seen = ref path;
                        if (value.Length == 0)
                        {
                            return "empty :path";
                        }

                        break;
                    case ":authority":
                        seen = ref authority;
                        break;
                    default:
                        return $"unknown pseudo-header {name}";
                }

                if (seen)
                {
                    return $"pseudo-header {name} twice";
                }

                seen = true;
                continue;
            }

            regular = true;
            foreach (var c in name)
            {
                if (c is >= 'A' and <= 'Z')
                {
                    return $"upper-case header name {name}";
                }
            }

            if (Array.IndexOf(ConnectionSpecific, name) >= 0 || (name == "te" && value != "trailers"))
            {
                return $"connection-specific header {name}";
            }
        }

        return method && scheme && path ? null : "a request needs :method, :scheme and :path";
    }

    public string? RequestHeader(string name)
    {
        string? found = null;
        foreach (var (key, value) in _requestHeaders)
        {
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase))
            {
                found = found is null ? value : found + ", " + value;
            }
        }

        return found;
    }

    public void SetStatusCode(int statusCode)
    {
        ThrowIfStarted();
        _statusCode = statusCode;
    }

    public void SetResponseHeader(string name, string value)
    {
        ThrowIfStarted();
        name = name.ToLowerInvariant();
        _responseHeaders.RemoveAll(h => h.Key == name);
        _responseHeaders.Add(new(name, value));
    }

    public void AppendTrailer(string name, string value) => _trailers.Add(new(name.ToLowerInvariant(), value));

    /// <summary>
    /// Runs the call, then sends what is left of the response and its trailers. When the client gives
    /// no flow-control credit for those within <see cref="FinalSendTimeout"/>, the stream is reset, so a
    /// stuck client cannot hold the stream (and its slot) forever.
    /// </summary>
    public async Task RunAsync(Func<IHttp2Exchange, Task> handler)
    {
        try
        {
            await handler(this).ConfigureAwait(false);
            var send = _connection.Output.SendAsync(this, complete: true, CancellationToken.None);
            if (!send.IsCompleted)
            {
                try
                {
                    await send.AsTask().WaitAsync(FinalSendTimeout).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    _connection.ResetStream(this, Http2ErrorCode.Cancel); // wakes the send, which then gives up
                }
            }
            else
            {
                await send.ConfigureAwait(false);
            }
        }
        catch (Exception) when (_reset)
        {
            // The client reset the stream or the connection ended: nobody to answer.
        }
        catch (Exception)
        {
            if (!_reset)
            {
                _connection.ResetStream(this, Http2ErrorCode.InternalError);
            }
        }
        finally
        {
            _connection.OnCallFinished();
            Dispose();
        }
    }

    /// <summary>Drops the response buffer and the abort token's resources; the call is over.</summary>
    public void Dispose()
    {
        ((Http2ResponseBodyWriter)ResponseBody).Release();
        _body.Reader.Complete(); // its segments go back to the pool once the writer side ends too
        _aborted.Dispose();
    }

    /// <summary>A request flush is owed at the end of the reader's batch (reader thread only).</summary>
    public bool FlushPending { get; set; }

    // The request pipe is written by the reader thread alone. Its writer is completed already when the
    // stream was aborted meanwhile (the bytes have nowhere to go) or, for a flush, when the request ended.

    /// <summary>Buffers request bytes without showing them to the handler yet (reader thread only).</summary>
    public void AppendRequestData(ReadOnlySpan<byte> data)
    {
        try
        {
            _body.Writer.Write(data);
        }
        catch (InvalidOperationException)
        {
            // Aborted meanwhile.
        }
    }

    /// <summary>Shows the buffered request bytes to the handler, which may resume here, inline (reader thread only).</summary>
    public void FlushRequestData()
    {
        try
        {
            // Never waits (no pause threshold), so this completes here.
            var flush = _body.Writer.FlushAsync();
            if (!flush.IsCompleted)
            {
                throw new InvalidOperationException("A request body pipe waited on a flush; it is built never to.");
            }

            flush.GetAwaiter().GetResult();
        }
        catch (InvalidOperationException)
        {
            // Aborted meanwhile, or the request already ended in this batch (its end made the bytes visible).
        }
    }

    /// <summary>Ends the request after the buffered bytes; the handler may resume here, inline (reader thread only).</summary>
    public void EndRequest()
    {
        try
        {
            _body.Writer.Complete();
        }
        catch (InvalidOperationException)
        {
            // Aborted meanwhile.
        }
    }

    /// <summary>Nothing more may be sent on the stream (the server resets it).</summary>
    public void MarkReset() => _reset = true;

    /// <summary>
    /// The client reset the stream, or the connection ended: the handler's token is cancelled and,
    /// on the reader thread (the request pipe's only writer), its reads fail. Elsewhere the pipe is
    /// left alone; the cancelled token ends a read waiting on it.
    /// </summary>
    public void OnAborted(Exception reason)
    {
        if (_reset && !_connection.OnReaderThread)
        {
            return;
        }

        _reset = true;

        // The token first: a handler whose read fails below (inline, with InlineIo) must find the call
        // cancelled, or its failure reads as a handler error instead of "the client went away".
        try
        {
            _aborted.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The call already ended.
        }

        if (!_connection.OnReaderThread)
        {
            return;
        }

        try
        {
            _body.Writer.Complete(reason);
        }
        catch (InvalidOperationException)
        {
            // Already completed.
        }
    }

    /// <summary>Drops <paramref name="count"/> sent bytes from the response buffer.</summary>
    internal void ConsumeBody(int count) => ((Http2ResponseBodyWriter)ResponseBody).Consume(count);

    /// <summary>The response HEADERS block (status and headers).</summary>
    internal void WriteResponseHeaders(IBufferWriter<byte> block)
    {
        HpackEncoder.Encode(block, ":status", _statusCode.ToString(CultureInfo.InvariantCulture));
        foreach (var (name, value) in _responseHeaders)
        {
            HpackEncoder.Encode(block, name, value);
        }
    }

    /// <summary>The trailers block.</summary>
    internal void WriteTrailers(IBufferWriter<byte> block)
    {
        foreach (var (name, value) in _trailers)
        {
            HpackEncoder.Encode(block, name, value);
        }
    }

    private void ThrowIfStarted()
    {
        if (HeadersSent)
        {
            throw new InvalidOperationException("The response headers are already sent.");
        }
    }
}
