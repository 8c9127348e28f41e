using System.Runtime.CompilerServices;
using Sluice.Client.Grpc;
using Sluice.Client.Internal;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;

namespace Sluice.Client;

public sealed partial class SluiceClient
{
    private const int SubscribeAttempts = 5; // go-liftbridge subscribe

    /// <summary>
    /// Reads a stream partition as an async sequence. The arguments are checked at once; the
    /// subscription starts when enumeration starts and ends when it stops (or at the stop
    /// position). If the broker goes away the subscription re-establishes itself (within
    /// <see cref="SluiceClientOptions.ResubscribeWaitTime"/>) after the last message delivered.
    /// </summary>
    /// <param name="stream">The stream name.</param>
    /// <param name="options">Partition, start and stop positions...; null means <see cref="SubscribeOptions.Default"/>.</param>
    /// <param name="cancellationToken">Ends the subscription.</param>
    /// <exception cref="ArgumentException">Invalid options (negative partition, stop time in the future...), thrown by this call.</exception>
    /// <exception cref="NoSuchPartitionException">The stream or partition does not exist (when enumerating).</exception>
    public IAsyncEnumerable<SluiceMessage> SubscribeAsync(string stream, SubscribeOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        options ??= SubscribeOptions.Default;
        options.Validate();
        ThrowIfDisposed();
        return Enumerate(stream, options, cancellationToken);

        async IAsyncEnumerable<SluiceMessage> Enumerate(string stream, SubscribeOptions options, [EnumeratorCancellation] CancellationToken enumeratorToken = default)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, enumeratorToken);
            var subscription = await SubscribeCoreAsync(stream, options, linked.Token).ConfigureAwait(false);
            try
            {
                await foreach (var message in subscription.ReadAllAsync(linked.Token).ConfigureAwait(false))
                {
                    yield return message;
                }
            }
            finally
            {
                await subscription.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Subscribes to a stream partition and returns once the server has accepted the subscription,
    /// so messages published afterwards are seen even from <see cref="StartPosition.NewOnly"/>.
    /// Read the messages with <see cref="SluiceSubscription.ReadAllAsync"/> (or <c>await foreach</c>).
    /// </summary>
    /// <param name="stream">The stream name.</param>
    /// <param name="options">Partition, start and stop positions...; null means <see cref="SubscribeOptions.Default"/>.</param>
    /// <param name="cancellationToken">Cancels subscribing (not the subscription; dispose it to end it).</param>
    /// <exception cref="NoSuchPartitionException">The stream or partition does not exist.</exception>
    /// <exception cref="ReadonlyPartitionException">The stop position is "latest" and the partition is empty.</exception>
    public async Task<SluiceSubscription> SubscribeCoreAsync(string stream, SubscribeOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        options ??= SubscribeOptions.Default;
        options.Validate();
        ThrowIfDisposed();
        var subscription = new SluiceSubscription(this, stream, options);
        try
        {
            await subscription.StartAsync(cancellationToken).ConfigureAwait(false);
            return subscription;
        }
        catch
        {
            await subscription.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Subscribes and calls <paramref name="handler"/> for each message, one at a time, in offset
    /// order (go-liftbridge's Subscribe). Returns once the server has accepted the subscription; the
    /// returned subscription's <see cref="SluiceSubscription.Completion"/> ends with the terminal error,
    /// if any. Dispose it (or cancel <paramref name="cancellationToken"/>) to stop.
    /// </summary>
    /// <param name="stream">The stream name.</param>
    /// <param name="handler">Called for every message; an exception from it ends the subscription.</param>
    /// <param name="options">Partition, start and stop positions...; null means <see cref="SubscribeOptions.Default"/>.</param>
    /// <param name="cancellationToken">Cancels subscribing, and later ends the subscription.</param>
    public async Task<SluiceSubscription> SubscribeAsync(string stream, Func<SluiceMessage, CancellationToken, ValueTask> handler, SubscribeOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(handler);
        var subscription = await SubscribeCoreAsync(stream, options, cancellationToken).ConfigureAwait(false);
        subscription.RunHandler(handler, cancellationToken);
        return subscription;
    }

    /// <summary>
    /// Opens a Subscribe call on the partition leader (or a random ISR replica) and consumes the
    /// handshake frame. Retries UNAVAILABLE and FAILED_PRECONDITION (leader moved) after a metadata
    /// refresh, as go-liftbridge does.
    /// </summary>
    internal async Task<(GrpcStreamingCall<SluiceMessage>? Call, SluiceMessage? First)> OpenSubscriptionAsync(string stream, SubscribeOptions options, CancellationToken cancellationToken)
    {
        var request = new SubscribeRequest
        {
            Stream = stream,
            Partition = options.Partition,
            StartPosition = (Protocol.Api.StartPosition)(int)options.StartPosition,
            StartOffset = options.StartOffset,
            StartTimestamp = options.StartTime is { } start ? Timestamps.ToUnixNanoseconds(start) : 0,
            StopPosition = (Protocol.Api.StopPosition)(int)options.StopPosition,
            StopOffset = options.StopOffset,
            StopTimestamp = options.StopTime is { } stop ? Timestamps.ToUnixNanosecondsEndOfTick(stop) : 0,
            ReadISRReplica = options.ReadIsrReplica,
            Resume = options.Resume,
            Reverse = options.Reverse,
            Consumer = options.GroupConsumer,
        };

        Exception? last = null;
        for (var attempt = 0; attempt < SubscribeAttempts; attempt++)
        {
            if (attempt > 0 || _metadata.GetStream(stream) is null)
            {
                UseStream(stream);
                if (attempt > 0)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(10 + (50 * attempt)), cancellationToken).ConfigureAwait(false);
                }

                await TryRefreshMetadataAsync(cancellationToken).ConfigureAwait(false);
            }

            var address = options.ReadIsrReplica ? ReplicaAddress(stream, options.Partition, out var lookupError) : LeaderAddress(stream, options.Partition, out lookupError);
            if (address is null)
            {
                last = lookupError;
                continue;
            }

            var call = GetConnection(address).Channel.ServerStreaming<SubscribeRequest, SluiceMessage>("/proto.API/Subscribe", request, SluiceMessage.Decode, null, cancellationToken);
            try
            {
                if (!await call.MoveNextAsync().ConfigureAwait(false))
                {
                    await call.DisposeAsync().ConfigureAwait(false);
                    return (null, null); // the server ended the subscription at once
                }

                var first = call.Current;
                return (call, first.IsHandshake ? null : first);
            }
            catch (GrpcException ex) when (options.GroupConsumer is not null && SluiceErrors.IsGroupRefusal(ex))
            {
                await call.DisposeAsync().ConfigureAwait(false);
                throw new ConsumerFencedException(ex.Detail, ex); // the same request cannot succeed: the member must fetch its assignments
            }
            catch (GrpcException ex) when (ex.StatusCode is GrpcStatusCode.Unavailable or GrpcStatusCode.FailedPrecondition)
            {
                await call.DisposeAsync().ConfigureAwait(false);
                Logger.LogSubscribeRetry(stream, options.Partition, address, ex.Detail);
                last = ex;
            }
            catch (GrpcException ex)
            {
                await call.DisposeAsync().ConfigureAwait(false);
                throw SluiceErrors.FromStatus(ex, RpcKind.SubscribeOpen);
            }
            catch
            {
                await call.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }

        throw last is GrpcException grpc ? SluiceErrors.FromStatus(grpc, RpcKind.SubscribeOpen) : last!;
    }

    private string? ReplicaAddress(string stream, int partition, out SluiceException? error)
    {
        var leader = LeaderAddress(stream, partition, out error);
        if (leader is null)
        {
            return null;
        }

        var metadata = _metadata;
        var isr = metadata.GetStream(stream)!.GetPartition(partition)!.Isr
            .Select(metadata.GetBroker)
            .Where(b => b is not null)
            .ToArray();
        return isr.Length == 0 ? leader : isr[Random.Shared.Next(isr.Length)]!.Address;
    }
}
