namespace Sluice.Client.Internal;

/// <summary>Liftbridge carries times as nanoseconds since the Unix epoch.</summary>
internal static class Timestamps
{
    public static DateTimeOffset FromUnixNanoseconds(long nanoseconds) =>
        DateTimeOffset.UnixEpoch.AddTicks(nanoseconds / 100);

    /// <summary>0 means "never" in partition event timestamps.</summary>
    public static DateTimeOffset? FromUnixNanosecondsOrNull(long nanoseconds) =>
        nanoseconds == 0 ? null : FromUnixNanoseconds(nanoseconds);

    public static long ToUnixNanoseconds(DateTimeOffset time) =>
        (time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;

    /// <summary>
    /// The last nanosecond of <paramref name="time"/>'s 100 ns tick. A message's <c>Timestamp</c> drops the
    /// nanoseconds Liftbridge records, so a stop time taken from it must cover the whole tick to include that message.
    /// </summary>
    public static long ToUnixNanosecondsEndOfTick(DateTimeOffset time) => ToUnixNanoseconds(time) + 99;
}
