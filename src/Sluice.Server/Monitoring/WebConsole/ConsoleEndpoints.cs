using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Server.Api;
using Sluice.Server.Hosting;

namespace Sluice.Server.Monitoring.WebConsole;

/// <summary>
/// The web console on the monitoring port: its files under /console/ (/ redirects there) and its three actions, which
/// run through the same path as the gRPC API (<see cref="SluiceServer.StreamAdmin"/>: the broker alone, or the controller
/// in a cluster) and, with <c>tls.client.authz</c>, the same policy, checked against the browser's client certificate:
/// <list type="bullet">
/// <item>POST /v1/streams {name, subject, partitions, replication_factor}: CreateStream on the name;</item>
/// <item>DELETE /v1/streams/{name}: DeleteStream on the name;</item>
/// <item>POST /v1/streams/{name}/pause {partitions?: [ids], resume_all?: bool}: PauseStream on the name.</item>
/// </list>
/// Cross-site requests are refused (<see cref="CrossSiteRefusal"/>). Handlers are plain <see cref="RequestDelegate"/>s that
/// parse JSON with <see cref="JsonDocument"/>: nothing is bound by reflection.
/// </summary>
internal static partial class ConsoleEndpoints
{
    /// <summary>The double-submit token: a SameSite=Strict cookie the console's script copies into <see cref="CsrfHeader"/>.</summary>
    public const string CsrfCookie = "sluice_csrf";

    public const string CsrfHeader = "X-Sluice-Csrf";

    /// <summary>An action's body is a few names and numbers; anything larger is refused before it is read.</summary>
    private const int MaxBodyBytes = 16 * 1024;

    public static void Map(WebApplication app, Func<SluiceServer?> server, Func<string> notReady)
    {
        var assets = ConsoleAssets.Load();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Sluice.Server.Monitoring.WebConsole");
        app.MapGet("/", http => Redirect(http));
        app.MapGet("/console/{file?}", http =>
        {
            if (!http.Request.Path.Value!.EndsWith('/') && http.Request.RouteValues["file"] is null)
            {
                return Redirect(http); // "/console": the page's relative links need the slash
            }

            var file = http.Request.RouteValues["file"] as string ?? "index.html";
            if (file == "index.html")
            {
                IssueToken(http);
            }

            return assets.ServeAsync(http, file);
        });

        app.MapPost("/v1/streams", http => ActAsync(http, server, notReady, logger, "CreateStream", CreateAsync));
        app.MapDelete("/v1/streams/{name}", http => ActAsync(http, server, notReady, logger, "DeleteStream", DeleteAsync));
        app.MapPost("/v1/streams/{name}/pause", http => ActAsync(http, server, notReady, logger, "PauseStream", PauseAsync));
    }

    private static Task Redirect(HttpContext http)
    {
        http.Response.Redirect("/console/");
        return Task.CompletedTask;
    }

    /// <summary>Sets the token cookie unless the browser already has a well-formed one (several brokers on one host share it: cookies ignore ports).</summary>
    private static void IssueToken(HttpContext http)
    {
        if (http.Request.Cookies.TryGetValue(CsrfCookie, out var existing) && IsWellFormed(existing))
        {
            return;
        }

        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        http.Response.Cookies.Append(CsrfCookie, token, new CookieOptions
        {
            Path = "/",
            SameSite = SameSiteMode.Strict,
            Secure = http.Request.IsHttps,
            HttpOnly = false, // the console's script reads it to send it back in the header
            IsEssential = true,
        });
    }

    private static bool IsWellFormed(string? token) => token is { Length: 64 } && token.All(char.IsAsciiHexDigitLower);

    /// <summary>
    /// Null when the request may act; else why not. A browser sends Sec-Fetch-Site and Origin with every POST and DELETE:
    /// anything but this origin is refused. Then the token: another site can neither read the cookie nor, without a CORS
    /// preflight this port never answers, set the header; a page on another port of the same host could read the cookie,
    /// but its Origin differs.
    /// </summary>
    internal static string? CrossSiteRefusal(HttpRequest request)
    {
        var site = request.Headers["Sec-Fetch-Site"].ToString();
        if (site.Length > 0 && site is not ("same-origin" or "none"))
        {
            return $"cross-site request refused (Sec-Fetch-Site: {site})";
        }

        var origin = request.Headers.Origin.ToString();
        if (origin.Length > 0 && !string.Equals(origin, request.Scheme + "://" + request.Host.Value, StringComparison.OrdinalIgnoreCase))
        {
            return $"cross-site request refused (Origin {origin} is not this console's)";
        }

        var header = request.Headers[CsrfHeader].ToString();
        if (!request.Cookies.TryGetValue(CsrfCookie, out var cookie) || !IsWellFormed(cookie) || !IsWellFormed(header)
            || !CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(cookie), Encoding.ASCII.GetBytes(header)))
        {
            return $"missing or wrong CSRF token: send the {CsrfCookie} cookie's value in the {CsrfHeader} header (the console page sets the cookie)";
        }

        return null;
    }

    private delegate Task<string> StreamAction(SluiceServer server, string stream, JsonElement body, CancellationToken cancellationToken);

    private static async Task ActAsync(HttpContext http, Func<SluiceServer?> current, Func<string> notReady, ILogger logger, string rpc, StreamAction action)
    {
        ConsoleAssets.AddSecurityHeaders(http.Response.Headers);
        http.Response.Headers.CacheControl = "no-store";
        if (CrossSiteRefusal(http.Request) is { } refusal)
        {
            LogRefused(logger, http.Request.Method, http.Request.Path, refusal);
            await ErrorAsync(http, StatusCodes.Status403Forbidden, refusal).ConfigureAwait(false);
            return;
        }

        if (current() is not { } server)
        {
            await ErrorAsync(http, StatusCodes.Status503ServiceUnavailable, "not ready: " + notReady()).ConfigureAwait(false);
            return;
        }

        JsonDocument? document;
        try
        {
            document = await ReadBodyAsync(http).ConfigureAwait(false);
        }
        catch (BadBodyException e)
        {
            await ErrorAsync(http, e.Status, e.Message).ConfigureAwait(false);
            return;
        }

        using (document)
        {
            var body = document?.RootElement ?? default;
            string stream;
            if (http.Request.RouteValues["name"] is string fromPath)
            {
                stream = fromPath;
            }
            else if (body.ValueKind == JsonValueKind.Object && body.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String)
            {
                stream = name.GetString()!;
            }
            else
            {
                await ErrorAsync(http, StatusCodes.Status400BadRequest, "the stream's name is missing").ConfigureAwait(false);
                return;
            }

            // The gRPC API's policy, with the browser's client certificate as the caller (tls.client.authz).
            if (server.Authorization is { } authz && authz.Denial(authz.Identify(http.Connection.ClientCertificate), stream, rpc) is { } denial)
            {
                LogDenied(logger, rpc, stream, denial);
                await ErrorAsync(http, StatusCodes.Status403Forbidden, denial).ConfigureAwait(false);
                return;
            }

            try
            {
                var message = await action(server, stream, body, http.RequestAborted).ConfigureAwait(false);
                LogDone(logger, rpc, stream, http.Connection.RemoteIpAddress?.ToString());
                await JsonAsync(http, StatusCodes.Status200OK, json =>
                {
                    json.WriteBoolean("ok", true);
                    json.WriteString("message", message);
                }).ConfigureAwait(false);
            }
            catch (BadBodyException e)
            {
                await ErrorAsync(http, e.Status, e.Message).ConfigureAwait(false);
            }
            catch (Exception e) when (ApiErrors.IsMapped(e))
            {
                var status = ApiErrors.ToGrpc(e, logger); // the gRPC API's texts, so the console says what a client would be told
                await ErrorAsync(http, HttpStatus(status.StatusCode), status.Detail).ConfigureAwait(false);
            }
        }
    }

    private static async Task<string> CreateAsync(SluiceServer server, string stream, JsonElement body, CancellationToken cancellationToken)
    {
        var request = new CreateStreamRequest
        {
            Name = stream,
            Subject = OptionalString(body, "subject") ?? stream,
            Partitions = OptionalInt(body, "partitions") ?? 1,
            ReplicationFactor = OptionalInt(body, "replication_factor") ?? 1,
        };
        await server.StreamAdmin.CreateStreamAsync(request, cancellationToken).ConfigureAwait(false);
        return $"stream '{stream}' created: subject '{request.Subject}', {request.Partitions} partition(s), replication factor {request.ReplicationFactor}";
    }

    private static async Task<string> DeleteAsync(SluiceServer server, string stream, JsonElement body, CancellationToken cancellationToken)
    {
        await server.StreamAdmin.DeleteStreamAsync(stream, cancellationToken).ConfigureAwait(false);
        return $"stream '{stream}' deleted";
    }

    private static async Task<string> PauseAsync(SluiceServer server, string stream, JsonElement body, CancellationToken cancellationToken)
    {
        var partitions = new List<int>();
        if (body.ValueKind == JsonValueKind.Object && body.TryGetProperty("partitions", out var list) && list.ValueKind != JsonValueKind.Null)
        {
            if (list.ValueKind != JsonValueKind.Array)
            {
                throw new BadBodyException("\"partitions\" must be an array of partition ids");
            }

            foreach (var id in list.EnumerateArray())
            {
                partitions.Add(id.TryGetInt32(out var value) ? value : throw new BadBodyException("\"partitions\" must be an array of partition ids"));
            }
        }

        var resumeAll = body.ValueKind == JsonValueKind.Object && body.TryGetProperty("resume_all", out var all) && all.ValueKind == JsonValueKind.True;
        await server.StreamAdmin.PauseAsync(stream, partitions, resumeAll, cancellationToken).ConfigureAwait(false);
        var which = partitions.Count == 0 ? "all partitions" : "partition(s) " + string.Join(", ", partitions);
        return $"stream '{stream}' paused ({which}); a publish or a subscribe with resume opens it again";
    }

    private static string? OptionalString(JsonElement body, string name) =>
        body.ValueKind == JsonValueKind.Object && body.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text
            ? text
            : null;

    private static int? OptionalInt(JsonElement body, string name)
    {
        if (body.ValueKind != JsonValueKind.Object || !body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.TryGetInt32(out var number) ? number : throw new BadBodyException($"\"{name}\" must be a whole number");
    }

    private static async Task<JsonDocument?> ReadBodyAsync(HttpContext http)
    {
        var request = http.Request;
        if (request.ContentLength is 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count == 0))
        {
            return null;
        }

        // A form (the one kind of body a foreign page may post without a preflight) never gets this far as JSON.
        if (!string.Equals(request.ContentType?.Split(';')[0].Trim(), "application/json", StringComparison.OrdinalIgnoreCase))
        {
            throw new BadBodyException("the body must be JSON (Content-Type: application/json)", StatusCodes.Status415UnsupportedMediaType);
        }

        if (request.ContentLength > MaxBodyBytes)
        {
            throw new BadBodyException($"the body is larger than {MaxBodyBytes} bytes", StatusCodes.Status413PayloadTooLarge);
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[4096];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, http.RequestAborted).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > MaxBodyBytes)
            {
                throw new BadBodyException($"the body is larger than {MaxBodyBytes} bytes", StatusCodes.Status413PayloadTooLarge);
            }

            buffer.Write(chunk, 0, read);
        }

        try
        {
            return buffer.Length == 0 ? null : JsonDocument.Parse(buffer.ToArray());
        }
        catch (JsonException e)
        {
            throw new BadBodyException("the body is not valid JSON: " + e.Message);
        }
    }

    private static int HttpStatus(GrpcStatusCode code) => code switch
    {
        GrpcStatusCode.InvalidArgument or GrpcStatusCode.OutOfRange => StatusCodes.Status400BadRequest,
        GrpcStatusCode.NotFound => StatusCodes.Status404NotFound,
        GrpcStatusCode.AlreadyExists or GrpcStatusCode.FailedPrecondition or GrpcStatusCode.Aborted => StatusCodes.Status409Conflict,
        GrpcStatusCode.PermissionDenied => StatusCodes.Status403Forbidden,
        GrpcStatusCode.Unauthenticated => StatusCodes.Status401Unauthorized,
        GrpcStatusCode.Unavailable or GrpcStatusCode.ResourceExhausted => StatusCodes.Status503ServiceUnavailable,
        GrpcStatusCode.DeadlineExceeded => StatusCodes.Status504GatewayTimeout,
        _ => StatusCodes.Status500InternalServerError,
    };

    private static Task ErrorAsync(HttpContext http, int status, string message) => JsonAsync(http, status, json =>
    {
        json.WriteBoolean("ok", false);
        json.WriteString("error", message);
    });

    private static async Task JsonAsync(HttpContext http, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        await using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            write(json);
            json.WriteEndObject();
        }

        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        await http.Response.Body.WriteAsync(buffer.WrittenMemory, http.RequestAborted).ConfigureAwait(false);
    }

    private sealed class BadBodyException(string message, int status = StatusCodes.Status400BadRequest) : Exception(message)
    {
        public int Status { get; } = status;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Web console: {Method} {Path} refused: {Reason}")]
    private static partial void LogRefused(ILogger logger, string method, string path, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Web console: {Rpc} on '{Stream}' denied: {Reason}")]
    private static partial void LogDenied(ILogger logger, string rpc, string stream, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Web console: {Rpc} on '{Stream}' done (from {Remote})")]
    private static partial void LogDone(ILogger logger, string rpc, string stream, string? remote);
}
