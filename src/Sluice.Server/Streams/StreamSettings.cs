using Sluice.Protocol.Api;
using Sluice.Server.Configuration;
using Sluice.Storage.Log;
using Sluice.Storage.Log.Files;

namespace Sluice.Server.Streams;

/// <summary>
/// The settings one stream runs with: its CreateStream overrides (durations in milliseconds, as on
/// the wire) over the server's <c>streams.*</c> defaults. Resolved on every start, so a changed
/// default reaches the streams that did not override it (Liftbridge does the same).
/// </summary>
internal sealed record StreamSettings
{
    public long RetentionMaxBytes { get; init; }

    public long RetentionMaxMessages { get; init; }

    public TimeSpan RetentionMaxAge { get; init; }

    public TimeSpan CleanerInterval { get; init; }

    public long SegmentMaxBytes { get; init; }

    public TimeSpan SegmentMaxAge { get; init; }

    public bool CompactEnabled { get; init; }

    public TimeSpan AutoPauseTime { get; init; }

    public bool AutoPauseDisableIfSubscribers { get; init; }

    public bool OptimisticConcurrencyControl { get; init; }

    public int MinIsr { get; init; }

    /// <summary>Values are encrypted at rest. Decided at creation and persisted in the request (never from today's default).</summary>
    public bool Encryption { get; init; }

    public static StreamSettings Resolve(CreateStreamRequest request, ServerOptions server)
    {
        var d = server.Streams;
        var retentionAge = request.RetentionMaxAge is { } ra ? TimeSpan.FromMilliseconds(ra.Value) : d.RetentionMaxAge;
        var segmentAge = request.SegmentMaxAge is { } sa ? TimeSpan.FromMilliseconds(sa.Value) : d.EffectiveSegmentMaxAge;
        if (request.SegmentMaxAge is null && request.RetentionMaxAge is not null && d.SegmentMaxAge == TimeSpan.Zero)
        {
            segmentAge = retentionAge; // "segment.max.age defaults to the retention age" also for a stream's own retention age
        }

        return new StreamSettings
        {
            RetentionMaxBytes = request.RetentionMaxBytes?.Value ?? d.RetentionMaxBytes,
            RetentionMaxMessages = request.RetentionMaxMessages?.Value ?? d.RetentionMaxMessages,
            RetentionMaxAge = retentionAge,
            CleanerInterval = request.CleanerInterval is { } ci ? TimeSpan.FromMilliseconds(ci.Value) : d.CleanerInterval,
            SegmentMaxBytes = request.SegmentMaxBytes?.Value ?? d.SegmentMaxBytes,
            SegmentMaxAge = segmentAge,
            CompactEnabled = request.CompactEnabled?.Value ?? d.CompactEnabled,
            AutoPauseTime = request.AutoPauseTime is { } ap ? TimeSpan.FromMilliseconds(ap.Value) : d.AutoPauseTime,
            AutoPauseDisableIfSubscribers = request.AutoPauseDisableIfSubscribers?.Value ?? d.AutoPauseDisableIfSubscribers,
            OptimisticConcurrencyControl = request.OptimisticConcurrencyControl?.Value ?? d.ConcurrencyControl,
            MinIsr = request.MinIsr?.Value ?? server.Clustering.MinInsyncReplicas,
            Encryption = request.Encryption?.Value ?? false,
        };
    }

    /// <summary>Checks values a log cannot run with, or that would break the next start; the message names the field.</summary>
    public static void Validate(CreateStreamRequest request)
    {
        static void NotNegative(long? value, string name)
        {
            if (value < 0)
            {
                throw new InvalidRequestException($"Invalid {name} {value}");
            }
        }

        // TimeSpan.FromMilliseconds overflows past ~29,000 years and the log keeps ages in nanoseconds:
        // a larger value was once saved and then stopped every later start.
        static void Duration(long? value, string name, bool zeroAllowed = true)
        {
            if (value < 0 || (value == 0 && !zeroAllowed))
            {
                throw new InvalidRequestException($"Invalid {name} {value}");
            }

            if (value > StreamLimits.MaxDurationMilliseconds)
            {
                throw new InvalidRequestException($"Invalid {name} {value}: at most {StreamLimits.MaxDurationMilliseconds} ms");
            }
        }

        NotNegative(request.RetentionMaxBytes?.Value, "retentionMaxBytes");
        NotNegative(request.RetentionMaxMessages?.Value, "retentionMaxMessages");
        Duration(request.RetentionMaxAge?.Value, "retentionMaxAge");
        Duration(request.SegmentMaxAge?.Value, "segmentMaxAge");
        Duration(request.AutoPauseTime?.Value, "autoPauseTime");
        Duration(request.CleanerInterval?.Value, "cleanerInterval", zeroAllowed: false);
        if (request.SegmentMaxBytes is { Value: <= 0 } smb)
        {
            throw new InvalidRequestException($"Invalid segmentMaxBytes {smb.Value}");
        }
    }

    public CommitLogOptions ToLogOptions(ServerOptions server, FileHandleBudget budget, Action<TimeSpan>? fsyncObserver = null) => new()
    {
        FsyncObserver = fsyncObserver,
        SegmentMaxBytes = Math.Clamp(SegmentMaxBytes, 1, 1L << 30), // the log's own ceiling is 1 GiB per segment
        SegmentMaxAge = SegmentMaxAge,
        RetentionMaxBytes = RetentionMaxBytes,
        RetentionMaxMessages = RetentionMaxMessages,
        RetentionMaxAge = RetentionMaxAge,
        Durability = server.Storage.Durability switch
        {
            DurabilityMode.Always => DurabilityPolicy.Always,
            DurabilityMode.Interval => DurabilityPolicy.Interval,
            _ => DurabilityPolicy.Never,
        },
        FsyncInterval = server.Storage.FsyncInterval,
        MaxRecordBytes = (int)Math.Min(int.MaxValue, Math.Max(server.Clustering.ReplicationMaxBytes + 64 * 1024, 1024 * 1024)),
        FileHandles = budget,
    };
}
