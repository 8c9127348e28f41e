using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Sluice.Storage.Metadata;

namespace Sluice.Etcd;

/// <summary>
/// <see cref="IMetadataStore"/> on a real etcd (v3.4 or later) through dotnet-etcd's generated gRPC clients: each call
/// maps one to one onto etcd's KV, Lease, Watch and Maintenance RPCs, with a deadline of
/// <see cref="EtcdMetadataStoreOptions.RequestTimeout"/>.
/// </summary>
/// <remarks>
/// <para>Errors: etcd's compacted and future-revision errors become <see cref="CompactedException"/> and
/// <see cref="FutureRevisionException"/>, an unknown lease <see cref="LeaseNotFoundException"/>, a bad request an
/// <see cref="ArgumentException"/>, and an etcd that is down, unreachable or past the deadline
/// <see cref="MetadataUnavailableException"/>. After that last one a write may or may not have been applied.</para>
/// <para>Watches are driven here, not by dotnet-etcd's watch manager (it re-registers on a fixed 5 s retry and writes
/// to the console): see <see cref="WatchAsync"/>.</para>
/// </remarks>
public sealed partial class EtcdMetadataStore : IMetadataStore
{
    private readonly EtcdMembers _members;
    private readonly EtcdMetadataStoreOptions _options;
    private readonly ILogger _logger;
    private readonly string _endpoints;
    private readonly CancellationTokenSource _disposing = new();
    private readonly ConcurrentDictionary<WatchRegistration, byte> _watches = new();
    private long _revision;
    private long _compactRevision;
    private int _disposed;

    private EtcdMetadataStore(EtcdMetadataStoreOptions options)
    {
        _options = options;
        _logger = options.LoggerFactory.CreateLogger<EtcdMetadataStore>();
        _endpoints = string.Join(",", options.Endpoints);
        _members = new EtcdMembers(options, options.UsesTls ? ConfigureTls : null, _logger);
    }

    /// <summary>
    /// Last revision seen in any response header (etcd has no push for it, so another client's writes show up here
    /// only with this store's next response).
    /// </summary>
    public long Revision => Volatile.Read(ref _revision);

    /// <summary>
    /// Last compaction revision this store saw (its own compactions, a hash, or a compacted error); a compaction
    /// by another client or by etcd's auto-compaction shows up only then.
    /// </summary>
    public long CompactRevision => Volatile.Read(ref _compactRevision);

    /// <summary>The endpoints this store talks to, comma-separated (for messages and logs).</summary>
    public string Endpoints => _endpoints;

    /// <summary>
    /// Creates a store and checks that etcd answers (within <see cref="EtcdMetadataStoreOptions.RequestTimeout"/>,
    /// trying each endpoint), which also sets <see cref="Revision"/>. Throws <see cref="MetadataUnavailableException"/>
    /// when none does.
    /// </summary>
    public static async Task<EtcdMetadataStore> ConnectAsync(EtcdMetadataStoreOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var store = new EtcdMetadataStore(options);
        try
        {
            // Each member in turn (a failed call moves on to the next): one member down does not stop a start.
            for (var tried = 1; ; tried++)
            {
                try
                {
                    await store.ReadCurrentRevisionAsync(cancellationToken).ConfigureAwait(false);
                    return store;
                }
                catch (MetadataUnavailableException) when (tried < options.Endpoints.Count)
                {
                }
            }
        }
        catch
        {
            await store.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _disposing.CancelAsync().ConfigureAwait(false);
        _members.Dispose();
        _disposing.Dispose();
    }

    private void ConfigureTls(SslClientAuthenticationOptions ssl)
    {
        if (_options.TlsCertFile is { } certFile && _options.TlsKeyFile is { } keyFile)
        {
            ssl.ClientCertificates = [X509Certificate2.CreateFromPemFile(certFile, keyFile)];
        }

        if (_options.TlsCaFile is not { } caFile)
        {
            return;
        }

        var ca = X509CertificateLoader.LoadCertificateFromFile(caFile);
        var hosts = _options.Endpoints.Select(e => new Uri(e).Host).ToArray();

        // The members' certificates chain to the configured CA (not the system store) and name one of the endpoints.
        ssl.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
        {
            if (certificate is null)
            {
                return false;
            }

            using var leaf = new X509Certificate2(certificate);
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return chain.Build(leaf) && hosts.Any(h => leaf.MatchesHostname(h));
        };
    }

    private DateTime Deadline() => DateTime.UtcNow + _options.RequestTimeout;

    private CallOptions Call(CancellationToken cancellationToken) => new(deadline: Deadline(), cancellationToken: cancellationToken);

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    private void Observe(Etcdserverpb.ResponseHeader? header)
    {
        if (header is not null)
        {
            Max(ref _revision, header.Revision);
        }
    }

    private static void Max(ref long field, long value)
    {
        var current = Volatile.Read(ref field);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref field, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }

    private async ValueTask<long> ReadCurrentRevisionAsync(CancellationToken cancellationToken)
    {
        // A one-key read of "\0": cheap, and its header carries the current revision.
        var response = await UnaryAsync(
            (m, o) => m.Kv.RangeAsync(new Etcdserverpb.RangeRequest { Key = Google.Protobuf.ByteString.CopyFrom(0), CountOnly = true }, o),
            r => r.Header,
            default,
            cancellationToken).ConfigureAwait(false);
        return response.Header.Revision;
    }

    /// <summary>Runs one unary call with the deadline, records the revision and maps etcd's errors.</summary>
    private async ValueTask<T> UnaryAsync<T>(Func<EtcdMembers.Member, CallOptions, AsyncUnaryCall<T>> call, Func<T, Etcdserverpb.ResponseHeader?> header, ErrorContext context, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var member = _members.Current;
        T response;
        try
        {
            using var pending = call(member, Call(cancellationToken));
            response = await pending.ResponseAsync.ConfigureAwait(false);
        }
        catch (RpcException e) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("the etcd call was cancelled", e, cancellationToken); // the caller gave up, etcd did not fail
        }
        catch (RpcException e)
        {
            throw await MapAsync(e, member, context, cancellationToken).ConfigureAwait(false);
        }

        Observe(header(response));
        return response;
    }

    /// <summary>What a failed call was about, so its error can name it.</summary>
    private readonly record struct ErrorContext(long Revision = 0, long LeaseId = 0, byte[]? Key = null);

    private async ValueTask<Exception> MapAsync(RpcException e, EtcdMembers.Member member, ErrorContext context, CancellationToken cancellationToken)
    {
        var detail = e.Status.Detail ?? string.Empty;
        switch (e.StatusCode)
        {
            case StatusCode.Cancelled when cancellationToken.IsCancellationRequested:
                return new OperationCanceledException(cancellationToken);
            case StatusCode.Internal or StatusCode.Unavailable when FindTlsFailure(e) is { } tls:
                _logger.LogDebug(e, "TLS handshake with etcd at {Endpoints} failed", _endpoints);
                return new MetadataUnavailableException($"etcd ({_endpoints}): the TLS handshake failed: {tls.Message}");
            case StatusCode.Unavailable or StatusCode.DeadlineExceeded:
                _members.Failed(member);
                return Unavailable(e);
            case StatusCode.Cancelled or StatusCode.Aborted:
                return Unavailable(e);
            case StatusCode.OutOfRange when detail.Contains("compacted", StringComparison.Ordinal):
                return new CompactedException(context.Revision, await LearnCompactRevisionAsync(cancellationToken).ConfigureAwait(false));
            case StatusCode.OutOfRange when detail.Contains("future revision", StringComparison.Ordinal):
                long current;
                try
                {
                    current = await ReadCurrentRevisionAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (MetadataStoreException)
                {
                    current = Revision;
                }

                return new FutureRevisionException(context.Revision, current);
            case StatusCode.NotFound when detail.Contains("lease not found", StringComparison.Ordinal):
                return new LeaseNotFoundException(context.LeaseId);
            case StatusCode.FailedPrecondition when detail.Contains("lease already exists", StringComparison.Ordinal):
                return new LeaseExistsException(context.LeaseId);
            case StatusCode.InvalidArgument when detail.Contains("key not found", StringComparison.Ordinal) && context.Key is not null:
                return new KeyNotFoundForUpdateException(System.Text.Encoding.UTF8.GetString(context.Key));
            case StatusCode.InvalidArgument:
                return new ArgumentException(detail);
            default:
                _logger.LogWarning(e, "etcd call failed with {Status}", e.StatusCode);
                return new MetadataStoreException($"etcd: {e.StatusCode}: {detail}");
        }
    }

    private static System.Security.Authentication.AuthenticationException? FindTlsFailure(RpcException e)
    {
        for (var inner = e.Status.DebugException; inner is not null; inner = inner.InnerException)
        {
            if (inner is System.Security.Authentication.AuthenticationException tls)
            {
                return tls;
            }
        }

        return null;
    }

    private MetadataUnavailableException Unavailable(Exception e)
    {
        _logger.LogDebug(e, "etcd at {Endpoints} unavailable", _endpoints);
        var why = e is RpcException { StatusCode: StatusCode.Unavailable } rpc
            ? $"is unreachable ({SocketError(rpc) ?? "the connection failed"})"
            : $"did not answer within {_options.RequestTimeout.TotalSeconds:0.###} s: it is down, unreachable or overloaded";
        return new MetadataUnavailableException($"etcd ({_endpoints}) {why}");
    }

    /// <summary>The socket's own words ("Connection refused"), without the exception types around them.</summary>
    private static string? SocketError(RpcException e)
    {
        for (var inner = e.Status.DebugException; inner is not null; inner = inner.InnerException)
        {
            if (inner is System.Net.Sockets.SocketException socket)
            {
                return socket.Message;
            }
        }

        return null;
    }

    /// <summary>The compaction revision, which only a hash (or a watch) reports; used on the compacted-error path.</summary>
    private async ValueTask<long> LearnCompactRevisionAsync(CancellationToken cancellationToken)
    {
        try
        {
            var hash = await HashKVAsync(0, cancellationToken).ConfigureAwait(false);
            return hash.CompactRevision;
        }
        catch (MetadataStoreException)
        {
            return CompactRevision;
        }
    }

    private static void ValidateKey(byte[] key, string name)
    {
        ArgumentNullException.ThrowIfNull(key, name);
        if (key.Length == 0)
        {
            throw new ArgumentException("etcdserver: key is not provided", name);
        }
    }
}
