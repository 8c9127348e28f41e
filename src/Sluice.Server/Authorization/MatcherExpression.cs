using System.Text;
using System.Text.RegularExpressions;

namespace Sluice.Server.Authorization;

/// <summary>
/// A Casbin matcher (the <c>m = ...</c> line of a model), parsed once: <c>==</c>, <c>!=</c>, <c>&amp;&amp;</c>,
/// <c>||</c>, <c>!</c>, parentheses, quoted strings, the request and policy fields (<c>r.sub</c>, <c>p.obj</c>), and
/// the functions ACL and RBAC models use: <c>keyMatch</c>, <c>keyMatch2</c>, <c>regexMatch</c> and the role
/// functions (<c>g</c>, <c>g2</c> ...). Anything else is refused when the model loads, never at a call.
/// </summary>
internal sealed class MatcherExpression
{
    private readonly Node _root;

    private MatcherExpression(Node root) => _root = root;

    /// <summary>What a matcher reads while it is evaluated against one request and one policy rule.</summary>
    internal interface IScope
    {
        string Field(char section, int index);

        bool HasRole(string function, string name, string role);
    }

    /// <summary>Parses <paramref name="text"/>; fields resolve through <paramref name="fieldIndex"/> ("r.sub" → index).</summary>
    /// <exception cref="FormatException">The matcher uses something this evaluator does not support, or is malformed.</exception>
    public static MatcherExpression Parse(string text, Func<char, string, int?> fieldIndex, ISet<string> roleFunctions)
    {
        var parser = new Parser(Tokenize(text), fieldIndex, roleFunctions);
        var root = parser.ParseOr();
        parser.ExpectEnd();
        return new MatcherExpression(root);
    }

    public bool Matches(IScope scope) => AsBool(_root.Evaluate(scope));

    // ------------------------------------------------------------------ syntax tree

    private abstract class Node
    {
        public abstract object Evaluate(IScope scope); // string or bool
    }

    private sealed class Literal(string value) : Node
    {
        public override object Evaluate(IScope scope) => value;
    }

    private sealed class Field(char section, int index) : Node
    {
        public override object Evaluate(IScope scope) => scope.Field(section, index);
    }

    private sealed class Not(Node operand) : Node
    {
        public override object Evaluate(IScope scope) => !AsBool(operand.Evaluate(scope));
    }

    private sealed class Binary(string op, Node left, Node right) : Node
    {
        public override object Evaluate(IScope scope) => op switch
        {
            "&&" => AsBool(left.Evaluate(scope)) && AsBool(right.Evaluate(scope)),
            "||" => AsBool(left.Evaluate(scope)) || AsBool(right.Evaluate(scope)),
            "==" => Equals(left.Evaluate(scope), right.Evaluate(scope)),
            _ => !Equals(left.Evaluate(scope), right.Evaluate(scope)),
        };
    }

    private sealed class Call(string name, Node[] arguments) : Node
    {
        public override object Evaluate(IScope scope)
        {
            var values = Array.ConvertAll(arguments, a => a.Evaluate(scope) as string ?? throw new InvalidOperationException($"{name} takes strings"));
            return name switch
            {
                "keyMatch" => KeyMatch(values[0], values[1]),
                "keyMatch2" => KeyMatch2(values[0], values[1]),
                "regexMatch" => Regex.IsMatch(values[0], values[1], RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100)),
                _ => scope.HasRole(name, values[0], values[1]),
            };
        }
    }

    private static bool AsBool(object value) => value as bool? ?? throw new InvalidOperationException("a condition must be true or false, not a string");

    /// <summary>Casbin's keyMatch: a <c>*</c> in the pattern matches the rest of the key from its position.</summary>
    internal static bool KeyMatch(string key, string pattern)
    {
        var star = pattern.IndexOf('*', StringComparison.Ordinal);
        return star < 0 ? key == pattern : key.AsSpan().StartsWith(pattern.AsSpan(0, star), StringComparison.Ordinal);
    }

    /// <summary>Casbin's keyMatch2: <c>*</c> matches anything, <c>:name</c> one path segment.</summary>
    internal static bool KeyMatch2(string key, string pattern)
    {
        var regex = new StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            if (pattern[i] == '*')
            {
                regex.Append(".*");
            }
            else if (pattern[i] == ':' && (i == 0 || pattern[i - 1] == '/'))
            {
                while (i + 1 < pattern.Length && pattern[i + 1] != '/')
                {
                    i++;
                }

                regex.Append("[^/]+");
            }
            else
            {
                regex.Append(Regex.Escape(pattern[i].ToString()));
            }
        }

        return Regex.IsMatch(key, regex.Append('$').ToString(), RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100));
    }

    // ------------------------------------------------------------------ tokens and parser

    private static List<string> Tokenize(string text)
    {
        var tokens = new List<string>();
        for (var i = 0; i < text.Length;)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
            }
            else if (c is '"' or '\'')
            {
                var end = text.IndexOf(c, i + 1);
                if (end < 0)
                {
                    throw new FormatException($"unterminated string at column {i + 1}");
                }

                tokens.Add(text[i..(end + 1)]);
                i = end + 1;
            }
            else if (i + 1 < text.Length && text.Substring(i, 2) is "==" or "!=" or "&&" or "||")
            {
                tokens.Add(text.Substring(i, 2));
                i += 2;
            }
            else if (c is '(' or ')' or ',' or '!')
            {
                tokens.Add(c.ToString());
                i++;
            }
            else if (char.IsLetterOrDigit(c) || c == '_')
            {
                var start = i;
                while (i < text.Length && (char.IsLetterOrDigit(text[i]) || text[i] is '_' or '.'))
                {
                    i++;
                }

                tokens.Add(text[start..i]);
            }
            else
            {
                throw new FormatException($"unsupported character '{c}' at column {i + 1}");
            }
        }

        return tokens;
    }

    private sealed class Parser(List<string> tokens, Func<char, string, int?> fieldIndex, ISet<string> roleFunctions)
    {
        private int _next;

        private string? Peek => _next < tokens.Count ? tokens[_next] : null;

        public void ExpectEnd()
        {
            if (Peek is { } extra)
            {
                throw new FormatException($"unexpected '{extra}'");
            }
        }

        public Node ParseOr()
        {
            var left = ParseAnd();
            while (Peek == "||")
            {
                _next++;
                left = new Binary("||", left, ParseAnd());
            }

            return left;
        }

        private Node ParseAnd()
        {
            var left = ParseComparison();
            while (Peek == "&&")
            {
                _next++;
                left = new Binary("&&", left, ParseComparison());
            }

            return left;
        }

        private Node ParseComparison()
        {
            var left = ParseUnary();
            if (Peek is "==" or "!=")
            {
                var op = tokens[_next++];
                return new Binary(op, left, ParseUnary());
            }

            return left;
        }

        private Node ParseUnary()
        {
            var token = Peek ?? throw new FormatException("the matcher ends too early");
            _next++;
            switch (token)
            {
                case "!":
                    return new Not(ParseUnary());
                case "(":
                    var inner = ParseOr();
                    Expect(")");
                    return inner;
                case ['"' or '\'', ..]:
                    return new Literal(token[1..^1]);
            }

            if (Peek == "(")
            {
                _next++;
                var arguments = new List<Node>();
                while (Peek != ")")
                {
                    arguments.Add(ParseOr());
                    if (Peek == ",")
                    {
                        _next++;
                    }
                    else if (Peek != ")")
                    {
                        throw new FormatException($"expected ',' or ')' in the arguments of {token}");
                    }
                }

                _next++;
                var known = token is "keyMatch" or "keyMatch2" or "regexMatch" || roleFunctions.Contains(token);
                if (!known)
                {
                    throw new FormatException($"unsupported matcher function '{token}' (supported: keyMatch, keyMatch2, regexMatch and the role functions of [role_definition])");
                }

                if (arguments.Count != 2)
                {
                    throw new FormatException($"{token} takes 2 arguments, not {arguments.Count} (role domains are not supported)");
                }

                return new Call(token, [.. arguments]);
            }

            if (token.Length > 2 && token[1] == '.' && token[0] is 'r' or 'p')
            {
                return fieldIndex(token[0], token[2..]) is { } index
                    ? new Field(token[0], index)
                    : throw new FormatException($"'{token}' is not a field of the {(token[0] == 'r' ? "request" : "policy")} definition");
            }

            throw new FormatException($"unsupported term '{token}'");
        }

        private void Expect(string token)
        {
            if (Peek != token)
            {
                throw new FormatException($"expected '{token}'");
            }

            _next++;
        }
    }
}
