using System.Globalization;

namespace Sluice.Server.Configuration;

/// <summary>
/// Go's duration syntax (time.ParseDuration): `300ms`, `1.5h`, `2h45m`, `1ns`, `0`. Liftbridge configs are
/// written in it, so Sluice reads it exactly, including the units ns, us, µs, ms, s, m and h.
/// </summary>
public static class GoDuration
{
    private const long NanosPerTick = 100;

    /// <summary>Parses a Go duration into nanoseconds; false when the text is not one.</summary>
    public static bool TryParseNanoseconds(string text, out long nanoseconds)
    {
        nanoseconds = 0;
        var s = text.AsSpan().Trim();
        if (s.IsEmpty)
        {
            return false;
        }

        var negative = false;
        if (s[0] is '+' or '-')
        {
            negative = s[0] == '-';
            s = s[1..];
        }

        if (s is "0")
        {
            return true;
        }

        if (s.IsEmpty)
        {
            return false;
        }

        decimal total = 0;
        while (!s.IsEmpty)
        {
            var numberLength = 0;
            while (numberLength < s.Length && (char.IsAsciiDigit(s[numberLength]) || s[numberLength] == '.'))
            {
                numberLength++;
            }

            var number = s[..numberLength];
            if (number.IsEmpty || number is "." || number.IndexOf('.') != number.LastIndexOf('.'))
            {
                return false;
            }

            s = s[numberLength..];
            var unitLength = 0;
            while (unitLength < s.Length && !char.IsAsciiDigit(s[unitLength]) && s[unitLength] != '.')
            {
                unitLength++;
            }

            long unit;
            switch (s[..unitLength])
            {
                case "ns": unit = 1; break;
                case "us" or "µs" or "μs": unit = 1_000; break;
                case "ms": unit = 1_000_000; break;
                case "s": unit = 1_000_000_000; break;
                case "m": unit = 60_000_000_000; break;
                case "h": unit = 3_600_000_000_000; break;
                default: return false;
            }

            s = s[unitLength..];
            if (!decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
            {
                return false;
            }

            total += value * unit;
            if (total > long.MaxValue)
            {
                return false;
            }
        }

        nanoseconds = (long)decimal.Truncate(negative ? -total : total);
        return true;
    }

    /// <summary>
    /// Nanoseconds to a TimeSpan. A non-zero duration shorter than a tick (100 ns) becomes one tick, so that
    /// `1ns` stays "non-zero" (zero often means "unlimited" or "disabled").
    /// </summary>
    public static TimeSpan FromNanoseconds(long nanoseconds)
    {
        var ticks = nanoseconds / NanosPerTick;
        if (ticks == 0 && nanoseconds != 0)
        {
            ticks = Math.Sign(nanoseconds);
        }

        return TimeSpan.FromTicks(ticks);
    }

    /// <summary>Formats like Go's Duration.String (`168h0m0s`, `1.5s`, `100ms`, `0s`).</summary>
    public static string Format(TimeSpan value)
    {
        if (value == TimeSpan.Zero)
        {
            return "0s";
        }

        var sign = value < TimeSpan.Zero ? "-" : "";
        var ticks = Math.Abs(value.Ticks);
        if (ticks < TimeSpan.TicksPerSecond)
        {
            var nanos = ticks * NanosPerTick;
            return nanos switch
            {
                < 1_000 => $"{sign}{nanos}ns",
                < 1_000_000 => sign + Fraction(nanos, 1_000) + "µs",
                _ => sign + Fraction(nanos, 1_000_000) + "ms",
            };
        }

        var hours = ticks / TimeSpan.TicksPerHour;
        var minutes = ticks % TimeSpan.TicksPerHour / TimeSpan.TicksPerMinute;
        var secondTicks = ticks % TimeSpan.TicksPerMinute;
        var seconds = Fraction(secondTicks, TimeSpan.TicksPerSecond) + "s";
        return hours > 0 ? $"{sign}{hours}h{minutes}m{seconds}"
            : minutes > 0 ? $"{sign}{minutes}m{seconds}"
            : sign + seconds;
    }

    private static string Fraction(long value, long unit) =>
        ((decimal)value / unit).ToString("0.#########", CultureInfo.InvariantCulture);
}
