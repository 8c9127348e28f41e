using Google.Protobuf;
using Sluice.Client.Internal;
using Sluice.Protocol.Grpc;

namespace Sluice.Client;

public sealed partial class SluiceClient
{
    /// <summary>
    /// Creates a member of the consumer group <paramref name="groupId"/> (go-liftbridge's CreateConsumer). Nothing is
    /// sent until <see cref="SluiceConsumer.SubscribeAsync"/> joins the group; dispose the consumer to leave it.
    /// </summary>
    /// <param name="groupId">The group; it is created by its first member.</param>
    /// <param name="options">Consumer id, commit interval, rebalance callbacks; null means <see cref="ConsumerOptions.Default"/>.</param>
    /// <exception cref="ArgumentException">An empty group id or an invalid option.</exception>
    public SluiceConsumer CreateConsumer(string groupId, ConsumerOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(groupId);
        options ??= ConsumerOptions.Default;
        options.Validate();
        ThrowIfDisposed();
        return new SluiceConsumer(this, groupId, options);
    }

    /// <summary>Calls <paramref name="method"/> on the broker with id <paramref name="brokerId"/> (a group's coordinator).</summary>
    internal async Task<TResponse> InvokeBrokerAsync<TRequest, TResponse>(string brokerId, string method, TRequest request, MessageParser<TResponse> parser, CancellationToken cancellationToken)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
    {
        var address = _metadata.GetBroker(brokerId)?.Address;
        if (address is null)
        {
            await TryRefreshMetadataAsync(cancellationToken).ConfigureAwait(false);
            address = _metadata.GetBroker(brokerId)?.Address
                ?? throw new BrokerUnavailableException($"{method}: broker '{brokerId}' is not in the cluster metadata");
        }

        try
        {
            return await GetConnection(address).Channel.UnaryAsync(ApiPrefix + method, request, parser, null, cancellationToken).ConfigureAwait(false);
        }
        catch (GrpcException ex)
        {
            throw SluiceErrors.FromStatus(ex, RpcKind.Other);
        }
    }
}
