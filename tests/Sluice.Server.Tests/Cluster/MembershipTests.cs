using System.Reflection;
using Microsoft.Extensions.Logging.Abstractions;
using Sluice.Protocol.Internal;
using Sluice.Server.Cluster;
using Sluice.Storage.Metadata;
using Sluice.Storage.Metadata.Embedded;
using Sluice.TestKit;

namespace Sluice.Server.Tests.Cluster;

/// <summary>The lease keepalive loop: whatever one renewal throws, the next one is tried.</summary>
public sealed class MembershipTests
{
    [Fact]
    public async Task Renewals_that_throw_unexpected_exceptions_do_not_stop_the_keepalive_loop()
    {
        using var dir = new TempDirectory();
        await using var inner = await EmbeddedMetadataStore.OpenAsync(dir.Path, MetadataStoreOptions.Default);

        // A cancellation that is not the loop's own (as a client library may report a deadline) and a plain bug.
        var store = FailingRenewals.Wrap(inner, new OperationCanceledException("deadline"), new ArithmeticException("bug"));
        var ttl = TimeSpan.FromSeconds(2);
        await using var membership = new Membership(store, new BrokerRecord { Id = "b1" }, ttl, NullLogger.Instance);
        await membership.StartAsync(CancellationToken.None);
        var lease = membership.Lease;

        // Both failures happen within the first TTL; three TTLs later the same lease is still renewed.
        await Task.Delay(ttl * 3);

        Assert.Equal(0, FailingRenewals.Pending(store));
        Assert.True(membership.IsLive, "the broker stopped renewing its lease");
        Assert.Equal(lease, membership.Lease);
    }

    /// <summary>An <see cref="IMetadataStore"/> whose next lease renewals throw the given exceptions.</summary>
    public class FailingRenewals : DispatchProxy
    {
        private IMetadataStore _inner = null!;
        private Queue<Exception> _failures = null!;

        public static IMetadataStore Wrap(IMetadataStore inner, params Exception[] failures)
        {
            var proxy = Create<IMetadataStore, FailingRenewals>();
            var self = (FailingRenewals)(object)proxy;
            self._inner = inner;
            self._failures = new Queue<Exception>(failures);
            return proxy;
        }

        public static int Pending(IMetadataStore proxy)
        {
            var self = (FailingRenewals)(object)proxy;
            lock (self._failures)
            {
                return self._failures.Count;
            }
        }

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            if (targetMethod!.Name == nameof(IMetadataStore.LeaseKeepAliveAsync))
            {
                lock (_failures)
                {
                    if (_failures.TryDequeue(out var failure))
                    {
                        throw failure;
                    }
                }
            }

            try
            {
                return targetMethod.Invoke(_inner, args);
            }
            catch (TargetInvocationException e) when (e.InnerException is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
                throw;
            }
        }
    }
}
