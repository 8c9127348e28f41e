using System.Collections.Concurrent;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Grpc;
using Sluice.Server.Configuration;
using Sluice.Server.Grpc;

namespace Sluice.Server.Authorization;

/// <summary>
/// Liftbridge's authorization (<c>tls.client.authz.*</c>): each API call is checked as (subject, object, action) =
/// (the client certificate's CN, the stream, or the subject for PublishToSubject, or <c>*</c> for FetchMetadata, the
/// RPC name) against a Casbin model and CSV policy. Denials answer PERMISSION_DENIED. <see cref="Reload"/> (SIGHUP)
/// reads the files again; a file that does not load keeps the previous policy and logs why.
/// </summary>
/// <remarks>
/// Calls from other brokers of the cluster (a client certificate that names a registered broker's host) are not checked:
/// they carry a client's publish that the broker it reached has already checked.
/// </remarks>
public sealed partial class Authorizer
{
    /// <summary>Decisions kept per (subject, object, action) until the next reload; past this many, the cache starts over.</summary>
    private const int CacheLimit = 100_000;

    private readonly string _modelPath;
    private readonly string _policyPath;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<(string Subject, string Object, string Action), bool> _decisions = new();
    private volatile AccessPolicy _policy;

    private Authorizer(string modelPath, string policyPath, AccessPolicy policy, ILogger logger)
    {
        _modelPath = modelPath;
        _policyPath = policyPath;
        _policy = policy;
        _logger = logger;
    }

    /// <summary>Set in a cluster: whether a client certificate is another broker's.</summary>
    internal Func<X509Certificate2, bool>? IsBrokerCertificate { get; set; }

    /// <summary>How many policy rules are in force.</summary>
    public int RuleCount => _policy.RuleCount;

    /// <summary>Loads the model and policy named by <paramref name="tls"/>, or returns null when authorization is off.</summary>
    /// <exception cref="ConfigurationException">Authorization is on but cannot work: no client certificates, or a file that does not load.</exception>
    internal static Authorizer? Create(TlsOptions tls, ILoggerFactory loggers)
    {
        if (!tls.ClientAuthzEnabled)
        {
            return null;
        }

        if (!tls.ClientAuthEnabled)
        {
            // (Liftbridge reads this flag from tls.client.auth.enabled, so there the two cannot differ; Sluice reads its own key.)
            throw new ConfigurationException("Configuration setting \"tls.client.authz.enabled\" is true but client certificates are off: the subject is the client certificate's CN, so set tls.client.auth.enabled (and tls.cert, tls.key, tls.client.auth.ca)")
            { Key = "tls.client.authz.enabled" };
        }

        foreach (var (key, path) in new[] { ("tls.client.authz.model", tls.ClientAuthzModel), ("tls.client.authz.policy", tls.ClientAuthzPolicy) })
        {
            if (path.Length == 0)
            {
                throw new ConfigurationException($"Configuration setting \"{key}\" is missing: tls.client.authz.enabled needs a Casbin model file and a CSV policy file") { Key = key };
            }
        }

        AccessPolicy policy;
        try
        {
            policy = LoadChecked(tls.ClientAuthzModel, tls.ClientAuthzPolicy);
        }
        catch (Exception ex) when (ex is FormatException or IOException or UnauthorizedAccessException)
        {
            throw new ConfigurationException($"The authorization files do not load: {ex.Message}") { Key = "tls.client.authz.policy" };
        }

        var authorizer = new Authorizer(tls.ClientAuthzModel, tls.ClientAuthzPolicy, policy, loggers.CreateLogger<Authorizer>());
        authorizer.LogLoaded(policy.RuleCount, tls.ClientAuthzPolicy);
        return authorizer;
    }

    /// <summary>Reads the model and policy again (SIGHUP). On failure the policy in force stays and the reason is logged.</summary>
    /// <returns>Whether the new files are in force.</returns>
    public bool Reload()
    {
        try
        {
            var policy = LoadChecked(_modelPath, _policyPath);
            _policy = policy;
            _decisions.Clear();
            LogLoaded(policy.RuleCount, _policyPath);
            return true;
        }
        catch (Exception ex) when (ex is FormatException or IOException or UnauthorizedAccessException)
        {
            LogReloadFailed(ex.Message);
            return false;
        }
    }

    private static AccessPolicy LoadChecked(string modelPath, string policyPath)
    {
        var policy = AccessPolicy.Load(modelPath, policyPath);
        return policy.RequestFieldCount == 3
            ? policy
            : throw new FormatException($"{Path.GetFileName(modelPath)}: the request definition must have 3 fields (subject, object, action), as Liftbridge's requests do; it has {policy.RequestFieldCount}");
    }

    /// <summary>Throws PERMISSION_DENIED unless the caller may perform <paramref name="action"/> on <paramref name="resource"/>.</summary>
    internal void Check(GrpcCallContext context, string resource, string action)
    {
        if (Denial(Identify(context.ClientCertificate), resource, action) is { } reason)
        {
            throw new GrpcException(GrpcStatusCode.PermissionDenied, reason);
        }
    }

    /// <summary>Who calls: identified once per call (a PublishAsync stream checks each of its messages with it).</summary>
    internal Caller Identify(X509Certificate2? certificate)
    {
        if (certificate is null)
        {
            return new Caller(null, "no client certificate: authorization needs one");
        }

        return IsBrokerCertificate is { } isBroker && isBroker(certificate)
            ? new Caller(null, null)
            : new Caller(certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false), null);
    }

    /// <summary>Null when allowed, else the reason given to the caller.</summary>
    internal string? Denial(Caller caller, string resource, string action)
    {
        if (caller.Refusal is { } refusal)
        {
            return refusal;
        }

        if (caller.Subject is not { } subject)
        {
            return null; // another broker
        }

        return IsAllowed(subject, resource, action) ? null : $"client '{subject}' is not authorized to {action} on '{resource}'";
    }

    /// <summary>The policy's decision for one request, cached until the next reload.</summary>
    public bool IsAllowed(string subject, string resource, string action)
    {
        var key = (subject, resource, action);
        if (_decisions.TryGetValue(key, out var allowed))
        {
            return allowed;
        }

        var policy = _policy;
        try
        {
            allowed = policy.Enforce(subject, resource, action);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or System.Text.RegularExpressions.RegexMatchTimeoutException)
        {
            LogEvaluationFailed(subject, resource, action, ex.Message);
            return false; // not cached: a later reload may fix the matcher
        }

        if (_decisions.Count >= CacheLimit)
        {
            _decisions.Clear();
        }

        if (ReferenceEquals(policy, _policy))
        {
            _decisions[key] = allowed;
        }

        return allowed;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Authorization: {Rules} policy rules in force from {Path}")]
    private partial void LogLoaded(int rules, string path);

    [LoggerMessage(Level = LogLevel.Error, Message = "Authorization: the policy was not reloaded, the previous one stays in force: {Reason}")]
    private partial void LogReloadFailed(string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Authorization: evaluating ({Subject}, {Resource}, {Action}) failed, denied: {Reason}")]
    private partial void LogEvaluationFailed(string subject, string resource, string action, string reason);

    /// <summary>A caller: a certificate's CN, or a broker (no subject, no refusal), or refused outright.</summary>
    internal readonly record struct Caller(string? Subject, string? Refusal);
}
