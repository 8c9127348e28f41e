using Sluice.Server.Authorization;

using Sluice.TestKit;

namespace Sluice.Server.Tests.Authorization;

/// <summary>The Casbin model and CSV policy evaluation behind <c>tls.client.authz</c>.</summary>
public sealed class AccessPolicyTests
{
    private const string LiftbridgePolicy = """
        p, client1, *, FetchMetadata
        p, client1, foo, CreateStream
        p, client1, foo, DeleteStream
        p, client1, foo, PauseStream
        p, client1, foo, Subscribe
        p, client1, foo, PublishToSubject
        p, client1, foo, Publish
        p, client1, __cursors, Publish
        p, client1, foo, SetStreamReadonly
        p, client1, foo, FetchPartitionMetadata
        p, client1, foo, SetCursor
        p, client1, foo, FetchCursor
        """;

    [Fact]
    public void Liftbridge_example_policy_allows_exactly_its_rules()
    {
        var policy = AccessPolicy.Parse(AuthorizationFiles.LiftbridgeModel, LiftbridgePolicy);
        Assert.Equal(12, policy.RuleCount);
        Assert.True(policy.Enforce("client1", "*", "FetchMetadata"));
        Assert.True(policy.Enforce("client1", "foo", "Publish"));
        Assert.True(policy.Enforce("client1", "__cursors", "Publish"));
        Assert.False(policy.Enforce("client1", "bar", "Publish"));
        Assert.False(policy.Enforce("client1", "foo", "Publish ")); // exact match, no trimming of the request
        Assert.False(policy.Enforce("client2", "foo", "Publish"));
        Assert.False(policy.Enforce("client1", "foo", "FetchMetadata")); // "*" is a literal object in this model
    }

    [Fact]
    public void Roles_keyMatch_and_deny_rules_work_as_in_Casbin()
    {
        const string model = """
            [request_definition]
            r = sub, obj, act
            [policy_definition]
            p = sub, obj, act, eft
            [role_definition]
            g = _, _
            [policy_effect]
            e = some(where (p.eft == allow)) && !some(where (p.eft == deny))
            [matchers]
            m = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && (r.act == p.act || p.act == "*")
            """;
        const string policy = """
            # operators may do anything on orders streams, but not delete the audit one
            p, operators, orders*, *, allow
            p, operators, orders-audit, DeleteStream, deny
            p, "reader", "*", "Subscribe", allow
            g, alice, operators
            g, bob, alice
            """;
        var acl = AccessPolicy.Parse(model, policy);
        Assert.True(acl.Enforce("alice", "orders-eu", "Publish"));
        Assert.True(acl.Enforce("bob", "orders-eu", "DeleteStream")); // through alice, transitively
        Assert.False(acl.Enforce("bob", "orders-audit", "DeleteStream")); // a deny rule wins
        Assert.True(acl.Enforce("alice", "orders-audit", "Publish"));
        Assert.False(acl.Enforce("alice", "invoices", "Publish"));
        Assert.True(acl.Enforce("reader", "anything", "Subscribe")); // quoted fields
        Assert.False(acl.Enforce("reader", "anything", "Publish"));
        Assert.False(acl.Enforce("carol", "orders-eu", "Publish"));
    }

    [Fact]
    public void Priority_effect_takes_the_first_matching_rule()
    {
        const string model = """
            [request_definition]
            r = sub, obj, act
            [policy_definition]
            p = sub, obj, act, eft
            [policy_effect]
            e = priority(p.eft) || deny
            [matchers]
            m = r.sub == p.sub && regexMatch(r.obj, p.obj) && r.act == p.act
            """;
        var acl = AccessPolicy.Parse(model, """
            p, app, ^secret-.*$, Publish, deny
            p, app, ^.*$, Publish, allow
            """);
        Assert.False(acl.Enforce("app", "secret-keys", "Publish"));
        Assert.True(acl.Enforce("app", "public", "Publish"));
        Assert.False(acl.Enforce("app", "public", "Subscribe")); // nothing matched: denied
    }

    [Fact]
    public void An_empty_policy_allows_nothing_and_a_deny_only_model_allows_everything_else()
    {
        Assert.False(AccessPolicy.Parse(AuthorizationFiles.LiftbridgeModel, "").Enforce("client1", "*", "FetchMetadata"));
        var denyOnly = AuthorizationFiles.LiftbridgeModel.Replace("some(where (p.eft == allow))", "!some(where (p.eft == deny))", StringComparison.Ordinal)
            .Replace("p = sub, obj, act", "p = sub, obj, act, eft", StringComparison.Ordinal);
        var acl = AccessPolicy.Parse(denyOnly, "p, client1, foo, Publish, deny");
        Assert.False(acl.Enforce("client1", "foo", "Publish"));
        Assert.True(acl.Enforce("client1", "bar", "Publish"));
    }

    [Theory]
    [InlineData("[matchers]\nm = r.sub == p.sub", "[request_definition] needs 'r = ...'")] // a section missing
    [InlineData(AuthorizationFiles.LiftbridgeModel + "\n[extra]\nx = 1", "unsupported section [extra]")]
    [InlineData("[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub == p.sub && globMatch(r.obj, p.obj)", "line 8: unsupported matcher function 'globMatch'")]
    [InlineData("[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[policy_effect]\ne = max(p.eft)\n[matchers]\nm = r.sub == p.sub", "line 6: unsupported policy effect")]
    [InlineData("[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.user == p.sub", "'r.user' is not a field of the request definition")]
    [InlineData("[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub", "a condition must be true or false")]
    [InlineData("[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = (r.sub == p.sub", "expected ')'")]
    public void A_model_it_cannot_evaluate_is_refused_with_the_reason(string model, string reason)
    {
        var error = Assert.Throws<FormatException>(() => AccessPolicy.Parse(model, "p, a, b, c"));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("p, client1, foo", "line 1: a 'p' rule needs 3 values (sub, obj, act), found 2")]
    [InlineData("p, a, b, c\n\n# fine\nx, a, b", "line 4: 'x' is neither 'p' nor a role")]
    [InlineData("g, alice, admin", "line 1: 'g' is neither 'p' nor a role")] // the ACL model has no roles
    [InlineData("p, \"client1, foo, Publish", "line 1: unterminated quote")]
    public void A_policy_line_it_cannot_read_is_refused_with_its_line(string policy, string reason)
    {
        var error = Assert.Throws<FormatException>(() => AccessPolicy.Parse(AuthorizationFiles.LiftbridgeModel, policy, "model.conf", "policy.csv"));
        Assert.Contains("policy.csv " + reason, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("foo", "foo", true)]
    [InlineData("foo.bar", "foo*", true)]
    [InlineData("fo", "foo*", false)]
    [InlineData("foo", "bar", false)]
    public void KeyMatch(string key, string pattern, bool matches) => Assert.Equal(matches, MatcherExpression.KeyMatch(key, pattern));

    [Theory]
    [InlineData("/streams/orders", "/streams/:name", true)]
    [InlineData("/streams/orders/0", "/streams/:name", false)]
    [InlineData("/streams/orders/0", "/streams/*", true)]
    public void KeyMatch2(string key, string pattern, bool matches) => Assert.Equal(matches, MatcherExpression.KeyMatch2(key, pattern));
}
