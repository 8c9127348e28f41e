using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using Sluice.Protocol.Grpc;

namespace Sluice.Client.Grpc;

/// <summary>
/// A gRPC client over HttpClient/SocketsHttpHandler (the gRPC .NET packages cannot be restored
/// here). http:// addresses use HTTP/2 with prior knowledge (h2c), https:// use TLS with ALPN h2.
/// Failed calls throw <see cref="GrpcException"/>; a call cancelled through the caller's token
/// throws <see cref="OperationCanceledException"/>; an expired deadline is DEADLINE_EXCEEDED.
/// </summary>
internal sealed class GrpcChannel : IDisposable
{
    private readonly HttpClient[] _clients;
    private int _next;

    /// <summary>Creates a channel to <paramref name="address"/> (e.g. http://127.0.0.1:9292).</summary>
    public GrpcChannel(Uri address, GrpcChannelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps)
        {
            throw new ArgumentException($"The address must be http:// or https://, not {address}.", nameof(address));
        }

        Address = address;
        Options = options ?? GrpcChannelOptions.Default;
        ArgumentOutOfRangeException.ThrowIfLessThan(Options.ConnectionCount, 1);
        _clients = new HttpClient[Options.ConnectionCount];
        for (var i = 0; i < _clients.Length; i++)
        {
            HttpMessageHandler handler = Options.Transport == GrpcTransport.Native ? new Http2.Http2Handler(address, Options) : CreateHandler(Options);
            _clients[i] = new HttpClient(handler, disposeHandler: true)
            {
                BaseAddress = address,
                DefaultRequestVersion = HttpVersion.Version20,
                DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact, // http:// + exact 2.0 = h2c prior knowledge
                Timeout = Timeout.InfiniteTimeSpan,                              // deadlines are per call (grpc-timeout)
            };
        }
    }

    /// <summary>The server address.</summary>
    public Uri Address { get; }

    /// <summary>The options the channel was created with.</summary>
    public GrpcChannelOptions Options { get; }

    /// <summary>Makes a unary call to <paramref name="method"/> ("/proto.API/FetchMetadata").</summary>
    public async Task<TResponse> UnaryAsync<TRequest, TResponse>(string method, TRequest request, MessageParser<TResponse> parser, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
    {
        await using var call = ServerStreaming(method, request, parser, timeout, cancellationToken);
        if (!await call.MoveNextAsync().ConfigureAwait(false))
        {
            throw new GrpcException(GrpcStatusCode.Internal, $"{method} returned status OK without a response message");
        }

        var response = call.Current;
        if (await call.MoveNextAsync().ConfigureAwait(false))
        {
            throw new GrpcException(GrpcStatusCode.Internal, $"{method} returned more than one response message");
        }

        return response;
    }

    /// <summary>
    /// Starts a server-streaming call. Read it with <see cref="GrpcStreamingCall{TResponse}.MoveNextAsync"/>
    /// or <see cref="GrpcStreamingCall{TResponse}.ReadAllAsync"/>; dispose it to cancel.
    /// </summary>
    public GrpcStreamingCall<TResponse> ServerStreaming<TRequest, TResponse>(string method, TRequest request, MessageParser<TResponse> parser, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
        => ServerStreaming(method, request, (GrpcDecoder<TResponse>)parser.ParseFrom, timeout, cancellationToken);

    /// <summary>A server-streaming call whose responses <paramref name="decode"/> reads (e.g. without building protobuf objects).</summary>
    public GrpcStreamingCall<TResponse> ServerStreaming<TRequest, TResponse>(string method, TRequest request, GrpcDecoder<TResponse> decode, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class
    {
        ArgumentNullException.ThrowIfNull(request);
        var frame = GrpcRequestFraming.Frame(request, Options);
        var content = new ByteArrayContent(frame);
        content.Headers.ContentType = GrpcRequestFraming.ContentType;
        var call = new GrpcStreamingCall<TResponse>(decode, Options, timeout, cancellationToken);
        var httpRequest = CreateRequest(method, content, timeout);
        ClientTracing.InjectCurrent(httpRequest.Headers); // one call, one context; a duplex stream outlives any one caller's
        call.Start(NextClient(), httpRequest);
        return call;
    }

    /// <summary>Starts a bidirectional call. Write with WriteAsync, end the requests with CompleteRequestsAsync, read like a streaming call.</summary>
    public GrpcDuplexCall<TRequest, TResponse> DuplexStreaming<TRequest, TResponse>(string method, MessageParser<TResponse> parser, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
        => DuplexStreaming<TRequest, TResponse>(method, (GrpcDecoder<TResponse>)parser.ParseFrom, timeout, cancellationToken: cancellationToken);

    /// <summary>
    /// A bidirectional call whose responses <paramref name="decode"/> reads. With
    /// <paramref name="inlineResponses"/> (native transport only) the reader of the response stream
    /// resumes on the connection's reader thread instead of the thread pool, a thread hop less per
    /// response. Only for a caller that never blocks while it reads, such as the publish session's ack loop.
    /// </summary>
    public GrpcDuplexCall<TRequest, TResponse> DuplexStreaming<TRequest, TResponse>(string method, GrpcDecoder<TResponse> decode, TimeSpan? timeout = null, bool inlineResponses = false, CancellationToken cancellationToken = default)
        where TRequest : class
        where TResponse : class
    {
        var content = new DuplexContent();
        var call = new GrpcDuplexCall<TRequest, TResponse>(content, decode, Options, timeout, cancellationToken);
        var request = CreateRequest(method, content, timeout);
        if (inlineResponses)
        {
            request.Options.Set(Http2.Http2Stream.InlineResponseReads, true);
        }

        call.Start(NextClient(), request);
        return call;
    }

    /// <summary>Closes every connection.</summary>
    public void Dispose()
    {
        foreach (var client in _clients)
        {
            client.Dispose();
        }
    }

    private HttpClient NextClient() =>
        _clients.Length == 1 ? _clients[0] : _clients[(int)((uint)Interlocked.Increment(ref _next) % (uint)_clients.Length)];

    private HttpRequestMessage CreateRequest(string method, HttpContent content, TimeSpan? timeout)
    {
        ArgumentException.ThrowIfNullOrEmpty(method);
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(Address, method))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = content,
        };
        var headers = request.Headers;
        headers.TE.ParseAdd("trailers");
        headers.TryAddWithoutValidation("user-agent", "grpc-dotnet-sluice/1.0");
        headers.TryAddWithoutValidation("grpc-accept-encoding", GrpcCompression.AcceptEncoding);
        if (Options.CompressRequests)
        {
            headers.TryAddWithoutValidation("grpc-encoding", GrpcCompression.Gzip);
        }

        if (timeout is { } t)
        {
            headers.TryAddWithoutValidation("grpc-timeout", GrpcTimeout.Format(t));
        }

        return request;
    }

    private static SocketsHttpHandler CreateHandler(GrpcChannelOptions options)
    {
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = options.EnableMultipleHttp2Connections,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan, // keep connections: reconnecting costs a round trip
            InitialHttp2StreamWindowSize = 4 << 20,                 // 4 MiB: a fast subscription must not wait on window updates
            KeepAlivePingDelay = options.KeepAlivePingDelay,
            KeepAlivePingTimeout = options.KeepAlivePingTimeout,
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            ConnectTimeout = options.ConnectTimeout,
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
        };
        if (options.Tls is { } tls)
        {
            var ssl = handler.SslOptions;
            ssl.TargetHost = tls.TargetHost;
            if (tls.ClientCertificate is { } clientCertificate)
            {
                ssl.ClientCertificates = [clientCertificate];
            }

            if (tls.ServerCertificateValidation is { } validation)
            {
                ssl.RemoteCertificateValidationCallback = validation;
            }
            else if (tls.TrustedCertificateAuthorities is { } roots)
            {
                ssl.RemoteCertificateValidationCallback = (_, certificate, _, errors) => ChainsTo(roots, certificate, errors);
            }
        }

        return handler;
    }

    internal static bool ChainsTo(X509Certificate2Collection roots, X509Certificate? certificate, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        // Only the chain may fail (unknown root); a name mismatch or a missing certificate may not.
        if ((errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0 || certificate is not X509Certificate2 cert)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(cert);
    }
}

/// <summary>Builds request frames (optionally gzip-compressed).</summary>
internal static class GrpcRequestFraming
{
    public static readonly MediaTypeHeaderValue ContentType = new("application/grpc");

    /// <summary>Frames a protobuf message or an <see cref="IGrpcEncodable"/>, gzip-compressed when the options say so.</summary>
    public static byte[] Frame<T>(T message, GrpcChannelOptions options)
        where T : class
    {
        if (!options.CompressRequests)
        {
            return GrpcFrame.ToFrame(message, options.MaxSendMessageSize);
        }

        var payload = GrpcFrame.Serialize(message);
        GrpcFrame.CheckSendSize(payload.Length, options.MaxSendMessageSize);
        var compressed = GrpcCompression.Compress(payload);
        var framed = new byte[GrpcFrame.HeaderSize + compressed.Length];
        GrpcFrame.WriteHeader(framed, compressed: true, compressed.Length);
        compressed.CopyTo(framed.AsSpan(GrpcFrame.HeaderSize));
        return framed;
    }
}
