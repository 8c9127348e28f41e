using System.Collections;

namespace Sluice.Nats;

/// <summary>
/// NATS message headers (the <c>NATS/1.0</c> block of HPUB/HMSG): ordered, case-sensitive names,
/// each with one or more values, plus the optional status code and description of the version line.
/// </summary>
public sealed class NatsHeaders : IEnumerable<KeyValuePair<string, IReadOnlyList<string>>>
{
    private readonly List<KeyValuePair<string, List<string>>> _entries = [];

    /// <summary>Status code from the version line (<c>NATS/1.0 503</c>), or 0 when there is none.</summary>
    public int StatusCode { get; init; }

    /// <summary>Text after the status code on the version line, or <c>null</c>.</summary>
    public string? StatusDescription { get; init; }

    /// <summary>Number of distinct header names.</summary>
    public int Count => _entries.Count;

    /// <summary>Gets the values of <paramref name="name"/>; setting replaces them with one value.</summary>
    public string this[string name]
    {
        get => TryGetValues(name, out var values) ? values[0] : throw new KeyNotFoundException($"Header '{name}' is not present.");
        set
        {
            Validate(name, value);
            var index = IndexOf(name);
            if (index >= 0)
            {
                _entries[index] = new(name, [value]);
            }
            else
            {
                _entries.Add(new(name, [value]));
            }
        }
    }

    /// <summary>Adds a value to <paramref name="name"/>, keeping the values already there.</summary>
    public void Add(string name, string value)
    {
        Validate(name, value);
        var index = IndexOf(name);
        if (index >= 0)
        {
            _entries[index].Value.Add(value);
        }
        else
        {
            _entries.Add(new(name, [value]));
        }
    }

    /// <summary>Gets every value of <paramref name="name"/>.</summary>
    public bool TryGetValues(string name, out IReadOnlyList<string> values)
    {
        var index = IndexOf(name);
        if (index >= 0)
        {
            values = _entries[index].Value;
            return true;
        }

        values = [];
        return false;
    }

    /// <summary>Gets the first value of <paramref name="name"/>.</summary>
    public bool TryGetValue(string name, out string value)
    {
        if (TryGetValues(name, out var values))
        {
            value = values[0];
            return true;
        }

        value = string.Empty;
        return false;
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, IReadOnlyList<string>>> GetEnumerator()
    {
        foreach (var entry in _entries)
        {
            yield return new(entry.Key, entry.Value);
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Adds without validation; the parser has already checked the bytes.</summary>
    internal void AddParsed(string name, string value)
    {
        var index = IndexOf(name);
        if (index >= 0)
        {
            _entries[index].Value.Add(value);
        }
        else
        {
            _entries.Add(new(name, [value]));
        }
    }

    private int IndexOf(string name)
    {
        for (var i = 0; i < _entries.Count; i++)
        {
            if (string.Equals(_entries[i].Key, name, StringComparison.Ordinal))
            {
                return i;
            }
        }

        return -1;
    }

    private static void Validate(string name, string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(value);
        foreach (var c in name)
        {
            if (c <= ' ' || c == ':' || c >= 127)
            {
                throw new ArgumentException($"Header name '{name}' must be printable ASCII without spaces or ':'.", nameof(name));
            }
        }

        if (value.AsSpan().IndexOfAny('\r', '\n') >= 0)
        {
            throw new ArgumentException($"Header value of '{name}' must not contain CR or LF.", nameof(value));
        }
    }
}
