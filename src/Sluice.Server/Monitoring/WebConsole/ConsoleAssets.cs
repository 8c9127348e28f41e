using System.Collections.Frozen;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;

namespace Sluice.Server.Monitoring.WebConsole;

/// <summary>
/// The console's files (HTML, CSS, JavaScript, an icon), embedded in the assembly under <c>console/</c> and read once at
/// start. Each is served with its content type, a strong ETag (a revalidation answers 304) and the console's security
/// headers. No file system, no reflection: it works the same trimmed or compiled ahead of time.
/// </summary>
internal sealed class ConsoleAssets
{
    private const string Prefix = "console/";

    /// <summary>
    /// Only the console's own files run or style the page; it talks only to its own origin and cannot be framed, and
    /// forms cannot submit anywhere (the actions are sent by script with the CSRF header).
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

    private readonly FrozenDictionary<string, Asset> _assets;

    private ConsoleAssets(FrozenDictionary<string, Asset> assets) => _assets = assets;

    private sealed record Asset(byte[] Content, string ContentType, string ETag);

    public static ConsoleAssets Load()
    {
        var assembly = typeof(ConsoleAssets).Assembly;
        var assets = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames())
        {
            if (!name.StartsWith(Prefix, StringComparison.Ordinal))
            {
                continue;
            }

            using var stream = assembly.GetManifestResourceStream(name)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var content = copy.ToArray();
            var etag = "\"" + Convert.ToHexStringLower(SHA256.HashData(content).AsSpan(0, 12)) + "\"";
            assets[name[Prefix.Length..]] = new Asset(content, ContentTypeOf(name), etag);
        }

        if (!assets.ContainsKey("index.html"))
        {
            throw new InvalidOperationException("the web console's files are missing from Sluice.Server (console/index.html is not embedded)");
        }

        return new ConsoleAssets(assets.ToFrozenDictionary(StringComparer.Ordinal));
    }

    public bool Contains(string file) => _assets.ContainsKey(file);

    /// <summary>Writes the file, or 304 when the client's copy is current, or 404.</summary>
    public Task ServeAsync(HttpContext http, string file)
    {
        if (!_assets.TryGetValue(file, out var asset))
        {
            http.Response.StatusCode = StatusCodes.Status404NotFound;
            return http.Response.WriteAsync("not found\n");
        }

        var headers = http.Response.Headers;
        AddSecurityHeaders(headers);
        headers.ETag = asset.ETag;
        headers.CacheControl = "no-cache"; // revalidate every load (a 304 costs a round trip, never a stale console after an upgrade)
        if (http.Request.Headers.IfNoneMatch.Any(v => v is not null && v.Split(',').Any(tag => tag.Trim() == asset.ETag || tag.Trim() == "*")))
        {
            http.Response.StatusCode = StatusCodes.Status304NotModified;
            return Task.CompletedTask;
        }

        http.Response.ContentType = asset.ContentType;
        http.Response.ContentLength = asset.Content.Length;
        return HttpMethods.IsHead(http.Request.Method) ? Task.CompletedTask : http.Response.Body.WriteAsync(asset.Content).AsTask();
    }

    public static void AddSecurityHeaders(IHeaderDictionary headers)
    {
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers.XFrameOptions = "DENY";
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        headers["Cross-Origin-Resource-Policy"] = "same-origin";
    }

    private static string ContentTypeOf(string name) => Path.GetExtension(name) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".svg" => "image/svg+xml",
        ".png" => "image/png",
        _ => "application/octet-stream",
    };
}
