namespace Sluice.TestKit;

/// <summary>Authorization files for tests of <c>tls.client.authz</c>.</summary>
public static class AuthorizationFiles
{
    /// <summary>Liftbridge's documented ACL model (documentation/authentication_authorization.md); line 8 is the matcher.</summary>
    public const string LiftbridgeModel = """
        [request_definition]
        r = sub, obj, act
        [policy_definition]
        p = sub, obj, act
        [policy_effect]
        e = some(where (p.eft == allow))
        [matchers]
        m = r.sub == p.sub && r.obj == p.obj && r.act == p.act
        """;
}
