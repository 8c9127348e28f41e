using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Playwright;
using Sluice.Client;
using static Microsoft.Playwright.Assertions;

namespace Sluice.Console.Tests;

/// <summary>Create, delete and pause from the console, each after a confirmation; and what a foreign page cannot do.</summary>
[Collection(BrowserCollection.Name)]
public sealed class ConsoleActionTests(Browser browser, SeededServer seeded) : IClassFixture<SeededServer>
{
    private ConsoleServer Node => seeded.Node;

    [Fact]
    public async Task Create_stream_asks_for_confirmation_then_creates_it_and_says_so()
    {
        var page = await ConsolePageTests.OpenAsync(browser, Node, "streams");

        // Cancelled at the confirmation: nothing is created.
        await FillCreateAsync(page, "created-in-ui", "created.subject", partitions: 2);
        await Expect(page.Locator("#confirm-text")).ToContainTextAsync("Create stream \"created-in-ui\" on subject \"created.subject\" with 2 partition(s)");
        await page.Locator("#confirm-cancel").ClickAsync();
        await Expect(page.Locator("#confirm-dialog")).ToBeHiddenAsync();
        Assert.False(await Node.StreamExistsAsync("created-in-ui"));

        await FillCreateAsync(page, "created-in-ui", "created.subject", partitions: 2);
        await page.Locator("#confirm-ok").ClickAsync();
        await Expect(page.Locator("#notice")).ToHaveClassAsync("ok");
        await Expect(page.Locator("#notice-text")).ToContainTextAsync("stream 'created-in-ui' created");
        await Expect(page.Locator("#streams-table tr[data-stream='created-in-ui']")).ToContainTextAsync("created.subject");
        Assert.NotNull(await Node.PartitionAsync("created-in-ui", 1));
        Assert.Null(await Node.PartitionAsync("created-in-ui", 2));

        // The server's refusal is shown as it is: the stream exists.
        await FillCreateAsync(page, "orders", "orders.created", partitions: 1);
        await page.Locator("#confirm-ok").ClickAsync();
        await Expect(page.Locator("#notice")).ToHaveClassAsync("error");
        await Expect(page.Locator("#notice-text")).ToContainTextAsync("Create failed (409): stream already exists");
        await page.Context.CloseAsync();
    }

    internal static async Task FillCreateAsync(IPage page, string name, string subject, int partitions)
    {
        await page.Locator("#create-open").ClickAsync();
        await page.Locator("#create-name").FillAsync(name);
        await page.Locator("#create-subject").FillAsync(subject);
        await page.Locator("#create-partitions").FillAsync(partitions.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await page.Locator("#create-review").ClickAsync();
        await Expect(page.Locator("#confirm-dialog")).ToBeVisibleAsync();
    }

    [Fact]
    public async Task Pause_stream_after_confirmation_pauses_every_partition()
    {
        await Node.Client.CreateStreamAsync("to-pause", "to-pause", StreamOptions.Default with { Partitions = 2 });
        await Node.PublishAsync("to-pause", 0, 2);
        await Node.PublishAsync("to-pause", 1, 2);
        var page = await ConsolePageTests.OpenAsync(browser, Node, "streams");
        var row = page.Locator("#streams-table tr[data-stream='to-pause']");

        await row.Locator("button[data-action='pause']").ClickAsync();
        await Expect(page.Locator("#confirm-title")).ToHaveTextAsync("Pause stream");
        await page.Locator("#confirm-cancel").ClickAsync();
        Assert.False((await Node.PartitionAsync("to-pause", 0))!.Value.GetProperty("paused").GetBoolean());

        await row.Locator("button[data-action='pause']").ClickAsync();
        await page.Locator("#confirm-ok").ClickAsync();
        await Expect(page.Locator("#notice-text")).ToContainTextAsync("stream 'to-pause' paused (all partitions)");
        await Expect(row).ToContainTextAsync("paused");
        Assert.True((await Node.PartitionAsync("to-pause", 0))!.Value.GetProperty("paused").GetBoolean());
        Assert.True((await Node.PartitionAsync("to-pause", 1))!.Value.GetProperty("paused").GetBoolean());

        await page.Locator("#tabs a[data-tab='partitions']").ClickAsync();
        await Expect(page.Locator("#partitions-table tr[data-partition='to-pause/1'] td[data-col='state']")).ToContainTextAsync("paused");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Delete_stream_needs_its_name_typed_then_deletes_it()
    {
        await Node.Client.CreateStreamAsync("to-delete", "to-delete");
        await Node.PublishAsync("to-delete", 0, 3);
        var page = await ConsolePageTests.OpenAsync(browser, Node, "streams");
        var row = page.Locator("#streams-table tr[data-stream='to-delete']");

        await row.Locator("button[data-action='delete']").ClickAsync();
        await Expect(page.Locator("#confirm-ok")).ToBeDisabledAsync();
        await page.Locator("#confirm-type").FillAsync("to-delet");
        await Expect(page.Locator("#confirm-ok")).ToBeDisabledAsync();
        await page.Locator("#confirm-type").FillAsync("to-delete");
        await Expect(page.Locator("#confirm-ok")).ToBeEnabledAsync();
        await page.Locator("#confirm-ok").ClickAsync();
        await Expect(page.Locator("#notice-text")).ToContainTextAsync("stream 'to-delete' deleted");
        await Expect(row).ToHaveCountAsync(0);
        Assert.False(await Node.StreamExistsAsync("to-delete"));

        await page.Locator("#tabs a[data-tab='activity']").ClickAsync();
        await Expect(page.Locator("#activity-table tbody tr").First).ToContainTextAsync("DeleteStream");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_foreign_page_cannot_pause_or_delete_a_stream_even_with_the_console_open_in_the_same_browser()
    {
        await Node.Client.CreateStreamAsync("victim", "victim");
        await Node.PublishAsync("victim", 0, 1);
        var page = await ConsolePageTests.OpenAsync(browser, Node, "streams"); // the browser now holds the console's token cookie
        Assert.Contains(await page.Context.CookiesAsync(), c => c.Name == "sluice_csrf");

        // Another site (a host name the browser maps to 127.0.0.1, another port) posts a form and sends a fetch.
        await using var foreign = await ForeignSite.StartAsync($$"""
            <!doctype html><title>foreign</title>
            <form id="f" method="post" enctype="text/plain" action="{{Node.Origin}}/v1/streams/victim/pause"><input name="x" value="y"></form>
            <script>
              Promise.allSettled([
                // A "simple" request reaches the server (the response stays opaque to this page)...
                fetch('{{Node.Origin}}/v1/streams', { method: 'POST', mode: 'no-cors', credentials: 'include',
                  headers: { 'Content-Type': 'text/plain' }, body: '{"name":"planted","subject":"planted"}' }),
                // ...a DELETE needs a CORS preflight, which the monitoring port never grants.
                fetch('{{Node.Origin}}/v1/streams/victim', { method: 'DELETE', credentials: 'include' }),
              ]).then(results => { document.title = 'done: ' + results.map(r => r.status).join(','); });
            </script>
            """);
        var attacker = await page.Context.NewPageAsync();
        await attacker.GotoAsync(foreign.Url);
        // Both fail in the page: the POST's answer is blocked by Cross-Origin-Resource-Policy, the DELETE's preflight is refused.
        await Expect(attacker).ToHaveTitleAsync("done: rejected,rejected");
        Assert.Contains(Node.Log.Lines, line => line == "Web console: POST /v1/streams refused: cross-site request refused (Sec-Fetch-Site: cross-site)");
        Assert.DoesNotContain(Node.Log.Lines, line => line.StartsWith("Web console: DELETE", StringComparison.Ordinal));
        Assert.False(await Node.StreamExistsAsync("planted"));
        await attacker.Locator("#f").EvaluateAsync("f => f.submit()");
        await Expect(attacker.Locator("body")).ToContainTextAsync("cross-site request refused (Sec-Fetch-Site: cross-site)");

        Assert.True(await Node.StreamExistsAsync("victim"));
        Assert.False((await Node.PartitionAsync("victim", 0))!.Value.GetProperty("paused").GetBoolean());

        // Without a browser's help: no token, a token that differs from the cookie, a foreign Origin, all refused.
        var token = (await page.Context.CookiesAsync()).Single(c => c.Name == "sluice_csrf").Value;
        Assert.Equal(HttpStatusCode.Forbidden, await PauseAsync("victim", cookie: null, header: null, origin: null));
        Assert.Equal(HttpStatusCode.Forbidden, await PauseAsync("victim", cookie: token, header: new string('0', 64), origin: null));
        Assert.Equal(HttpStatusCode.Forbidden, await PauseAsync("victim", cookie: token, header: token, origin: "http://127.0.0.1:1"));
        Assert.False((await Node.PartitionAsync("victim", 0))!.Value.GetProperty("paused").GetBoolean());

        // What the console itself sends is accepted.
        Assert.Equal(HttpStatusCode.OK, await PauseAsync("victim", cookie: token, header: token, origin: Node.Origin));
        Assert.True((await Node.PartitionAsync("victim", 0))!.Value.GetProperty("paused").GetBoolean());
        await page.Context.CloseAsync();
    }

    private async Task<HttpStatusCode> PauseAsync(string stream, string? cookie, string? header, string? origin)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{Node.Origin}/v1/streams/{stream}/pause")
        {
            Content = new StringContent("{}", Encoding.UTF8, "application/json"),
        };
        if (cookie is not null)
        {
            request.Headers.Add("Cookie", "sluice_csrf=" + cookie);
        }

        if (header is not null)
        {
            request.Headers.Add("X-Sluice-Csrf", header);
        }

        if (origin is not null)
        {
            request.Headers.Add("Origin", origin);
        }

        using var response = await Node.Http.SendAsync(request);
        return response.StatusCode;
    }

    /// <summary>A page served from another site: http://attacker.test:port/ (the browser resolves it to 127.0.0.1).</summary>
    private sealed class ForeignSite(WebApplication app, string url) : IAsyncDisposable
    {
        public string Url { get; } = url;

        public static async Task<ForeignSite> StartAsync(string html)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            app.MapGet("/", () => Results.Content(html, "text/html"));
            await app.StartAsync();
            var port = new Uri(app.Urls.First()).Port;
            return new ForeignSite(app, $"http://{Browser.ForeignHost}:{port}/");
        }

        public async ValueTask DisposeAsync() => await app.DisposeAsync();
    }
}
