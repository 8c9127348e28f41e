using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Sluice.Server.Configuration;

/// <summary>One raw setting as it came from a source, before it is parsed for its key.</summary>
/// <param name="Source">Where it came from, for messages: `config file x.yaml`, `env SLUICE_PORT`, `flag --port`.</param>
/// <param name="Scalar">The text of a single value, or null when the value is a list.</param>
/// <param name="Items">The items of a list value (YAML sequence, repeated flag), or null.</param>
internal sealed record RawSetting(string Source, string? Scalar, IReadOnlyList<string>? Items)
{
    public string Display => Scalar ?? "[" + string.Join(", ", Items ?? []) + "]";
}

/// <summary>A value was present but could not be read as what its key expects.</summary>
internal sealed class InvalidSettingValueException(string expected) : Exception(expected)
{
    public string Expected { get; } = expected;
}

/// <summary>Typed readers over a raw setting; each throws with a description of what was expected.</summary>
internal sealed class ConfigValue(string key, RawSetting raw, List<string> warnings)
{
    public string Key { get; } = key;

    public RawSetting Raw { get; } = raw;

    public string String() =>
        Raw.Scalar ?? throw new InvalidSettingValueException("a single value, not a list");

    public IReadOnlyList<string> List() =>
        (Raw.Items ?? [Raw.Scalar ?? ""])
            .SelectMany(item => item.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            .ToArray();

    public bool Bool() => String().Trim().ToLowerInvariant() switch
    {
        "true" or "t" or "1" or "yes" or "y" or "on" => true,
        "false" or "f" or "0" or "no" or "n" or "off" => false,
        _ => throw new InvalidSettingValueException("true or false"),
    };

    public long Long(long min, long max, string? expected = null)
    {
        expected ??= max == long.MaxValue ? $"an integer >= {min}" : $"an integer from {min} to {max}";
        if (!long.TryParse(String().Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value)
            || value < min || value > max)
        {
            throw new InvalidSettingValueException(expected);
        }

        return value;
    }

    public int Int(int min, int max = int.MaxValue, string? expected = null) => (int)Long(min, max, expected);

    /// <summary>
    /// A non-negative Go duration. A plain number is nanoseconds, as Liftbridge (viper's cast) reads it; a
    /// non-zero one earns a warning because it is almost never what was meant.
    /// </summary>
    public TimeSpan Duration()
    {
        const string Expected = "a duration such as 100ms, 30s, 5m, 168h or 1h30m";
        var text = String().Trim();
        long nanos;
        if (IsPlainNumber(text))
        {
            if (!decimal.TryParse(text, NumberStyles.AllowDecimalPoint | NumberStyles.AllowLeadingSign,
                    CultureInfo.InvariantCulture, out var number) || number < 0 || number > long.MaxValue)
            {
                throw new InvalidSettingValueException(Expected);
            }

            nanos = (long)number;
            if (nanos != 0)
            {
                warnings.Add($"Configuration setting \"{Key}\" = {text} ({Raw.Source}) has no unit and is read as "
                    + $"{text} nanoseconds, as Liftbridge does; write e.g. \"{text}s\" if seconds were meant");
            }
        }
        else if (!GoDuration.TryParseNanoseconds(text, out nanos) || nanos < 0)
        {
            throw new InvalidSettingValueException(Expected);
        }

        return GoDuration.FromNanoseconds(nanos);
    }

    public LogLevel LogLevel() => String().Trim().ToLowerInvariant() switch
    {
        "debug" => Microsoft.Extensions.Logging.LogLevel.Debug,
        "info" => Microsoft.Extensions.Logging.LogLevel.Information,
        "warn" => Microsoft.Extensions.Logging.LogLevel.Warning,
        "error" => Microsoft.Extensions.Logging.LogLevel.Error,
        _ => throw new InvalidSettingValueException("one of debug, info, warn, error"),
    };

    public TEnum Enum<TEnum>()
        where TEnum : struct, Enum
    {
        var text = String().Trim();
        var names = System.Enum.GetNames<TEnum>();
        var name = names.FirstOrDefault(n => n.Equals(text, StringComparison.OrdinalIgnoreCase))
            ?? throw new InvalidSettingValueException("one of " + string.Join(", ", names.Select(n => n.ToLowerInvariant())));
        return System.Enum.Parse<TEnum>(name);
    }

    /// <summary>`host:port` (IPv6 as `[::1]:port`), or a bare port meaning all interfaces.</summary>
    public HostPort HostPort()
    {
        const string Expected = "host:port (e.g. 0.0.0.0:9292) or a port number";
        var text = String().Trim();
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var bare))
        {
            return bare <= 65535 ? new HostPort("0.0.0.0", bare) : throw new InvalidSettingValueException(Expected);
        }

        var colon = text.LastIndexOf(':');
        if (colon < 0)
        {
            throw new InvalidSettingValueException(Expected);
        }

        var host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }
        else if (host.Contains(':', StringComparison.Ordinal))
        {
            throw new InvalidSettingValueException(Expected + "; IPv6 hosts go in brackets: [::]:9292");
        }

        if (!int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || port > 65535)
        {
            throw new InvalidSettingValueException(Expected);
        }

        return new HostPort(host.Length == 0 ? "0.0.0.0" : host, port);
    }

    private static bool IsPlainNumber(string text) =>
        text.Length > 0 && text.All(c => char.IsAsciiDigit(c) || c is '.' or '-' or '+');
}
