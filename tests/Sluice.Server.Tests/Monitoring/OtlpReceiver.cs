using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Sluice.Server.Tests.Monitoring;

/// <summary>
/// A tiny OTLP/HTTP collector on loopback: accepts exports POSTed to one signal's path (/v1/metrics, /v1/traces), keeps
/// their bodies and content types, and answers an empty success (an empty Export*ServiceResponse).
/// </summary>
internal sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;

    private OtlpReceiver(WebApplication app) => _app = app;

    public ConcurrentQueue<byte[]> Bodies { get; } = new();

    public ConcurrentQueue<string?> ContentTypes { get; } = new();

    public int Port { get; private set; }

    public static async Task<OtlpReceiver> StartAsync(string path)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var receiver = new OtlpReceiver(app);
        app.MapPost(path, async (HttpContext http) =>
        {
            using var body = new MemoryStream();
            await http.Request.Body.CopyToAsync(body);
            receiver.Bodies.Enqueue(body.ToArray());
            receiver.ContentTypes.Enqueue(http.Request.ContentType);
            return Results.Bytes([], "application/x-protobuf");
        });
        await app.StartAsync();
        receiver.Port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
