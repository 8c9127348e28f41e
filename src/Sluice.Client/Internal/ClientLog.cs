using Microsoft.Extensions.Logging;

namespace Sluice.Client.Internal;

/// <summary>The client's log events.</summary>
internal static partial class ClientLog
{
    [LoggerMessage(Level = LogLevel.Debug, Message = "Subscribe to {Stream}[{Partition}] on {Address} failed: {Detail}; refreshing metadata and retrying")]
    public static partial void LogSubscribeRetry(this ILogger logger, string stream, int partition, string address, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Subscription to {Stream}[{Partition}] lost its broker ({Detail}); resubscribing from offset {Offset}")]
    public static partial void LogResubscribing(this ILogger logger, string stream, int partition, string detail, long offset);

    [LoggerMessage(Level = LogLevel.Information, Message = "Subscription to {Stream}[{Partition}] re-established after {Attempts} attempt(s)")]
    public static partial void LogResubscribed(this ILogger logger, string stream, int partition, int attempts);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Resubscribe attempt to {Stream}[{Partition}] failed")]
    public static partial void LogResubscribeAttemptFailed(this ILogger logger, Exception exception, string stream, int partition);

    [LoggerMessage(Level = LogLevel.Error, Message = "Subscription handler for {Stream}[{Partition}] failed; the subscription ends")]
    public static partial void LogHandlerFailed(this ILogger logger, Exception exception, string stream, int partition);

    [LoggerMessage(Level = LogLevel.Information, Message = "Consumer {ConsumerId} joined group {GroupId} at epoch {Epoch} (coordinator {Coordinator})")]
    public static partial void LogConsumerJoined(this ILogger logger, string consumerId, string groupId, ulong epoch, string coordinator);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Consumer {ConsumerId} of group {GroupId}: {Step} failed; refreshing the group's coordinator and epoch")]
    public static partial void LogConsumerStepFailed(this ILogger logger, Exception exception, string consumerId, string groupId, string step);

    [LoggerMessage(Level = LogLevel.Information, Message = "Consumer {ConsumerId} of group {GroupId} at epoch {Epoch}: assigned {Assigned}, revoked {Revoked}")]
    public static partial void LogConsumerRebalanced(this ILogger logger, string consumerId, string groupId, ulong epoch, string assigned, string revoked);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Consumer {ConsumerId}: the subscription to {Stream}[{Partition}] ended ({Reason})")]
    public static partial void LogConsumerPartitionEnded(this ILogger logger, string consumerId, string stream, int partition, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Consumer {ConsumerId}: a partition callback failed")]
    public static partial void LogConsumerCallbackFailed(this ILogger logger, Exception exception, string consumerId);
}
