namespace Sluice.Server.Authorization;

/// <summary>
/// A Casbin model file and its CSV policy, loaded and checked together: the form Liftbridge reads for
/// <c>tls.client.authz.model</c> and <c>.policy</c>. Immutable; a reload builds a new one.
/// </summary>
/// <remarks>
/// Supported: one request and one policy definition of any fields (an <c>eft</c> policy field gives allow/deny rules),
/// role definitions with two arguments (<c>g = _, _</c>, transitive), the four standard effects
/// (<c>some(where (p.eft == allow))</c>, <c>!some(where (p.eft == deny))</c>, both together, and
/// <c>priority(p.eft) || deny</c>), and the matchers <see cref="MatcherExpression"/> parses. Anything else is refused
/// when the files load, with the line that uses it.
/// </remarks>
internal sealed class AccessPolicy
{
    private readonly string[] _requestFields;
    private readonly string[] _policyFields;
    private readonly int _effectField;
    private readonly Effect _effect;
    private readonly MatcherExpression _matcher;
    private readonly List<string[]> _rules;
    private readonly Dictionary<string, Dictionary<string, List<string>>> _roles;

    private AccessPolicy(string[] requestFields, string[] policyFields, Effect effect, MatcherExpression matcher, List<string[]> rules, Dictionary<string, Dictionary<string, List<string>>> roles)
    {
        _requestFields = requestFields;
        _policyFields = policyFields;
        _effectField = Array.IndexOf(policyFields, "eft");
        _effect = effect;
        _matcher = matcher;
        _rules = rules;
        _roles = roles;
    }

    private enum Effect
    {
        AnyAllow,
        NoDeny,
        AnyAllowAndNoDeny,
        FirstMatch,
    }

    /// <summary>How many policy rules (<c>p</c> lines) the policy holds.</summary>
    public int RuleCount => _rules.Count;

    /// <summary>How many request fields the model has (Liftbridge's: sub, obj, act).</summary>
    public int RequestFieldCount => _requestFields.Length;

    /// <summary>Reads and checks both files.</summary>
    /// <exception cref="FormatException">Either file is malformed or uses what is not supported; the message names the file and line.</exception>
    public static AccessPolicy Load(string modelPath, string policyPath) =>
        Parse(File.ReadAllText(modelPath), File.ReadAllText(policyPath), Path.GetFileName(modelPath), Path.GetFileName(policyPath));

    public static AccessPolicy Parse(string model, string policy, string modelName = "model", string policyName = "policy")
    {
        var sections = ReadModel(model, modelName);
        string Required(string section, string key) =>
            sections.TryGetValue(section, out var entries) && entries.TryGetValue(key, out var value)
                ? value.Text
                : throw new FormatException($"{modelName}: [{section}] needs '{key} = ...'");

        var requestFields = SplitFields(Required("request_definition", "r"));
        var policyFields = SplitFields(Required("policy_definition", "p"));
        var roleFunctions = new HashSet<string>(StringComparer.Ordinal);
        if (sections.TryGetValue("role_definition", out var roleDefinitions))
        {
            foreach (var (name, definition) in roleDefinitions)
            {
                if (SplitFields(definition.Text).Length != 2)
                {
                    throw new FormatException($"{modelName} line {definition.Line}: only two-argument roles ('{name} = _, _') are supported");
                }

                roleFunctions.Add(name);
            }
        }

        var effectText = Required("policy_effect", "e").Replace(" ", string.Empty, StringComparison.Ordinal);
        var effect = effectText switch
        {
            "some(where(p.eft==allow))" => Effect.AnyAllow,
            "!some(where(p.eft==deny))" => Effect.NoDeny,
            "some(where(p.eft==allow))&&!some(where(p.eft==deny))" => Effect.AnyAllowAndNoDeny,
            "priority(p.eft)||deny" => Effect.FirstMatch,
            _ => throw new FormatException($"{modelName} line {sections["policy_effect"]["e"].Line}: unsupported policy effect '{Required("policy_effect", "e")}'"),
        };

        MatcherExpression matcher;
        try
        {
            matcher = MatcherExpression.Parse(
                Required("matchers", "m"),
                (section, field) => Array.IndexOf(section == 'r' ? requestFields : policyFields, field) is var i and >= 0 ? i : null,
                roleFunctions);
        }
        catch (FormatException ex)
        {
            throw new FormatException($"{modelName} line {sections["matchers"]["m"].Line}: {ex.Message}", ex);
        }

        var rules = new List<string[]>();
        var roles = roleFunctions.ToDictionary(f => f, _ => new Dictionary<string, List<string>>(StringComparer.Ordinal), StringComparer.Ordinal);
        var lineNumber = 0;
        foreach (var line in policy.Split('\n'))
        {
            lineNumber++;
            var trimmed = line.Trim();
            if (trimmed.Length == 0 || trimmed[0] == '#')
            {
                continue;
            }

            var fields = SplitCsv(trimmed, policyName, lineNumber);
            var kind = fields[0];
            var values = fields[1..];
            if (kind == "p")
            {
                if (values.Length != policyFields.Length)
                {
                    throw new FormatException($"{policyName} line {lineNumber}: a 'p' rule needs {policyFields.Length} values ({string.Join(", ", policyFields)}), found {values.Length}");
                }

                var eft = Array.IndexOf(policyFields, "eft");
                if (eft >= 0 && values[eft] is not "allow" and not "deny")
                {
                    throw new FormatException($"{policyName} line {lineNumber}: eft must be allow or deny, not '{values[eft]}'");
                }

                rules.Add(values);
            }
            else if (roles.TryGetValue(kind, out var graph))
            {
                if (values.Length != 2)
                {
                    throw new FormatException($"{policyName} line {lineNumber}: a '{kind}' line needs 2 values (member, role), found {values.Length}");
                }

                if (!graph.TryGetValue(values[0], out var direct))
                {
                    graph[values[0]] = direct = [];
                }

                direct.Add(values[1]);
            }
            else
            {
                throw new FormatException($"{policyName} line {lineNumber}: '{kind}' is neither 'p' nor a role of the model's [role_definition]");
            }
        }

        var loaded = new AccessPolicy(requestFields, policyFields, effect, matcher, rules, roles);
        loaded.DryRun(modelName, sections["matchers"]["m"].Line);
        return loaded;
    }

    /// <summary>Whether the request (values in the model's request field order) is allowed.</summary>
    public bool Enforce(params string[] request)
    {
        if (request.Length != _requestFields.Length)
        {
            throw new ArgumentException($"the model's requests have {_requestFields.Length} fields", nameof(request));
        }

        var anyAllow = false;
        foreach (var rule in _rules)
        {
            if (!_matcher.Matches(new Scope(this, request, rule)))
            {
                continue;
            }

            var allow = _effectField < 0 || rule[_effectField] == "allow";
            switch (_effect)
            {
                case Effect.FirstMatch:
                    return allow;
                case Effect.AnyAllow when allow:
                    return true;
                case Effect.NoDeny or Effect.AnyAllowAndNoDeny when !allow:
                    return false;
            }

            anyAllow |= allow;
        }

        return _effect switch
        {
            Effect.NoDeny => true,
            Effect.AnyAllowAndNoDeny => anyAllow,
            _ => false,
        };
    }

    /// <summary>Evaluates the matcher once, so a matcher that compares a string where a condition belongs fails at load.</summary>
    private void DryRun(string modelName, int line)
    {
        try
        {
            var request = new string[_requestFields.Length];
            Array.Fill(request, string.Empty);
            _ = _matcher.Matches(new Scope(this, request, _rules.Count > 0 ? _rules[0] : new string[_policyFields.Length].Select(_ => string.Empty).ToArray()));
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or System.Text.RegularExpressions.RegexMatchTimeoutException)
        {
            throw new FormatException($"{modelName} line {line}: {ex.Message}", ex);
        }
    }

    private bool HasRole(string function, string name, string role)
    {
        if (name == role)
        {
            return true;
        }

        var graph = _roles[function];
        var seen = new HashSet<string>(StringComparer.Ordinal) { name };
        var pending = new Queue<string>([name]);
        while (pending.TryDequeue(out var next))
        {
            if (!graph.TryGetValue(next, out var direct))
            {
                continue;
            }

            foreach (var parent in direct)
            {
                if (parent == role)
                {
                    return true;
                }

                if (seen.Add(parent))
                {
                    pending.Enqueue(parent);
                }
            }
        }

        return false;
    }

    private static string[] SplitFields(string text) => text.Split(',', StringSplitOptions.TrimEntries);

    private static string[] SplitCsv(string line, string name, int lineNumber)
    {
        var fields = new List<string>();
        var i = 0;
        while (true)
        {
            while (i < line.Length && line[i] == ' ')
            {
                i++;
            }

            string field;
            if (i < line.Length && line[i] == '"')
            {
                var end = line.IndexOf('"', i + 1);
                if (end < 0)
                {
                    throw new FormatException($"{name} line {lineNumber}: unterminated quote");
                }

                field = line[(i + 1)..end];
                i = line.IndexOf(',', end) is var comma and >= 0 ? comma : line.Length;
            }
            else
            {
                var comma = line.IndexOf(',', i);
                var end = comma < 0 ? line.Length : comma;
                field = line[i..end].Trim();
                i = end;
            }

            fields.Add(field);
            if (i >= line.Length)
            {
                return [.. fields];
            }

            i++; // the comma
        }
    }

    private static Dictionary<string, Dictionary<string, (string Text, int Line)>> ReadModel(string model, string name)
    {
        var sections = new Dictionary<string, Dictionary<string, (string Text, int Line)>>(StringComparer.Ordinal);
        Dictionary<string, (string Text, int Line)>? current = null;
        var lineNumber = 0;
        foreach (var raw in model.Split('\n'))
        {
            lineNumber++;
            var line = raw.Trim();
            if (line.Length == 0 || line[0] is '#' or ';')
            {
                continue;
            }

            if (line[0] == '[' && line[^1] == ']')
            {
                var section = line[1..^1].Trim();
                if (section is not ("request_definition" or "policy_definition" or "role_definition" or "policy_effect" or "matchers"))
                {
                    throw new FormatException($"{name} line {lineNumber}: unsupported section [{section}]");
                }

                current = sections.TryGetValue(section, out var existing) ? existing : sections[section] = new(StringComparer.Ordinal);
                continue;
            }

            var equals = line.IndexOf('=', StringComparison.Ordinal);
            if (current is null || equals <= 0)
            {
                throw new FormatException($"{name} line {lineNumber}: expected '[section]' or 'key = value'");
            }

            var key = line[..equals].Trim();
            var allowed = ReferenceEquals(current, sections.GetValueOrDefault("role_definition")) ? key.StartsWith('g') : key is "r" or "p" or "e" or "m";
            if (!allowed)
            {
                throw new FormatException($"{name} line {lineNumber}: unsupported definition '{key}' (one r, p, e and m; roles g, g2, ...)");
            }

            current[key] = (line[(equals + 1)..].Trim(), lineNumber);
        }

        return sections;
    }

    private readonly struct Scope(AccessPolicy policy, string[] request, string[] rule) : MatcherExpression.IScope
    {
        public string Field(char section, int index) => section == 'r' ? request[index] : rule[index];

        public bool HasRole(string function, string name, string role) => policy.HasRole(function, name, role);
    }
}
