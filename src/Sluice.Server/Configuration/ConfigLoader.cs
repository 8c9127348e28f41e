using System.Collections;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Sluice.Server.Configuration;

/// <summary>A setting Sluice accepts for compatibility but does not act on yet.</summary>
public sealed record IgnoredSetting(string Key, string Source, string Reason)
{
    public string Message => $"Configuration setting \"{Key}\" ({Source}) is accepted but ignored for now: {Reason}";
}

/// <summary>The outcome of loading: the options, plus what the server should log at startup.</summary>
public sealed record LoadedConfiguration(
    ServerOptions Options,
    IReadOnlyList<IgnoredSetting> IgnoredSettings,
    IReadOnlyList<string> Warnings);

/// <summary>
/// Builds <see cref="ServerOptions"/> from, lowest precedence first: defaults, the YAML file, `LIFTBRIDGE_*`
/// environment variables, `SLUICE_*` environment variables, then command-line flags. Pure: the caller passes
/// the file's text, the environment and the flags.
/// </summary>
public static class ConfigLoader
{
    public const string SluiceEnvironmentPrefix = "SLUICE_";
    public const string LiftbridgeEnvironmentPrefix = "LIFTBRIDGE_";

    /// <summary>Every key Sluice accepts, in documentation order.</summary>
    public static IReadOnlyList<string> KnownKeys { get; } = ConfigKeys.All.Select(k => k.Name).ToArray();

    /// <summary>The keys that are accepted and ignored for now, with the reason.</summary>
    public static IReadOnlyDictionary<string, string> IgnoredKeys { get; } =
        ConfigKeys.All.Where(k => k.Ignored).ToDictionary(k => k.Name, k => k.IgnoredReason!);

    /// <summary>Loads from YAML text (null or empty = no file), an environment and flags.</summary>
    /// <param name="yaml">The configuration file's text, or null.</param>
    /// <param name="environment">Environment variables (name → value).</param>
    /// <param name="flags">Command-line flags; given ones win over everything.</param>
    /// <param name="fileName">Names the file in messages.</param>
    /// <exception cref="ConfigurationException">A key is unknown or a value is invalid.</exception>
    public static LoadedConfiguration Load(
        string? yaml,
        IReadOnlyDictionary<string, string?> environment,
        ConfigFlags flags,
        string? fileName = null)
    {
        ArgumentNullException.ThrowIfNull(environment);
        ArgumentNullException.ThrowIfNull(flags);

        var settings = new Dictionary<string, RawSetting>(StringComparer.OrdinalIgnoreCase);
        if (!string.IsNullOrWhiteSpace(yaml))
        {
            foreach (var (key, value) in ReadYaml(yaml, "config file" + (fileName is null ? "" : " " + fileName)))
            {
                settings[key] = value;
            }
        }

        ApplyEnvironment(settings, environment, LiftbridgeEnvironmentPrefix);
        ApplyEnvironment(settings, environment, SluiceEnvironmentPrefix);
        foreach (var (key, _, value) in flags.Settings())
        {
            settings[key] = value;
        }

        var warnings = new List<string>();
        var ignored = new List<IgnoredSetting>();
        var options = ServerOptions.Default;
        foreach (var key in ConfigKeys.All)
        {
            if (!settings.TryGetValue(key.Name, out var raw))
            {
                continue;
            }

            var value = new ConfigValue(key.Name, raw, warnings);
            if (key.Ignored)
            {
                // An ignored key never stops startup; a value that would not parse is only mentioned.
                try
                {
                    options = key.Apply(options, value);
                    ignored.Add(new IgnoredSetting(key.Name, raw.Source, key.IgnoredReason!));
                }
                catch (InvalidSettingValueException e)
                {
                    ignored.Add(new IgnoredSetting(key.Name, raw.Source,
                        $"{key.IgnoredReason} (its value \"{raw.Display}\" is not valid either: expected {e.Expected})"));
                }

                continue;
            }

            try
            {
                options = key.Apply(options, value);
            }
            catch (InvalidSettingValueException e)
            {
                throw new ConfigurationException(
                    $"Invalid value \"{raw.Display}\" for configuration setting \"{key.Name}\" ({raw.Source}): expected {e.Expected}")
                { Key = key.Name };
            }
        }

        Validate(options, settings, environment, warnings);
        return new LoadedConfiguration(options, ignored, warnings);
    }

    /// <summary>Reads the file (when a path is given) and loads it with <see cref="Load"/>.</summary>
    /// <exception cref="ConfigurationException">The file cannot be read, or its content is invalid.</exception>
    public static LoadedConfiguration LoadFile(string? path, IReadOnlyDictionary<string, string?> environment, ConfigFlags flags)
    {
        string? yaml = null;
        if (!string.IsNullOrEmpty(path))
        {
            try
            {
                yaml = File.ReadAllText(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ConfigurationException($"Cannot read configuration file \"{path}\": {e.Message}", e);
            }
        }

        return Load(yaml, environment, flags, path);
    }

    /// <summary>A snapshot of this process's environment variables.</summary>
    public static IReadOnlyDictionary<string, string?> ProcessEnvironment()
    {
        var result = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            result[(string)entry.Key] = entry.Value as string;
        }

        return result;
    }

    private static void ApplyEnvironment(Dictionary<string, RawSetting> settings, IReadOnlyDictionary<string, string?> environment, string prefix)
    {
        // Both spellings: `PREFIX_LOGGING.LEVEL` (what viper's AutomaticEnv looks up) and `PREFIX_LOGGING_LEVEL`
        // (what Liftbridge's documentation shows); the underscore form wins when both are set.
        foreach (var key in ConfigKeys.All)
        {
            foreach (var name in new[] { prefix + key.Name.ToUpperInvariant(), prefix + key.EnvironmentSuffix })
            {
                var value = Lookup(environment, name);
                if (!string.IsNullOrEmpty(value)) // an empty variable counts as unset, as in viper
                {
                    settings[key.Name] = new RawSetting("env " + name, value, null);
                }
            }
        }
    }

    private static string? Lookup(IReadOnlyDictionary<string, string?> environment, string name)
    {
        if (environment.TryGetValue(name, out var exact))
        {
            return exact;
        }

        foreach (var (candidate, value) in environment)
        {
            if (string.Equals(candidate, name, StringComparison.OrdinalIgnoreCase))
            {
                return value;
            }
        }

        return null;
    }

    private static List<(string Key, RawSetting Value)> ReadYaml(string yaml, string source)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new ConfigurationException($"Cannot parse {source} as YAML at line {e.Start.Line}, column {e.Start.Column}: {e.Message}", e);
        }

        var result = new List<(string, RawSetting)>();
        if (stream.Documents.Count == 0 || IsNull(stream.Documents[0].RootNode))
        {
            return result;
        }

        if (stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new ConfigurationException($"The {source} must be a YAML mapping of settings (key: value)");
        }

        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        Flatten(root, "", source, result, seen);
        return result;
    }

    private static void Flatten(YamlMappingNode mapping, string prefix, string source, List<(string, RawSetting)> result, HashSet<string> seen)
    {
        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            if (keyNode is not YamlScalarNode { Value: { Length: > 0 } name })
            {
                throw new ConfigurationException($"The {source} has a key that is not a plain name near line {keyNode.Start.Line}");
            }

            var key = prefix + name.Trim().ToLowerInvariant();
            var known = ConfigKeys.Find(key);
            switch (valueNode)
            {
                case YamlMappingNode child when known is null:
                    Flatten(child, key + ".", source, result, seen);
                    continue;
                case YamlMappingNode when known is not null:
                    throw new ConfigurationException(
                        $"Invalid value for configuration setting \"{key}\" ({source}): expected a single value, not a mapping")
                    { Key = key };
            }

            if (known is null)
            {
                if (IsNull(valueNode) && ConfigKeys.IsSection(key))
                {
                    continue; // an empty section such as `logging:`
                }

                throw UnknownSetting(key, source);
            }

            if (IsNull(valueNode))
            {
                continue; // `port:` with no value leaves the default, as viper does
            }

            if (!seen.Add(key))
            {
                throw new ConfigurationException($"Configuration setting \"{key}\" is given twice in the {source}") { Key = key };
            }

            result.Add((key, valueNode switch
            {
                YamlScalarNode scalar => new RawSetting(source, scalar.Value ?? "", null),
                YamlSequenceNode sequence => new RawSetting(source, null, sequence.Children.Select(item =>
                    item is YamlScalarNode s ? s.Value ?? "" : throw new ConfigurationException(
                        $"Invalid value for configuration setting \"{key}\" ({source}): expected a list of plain values")
                    { Key = key }).ToArray()),
                _ => throw new ConfigurationException($"Invalid value for configuration setting \"{key}\" ({source})") { Key = key },
            }));
        }
    }

    private static bool IsNull(YamlNode node) =>
        node is YamlScalarNode scalar
        && ((!scalar.Tag.IsEmpty && !scalar.Tag.IsNonSpecific && scalar.Tag.Value == "tag:yaml.org,2002:null")
            || (scalar.Style == ScalarStyle.Plain && scalar.Value is null or "" or "~" or "null" or "Null" or "NULL"));

    private static ConfigurationException UnknownSetting(string key, string source)
    {
        var suggestion = Suggest(key);
        var message = $"Unknown configuration setting \"{key}\" ({source})";
        if (suggestion is not null)
        {
            message += $"; did you mean \"{suggestion}\"?";
        }

        return new ConfigurationException(message) { Key = key };
    }

    /// <summary>The known key closest to a misspelt one, or null when none is close.</summary>
    internal static string? Suggest(string unknown)
    {
        var normalized = unknown.Replace('_', '.').ToLowerInvariant();
        if (ConfigKeys.Find(normalized) is { } same)
        {
            return same.Name;
        }

        // Liftbridge's older files used `log.*` for both logging and stream settings, and `tls.client.auth`.
        var rewrites = new List<string> { normalized + ".enabled" };
        if (normalized.StartsWith("log.", StringComparison.Ordinal))
        {
            rewrites.Add("logging." + normalized[4..]);
            rewrites.Add("streams." + normalized[4..]);
        }

        if (rewrites.Select(ConfigKeys.Find).FirstOrDefault(k => k is not null) is { } rewritten)
        {
            return rewritten.Name;
        }

        var best = ConfigKeys.All
            .Select(k => (k.Name, Distance: EditDistance(normalized, k.Name)))
            .MinBy(c => c.Distance);
        return best.Distance <= Math.Max(2, normalized.Length / 4) ? best.Name : null;
    }

    private static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }

    private static void Validate(ServerOptions options, Dictionary<string, RawSetting> settings, IReadOnlyDictionary<string, string?> environment, List<string> warnings)
    {
        var tls = options.Tls;
        if ((tls.Cert.Length > 0) != (tls.Key.Length > 0))
        {
            var missing = tls.Cert.Length > 0 ? "tls.key" : "tls.cert";
            throw new ConfigurationException(
                $"Configuration setting \"{missing}\" is missing: TLS needs both tls.cert and tls.key (or --tls-cert and --tls-key)")
            { Key = missing };
        }

        var etcd = options.Clustering.Etcd;
        if ((etcd.TlsCert is null) != (etcd.TlsKey is null))
        {
            var missing = etcd.TlsCert is null ? "clustering.etcd.tls.cert" : "clustering.etcd.tls.key";
            throw new ConfigurationException(
                $"Configuration setting \"{missing}\" is missing: a client certificate for etcd needs both clustering.etcd.tls.cert and clustering.etcd.tls.key")
            { Key = missing };
        }

        if (tls.ClientAuthEnabled && !tls.Enabled)
        {
            throw new ConfigurationException(
                "Configuration setting \"tls.client.auth.enabled\" is true but TLS is off: set tls.cert and tls.key")
            { Key = "tls.client.auth.enabled" };
        }

        if (options.Monitor.OtlpTraces && options.Monitor.OtlpEndpoint is null)
        {
            throw new ConfigurationException(
                "Configuration setting \"monitor.otlp.traces.enabled\" is true but no collector is set: set monitor.otlp.endpoint")
            { Key = "monitor.otlp.traces.enabled" };
        }

        if (settings.TryGetValue("streams.segment.max.age", out var rawAge)
            && options.Streams.SegmentMaxAge > TimeSpan.Zero
            && options.Streams.SegmentMaxAge < StreamDefaults.MinSegmentMaxAge)
        {
            warnings.Add($"Configuration setting \"streams.segment.max.age\" = {rawAge.Display} ({rawAge.Source}) is raised "
                + "to 1s to avoid rolling segments constantly, as Liftbridge does");
        }

        // One server: it is the whole cluster and the only member of every ISR.
        if (options.Cursors.ReplicationFactor > 1)
        {
            warnings.Add($"Configuration setting \"cursors.stream.replication.factor\" = {options.Cursors.ReplicationFactor} is larger than the "
                + "cluster (this single server): the cursors stream is created with a replication factor of 1");
        }

        if (options.Clustering.MinInsyncReplicas > 1)
        {
            warnings.Add($"Configuration setting \"clustering.min.insync.replicas\" = {options.Clustering.MinInsyncReplicas}: a single server's ISR is "
                + "itself, so messages published with AckPolicy ALL are neither committed nor acked (as in Liftbridge when the ISR is below "
                + "the minimum); AckPolicy LEADER and NONE are unaffected");
        }

        if (options.Streams.Encryption
            && string.IsNullOrEmpty(Lookup(environment, "SLUICE_ENCRYPTION_KEY"))
            && string.IsNullOrEmpty(Lookup(environment, "LIFTBRIDGE_ENCRYPTION_KEY")))
        {
            warnings.Add("Configuration setting \"streams.encryption\" is true but neither SLUICE_ENCRYPTION_KEY nor LIFTBRIDGE_ENCRYPTION_KEY is set; "
                + "encrypted streams cannot be written until it is");
        }
    }
}
