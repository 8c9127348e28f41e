namespace Sluice.Nats.Protocol;

/// <summary>Checks subjects and queue groups before they reach the wire, where a space would split the command.</summary>
internal static class SubjectValidation
{
    public static void Subject(string subject, string paramName, bool allowWildcards)
    {
        ArgumentException.ThrowIfNullOrEmpty(subject, paramName);
        foreach (var c in subject)
        {
            if (c is ' ' or '\t' or '\r' or '\n')
            {
                throw new ArgumentException($"Subject '{subject}' must not contain whitespace.", paramName);
            }

            if (!allowWildcards && c is '*' or '>')
            {
                throw new ArgumentException($"Cannot publish to the wildcard subject '{subject}'.", paramName);
            }
        }

        if (subject[0] == '.' || subject[^1] == '.' || subject.Contains("..", StringComparison.Ordinal))
        {
            throw new ArgumentException($"Subject '{subject}' has an empty token.", paramName);
        }
    }

    public static void QueueGroup(string? queueGroup, string paramName)
    {
        if (queueGroup is null)
        {
            return;
        }

        ArgumentException.ThrowIfNullOrEmpty(queueGroup, paramName);
        if (queueGroup.AsSpan().IndexOfAny(" \t\r\n") >= 0)
        {
            throw new ArgumentException($"Queue group '{queueGroup}' must not contain whitespace.", paramName);
        }
    }
}
