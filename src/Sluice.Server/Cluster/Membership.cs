using System.Diagnostics;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Internal;
using Sluice.Storage.Metadata;

namespace Sluice.Server.Cluster;

/// <summary>
/// This broker's registration: <c>/sluice/brokers/&lt;id&gt;</c> under a lease it keeps alive. The lease id is
/// the broker's epoch; other brokers accept internal calls only from a registered id and epoch.
/// </summary>
/// <remarks>
/// Fencing. The lease is renewed every third of its TTL. <see cref="IsLive"/> turns false once no renewal
/// has succeeded for one TTL counted from when the last successful keepalive was <em>sent</em>: by then etcd
/// may have expired the lease and the controller may have moved this broker's leaderships, so a leader that
/// is not live stops acknowledging. A lease found expired is replaced by a new registration (a new epoch).
/// </remarks>
internal sealed partial class Membership : IAsyncDisposable
{
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(200);

    private readonly IMetadataStore _store;
    private readonly BrokerRecord _self;
    private readonly TimeSpan _ttl;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private long _lease;
    private long _renewedSentAt;   // Stopwatch ticks of the last keepalive that succeeded, taken before it was sent
    private Task _loop = Task.CompletedTask;

    public Membership(IMetadataStore store, BrokerRecord self, TimeSpan ttl, ILogger logger)
    {
        _store = store;
        _self = self;
        _ttl = ttl;
        _logger = logger;
    }

    public string BrokerId => _self.Id;

    /// <summary>The current lease (the broker epoch); 0 before registration.</summary>
    public long Lease => Interlocked.Read(ref _lease);

    public TimeSpan Ttl => _ttl;

    /// <summary>True while the registration is known to be held (see the remarks).</summary>
    public bool IsLive => Lease != 0 && Stopwatch.GetElapsedTime(Interlocked.Read(ref _renewedSentAt)) < _ttl;

    /// <summary>Raised (on the keepalive loop) when the lease was lost and a new registration took its place.</summary>
    public event Action<long>? Reregistered;

    /// <summary>
    /// Registers, waiting up to two TTLs for a previous registration of the same id (a crashed
    /// incarnation whose lease has not expired yet) to go; then keeps the lease alive in the background.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(2 * _ttl.TotalSeconds * Stopwatch.Frequency) + Stopwatch.Frequency;
        while (true)
        {
            if (await TryRegisterAsync(cancellationToken).ConfigureAwait(false))
            {
                break;
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new InvalidOperationException($"server id '{_self.Id}' is registered by another running broker; give each broker its own --server-id");
            }

            LogIdTaken(_logger, _self.Id);
            await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken).ConfigureAwait(false);
        }

        _loop = Task.Run(() => KeepAliveAsync(_stop.Token), CancellationToken.None);
    }

    private async Task<bool> TryRegisterAsync(CancellationToken cancellationToken)
    {
        var sent = Stopwatch.GetTimestamp();
        var ttlSeconds = Math.Max(1, (long)Math.Ceiling(_ttl.TotalSeconds));
        var grant = await _store.LeaseGrantAsync(ttlSeconds, 0, cancellationToken).ConfigureAwait(false);
        var record = _self.Clone();
        record.Lease = grant.Id;
        var key = ClusterKeys.Broker(_self.Id);
        var txn = await _store.TxnAsync(new TxnRequest
        {
            Compares = [Compare.Version(key, CompareResult.Equal, 0)],
            Success = [RequestOp.ForPut(new PutRequest(key, record.ToByteArray()) { Lease = grant.Id })],
        }, cancellationToken).ConfigureAwait(false);
        if (!txn.Succeeded)
        {
            await _store.LeaseRevokeAsync(grant.Id, cancellationToken).ConfigureAwait(false);
            return false;
        }

        Interlocked.Exchange(ref _renewedSentAt, sent);
        Interlocked.Exchange(ref _lease, grant.Id);
        LogRegistered(_logger, _self.Id, grant.Id, _ttl.TotalSeconds);
        return true;
    }

    private async Task KeepAliveAsync(CancellationToken stop)
    {
        var period = TimeSpan.FromTicks(_ttl.Ticks / 3);
        var failed = false;
        var failingSince = 0L; // Stopwatch ticks of the first failure in a row; 0 while renewals succeed
        while (!stop.IsCancellationRequested)
        {
            try
            {
                // A third of the TTL after the last renewal was sent (the grant counts): a slow registration or a
                // late loop renews at once instead of sleeping a full period more.
                var due = period - Stopwatch.GetElapsedTime(Interlocked.Read(ref _renewedSentAt));
                if (failed && due < RetryDelay)
                {
                    due = RetryDelay; // etcd unreachable: try again soon, not in a tight loop
                }

                failed = false;
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due, stop).ConfigureAwait(false);
                }

                var sent = Stopwatch.GetTimestamp();
                // Bounded here too: a renewal that never returns must not stop the loop, whatever the store's client does.
                var response = await _store.LeaseKeepAliveAsync(Lease, stop).AsTask().WaitAsync(_ttl, stop).ConfigureAwait(false);
                if (response.Ttl <= 0)
                {
                    throw new LeaseNotFoundException(Lease);
                }

                Interlocked.Exchange(ref _renewedSentAt, sent);
                if (failingSince != 0)
                {
                    LogRenewedAgain(_logger, _self.Id, Stopwatch.GetElapsedTime(failingSince).TotalMilliseconds);
                    failingSince = 0;
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (LeaseNotFoundException)
            {
                failingSince = 0;
                LogLeaseLost(_logger, _self.Id, Lease);
                Interlocked.Exchange(ref _lease, 0);
                await ReregisterAsync(stop).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // Whatever failed, the loop goes on: if it stopped, this broker would stay fenced with nothing said.
                failed = true;
                if (ex is not (MetadataStoreException or IOException or InvalidOperationException or TimeoutException or OperationCanceledException))
                {
                    LogKeepAliveUnexpected(_logger, ex, _self.Id);
                }
                else if (failingSince == 0)
                {
                    LogKeepAliveFailing(_logger, _self.Id, ex.Message, RetryDelay.TotalMilliseconds);
                }
                else
                {
                    LogKeepAliveFailed(_logger, ex, _self.Id);
                }

                if (failingSince == 0)
                {
                    failingSince = Stopwatch.GetTimestamp();
                }
            }
        }
    }

    private async Task ReregisterAsync(CancellationToken stop)
    {
        var attempts = 0;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                attempts++;
                if (await TryRegisterAsync(stop).ConfigureAwait(false))
                {
                    Reregistered?.Invoke(Lease);
                    return;
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // As in the keepalive loop: nothing may end the attempts but stopping.
                if (attempts == 1)
                {
                    LogReregisterFailing(_logger, _self.Id, ex.Message);
                }
                else
                {
                    LogKeepAliveFailed(_logger, ex, _self.Id);
                }
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Stops renewing and revokes the lease, so the others see this broker leave at once.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        var lease = Interlocked.Exchange(ref _lease, 0);
        if (lease != 0)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _store.LeaseRevokeAsync(lease, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is MetadataStoreException or IOException or InvalidOperationException or OperationCanceledException or ObjectDisposedException)
            {
                LogRevokeFailed(_logger, _self.Id, _ttl.TotalSeconds, ex.Message); // the lease expires by itself within its TTL
            }
        }

        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Broker {BrokerId} registered in the cluster (lease {Lease}, TTL {TtlSeconds} s)")]
    private static partial void LogRegistered(ILogger logger, string brokerId, long lease, double ttlSeconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Server id {BrokerId} is still registered (a previous run whose lease has not expired?); waiting")]
    private static partial void LogIdTaken(ILogger logger, string brokerId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Broker {BrokerId} lost its cluster lease {Lease}; registering again")]
    private static partial void LogLeaseLost(ILogger logger, string brokerId, long lease);

    [LoggerMessage(Level = LogLevel.Information, Message = "Broker {BrokerId} could not revoke its cluster lease while stopping ({Reason}); the others see it leave when the lease expires, within {TtlSeconds} s")]
    private static partial void LogRevokeFailed(ILogger logger, string brokerId, double ttlSeconds, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Renewing the cluster lease of broker {BrokerId} failed: {Reason}; retrying every {RetryMs} ms")]
    private static partial void LogKeepAliveFailing(ILogger logger, string brokerId, string reason, double retryMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Broker {BrokerId} could not register again: {Reason}; retrying every 250 ms")]
    private static partial void LogReregisterFailing(ILogger logger, string brokerId, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Renewing the cluster lease of broker {BrokerId} failed unexpectedly; retrying")]
    private static partial void LogKeepAliveUnexpected(ILogger logger, Exception exception, string brokerId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Renewing the cluster lease of broker {BrokerId} failed again")]
    private static partial void LogKeepAliveFailed(ILogger logger, Exception exception, string brokerId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Broker {BrokerId} renewed its cluster lease again after {FailingMs:F0} ms of failures")]
    private static partial void LogRenewedAgain(ILogger logger, string brokerId, double failingMs);
}
