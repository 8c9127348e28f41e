using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace Sluice.Console.Tests;

/// <summary>Each page of the console, loaded in chromium against a server with data, shows what the server holds.</summary>
[Collection(BrowserCollection.Name)]
public sealed partial class ConsolePageTests(Browser browser, SeededServer seeded) : IClassFixture<SeededServer>
{
    private ConsoleServer Node => seeded.Node;

    internal static async Task<IPage> OpenAsync(Browser browser, ConsoleServer node, string tab, BrowserNewContextOptions? options = null)
    {
        var context = await browser.Chromium.NewContextAsync(options ?? new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1440, Height = 900 } });
        var page = await context.NewPageAsync();
        var errors = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                errors.Add(message.Text); // a CSP violation or a script error shows here
            }
        };
        await page.GotoAsync($"{node.Origin}/console/#{tab}");
        await Expect(page.Locator("#health")).ToHaveTextAsync("connected");
        Assert.Empty(errors);
        return page;
    }

    /// <summary>How the console writes a count (en-US grouping; the test process runs with invariant globalization).</summary>
    private static string Text(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    [Fact]
    public async Task Overview_shows_the_server_its_broker_the_controller_and_no_under_replicated_partitions()
    {
        var page = await OpenAsync(browser, Node, "overview");
        var id = Node.Server.ServerId;
        await Expect(page.Locator("#server-id")).ToHaveTextAsync(id);
        await Expect(page.Locator("#card-server .v")).ToHaveTextAsync(id);
        await Expect(page.Locator("#card-controller .v")).ToHaveTextAsync(id); // a single node is its own controller
        await Expect(page.Locator("#card-brokers .v")).ToHaveTextAsync("1");
        await Expect(page.Locator("#card-under-replicated .v")).ToHaveTextAsync("0");
        await Expect(page.Locator("#card-offline .v")).ToHaveTextAsync("0");
        var broker = page.Locator($"#brokers-table tr[data-broker='{id}']");
        await Expect(broker).ToContainTextAsync("controller");
        await Expect(broker).ToContainTextAsync($"127.0.0.1:{Node.Server.Port}");
        await Expect(page.Locator("#config-table")).ToContainTextAsync("storage_durability");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Streams_page_lists_the_streams_with_their_counts_and_a_live_publish_rate()
    {
        var page = await OpenAsync(browser, Node, "streams");
        var payments = page.Locator("#streams-table tr[data-stream='payments']");
        await Expect(payments).ToContainTextAsync("payments.settled");
        await Expect(payments.Locator("td[data-col='received']")).ToHaveTextAsync("15");
        await Expect(page.Locator("#streams-table tr[data-stream='orders'] td").Nth(2)).ToHaveTextAsync("3"); // partitions
        await Expect(page.Locator("#streams-table tr[data-stream='__cursors']")).ToHaveCountAsync(0); // internal streams hidden...
        await page.Locator("#streams-internal").CheckAsync();
        await Expect(page.Locator("#streams-table tr[data-stream='__cursors']")).ToContainTextAsync("internal"); // ...unless asked for

        await using (seeded.Traffic("audit-log", 0))
        {
            // The rate comes from two polls of the counters, 2 s apart: it must leave zero while messages flow.
            await Expect(page.Locator("#streams-table tr[data-stream='audit-log'] td[data-col='in-rate']")).ToHaveTextAsync(NonZeroRate(), new() { Timeout = 20_000 });
        }

        await Expect(page.Locator("#streams-table tr[data-stream='payments'] td[data-col='in-rate']")).ToHaveTextAsync("0.0");
        await page.Locator("#streams-filter").FillAsync("pay");
        await Expect(page.Locator("#streams-table tbody tr")).ToHaveCountAsync(1);
        await page.Context.CloseAsync();
    }

    [GeneratedRegex(@"^(0\.[1-9]|[1-9][0-9,]*(\.[0-9])?)$")]
    private static partial Regex NonZeroRate();

    [Fact]
    public async Task Partitions_page_shows_leader_isr_offsets_size_and_state()
    {
        var page = await OpenAsync(browser, Node, "partitions");
        var id = Node.Server.ServerId;
        var json = (await Node.PartitionAsync("orders", 0))!.Value;
        var row = page.Locator("#partitions-table tr[data-partition='orders/0']");
        await Expect(row.Locator("td[data-col='leader']")).ToHaveTextAsync(id);
        await Expect(row.Locator("td[data-col='isr']")).ToHaveTextAsync(id);
        await Expect(row.Locator("td[data-col='hw']")).ToHaveTextAsync("11");
        await Expect(row.Locator("td[data-col='newest']")).ToHaveTextAsync("11");
        await Expect(row.Locator("td[data-col='state']")).ToHaveTextAsync("led here");
        Assert.True(json.GetProperty("size_bytes").GetInt64() > 0);
        await Expect(row.Locator("td[data-col='size']")).ToHaveTextAsync(new Regex(@"^[0-9.]+ (B|KiB|MiB)$"));
        await Expect(page.Locator("#partitions-table tr[data-partition='orders/2'] td[data-col='hw']")).ToHaveTextAsync("4");
        await Expect(page.Locator("#partitions-table tr[data-partition='payments/0'] td[data-col='hw']")).ToHaveTextAsync("14");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Groups_page_shows_the_group_its_member_and_its_lag()
    {
        var view = await Node.ViewAsync("/v1/groups");
        var group = view.GetProperty("groups").EnumerateArray().Single(g => g.GetProperty("id").GetString() == "billing");
        var partition = group.GetProperty("partitions").EnumerateArray().Single();
        var committed = partition.GetProperty("committed_offset").GetInt64();
        var lag = group.GetProperty("lag").GetInt64();
        Assert.Equal(14, partition.GetProperty("high_watermark").GetInt64());
        Assert.Equal(14 - committed, lag); // what `sluice group describe` reports
        Assert.Equal(9, committed); // offsets 0-9 handled, 10 stuck in the handler: the cursor holds the last offset handled
        Assert.Equal(5, lag);

        var page = await OpenAsync(browser, Node, "groups");
        var row = page.Locator("#groups-table tr[data-group='billing']");
        await Expect(row).ToContainTextAsync("billing-1 (payments)");
        await Expect(row.Locator("td[data-col='lag']")).ToHaveTextAsync(Text(lag));
        var assigned = page.Locator("#group-partitions-table tr[data-group-partition='billing/payments/0']");
        await Expect(assigned.Locator("td[data-col='committed']")).ToHaveTextAsync(Text(committed));
        await Expect(assigned.Locator("td[data-col='lag']")).ToHaveTextAsync(Text(lag));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Cursors_page_shows_a_stored_cursor_and_the_groups_cursor_with_their_lag()
    {
        var page = await OpenAsync(browser, Node, "cursors");
        var audit = page.Locator("#cursors-table tr[data-cursor='audit/orders/0']");
        await Expect(audit.Locator("td[data-col='offset']")).ToHaveTextAsync("3");
        await Expect(audit.Locator("td[data-col='lag']")).ToHaveTextAsync("8"); // high watermark 11
        await Expect(page.Locator("#cursors-table tr[data-cursor='__group:billing/payments/0']")).ToContainTextAsync("billing");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Activity_page_shows_stream_and_group_events_newest_first()
    {
        var page = await OpenAsync(browser, Node, "activity");
        var rows = page.Locator("#activity-table tbody tr");
        await Expect(rows.Filter(new() { HasText = "CreateStream" }).Filter(new() { HasText = "orders" })).ToHaveCountAsync(1);
        await Expect(rows.Filter(new() { HasText = "JoinConsumerGroup" }).Filter(new() { HasText = "billing" })).ToHaveCountAsync(1);
        var offsets = await page.Locator("#activity-table tbody tr").EvaluateAllAsync<long[]>("rows => rows.map(r => Number(r.dataset.offset))");
        Assert.Equal(offsets.OrderDescending(), offsets);

        var limited = (await Node.ViewAsync("/v1/activity?limit=2")).GetProperty("events").EnumerateArray().Select(e => e.GetProperty("offset").GetInt64()).ToArray();
        Assert.Equal(offsets.Take(2), limited); // the newest two
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Static_files_have_their_content_type_an_etag_and_a_strict_content_security_policy()
    {
        var http = Node.Http;
        using (var root = await http.GetAsync(Node.Origin + "/"))
        {
            Assert.Equal("/console/", root.RequestMessage!.RequestUri!.AbsolutePath); // redirected
        }

        using var page = await http.GetAsync(Node.Origin + "/console/");
        Assert.Equal("text/html", page.Content.Headers.ContentType!.MediaType);
        var csp = string.Join(";", page.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("default-src 'none'", csp, StringComparison.Ordinal);
        Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", csp, StringComparison.Ordinal);
        var cookie = Assert.Single(page.Headers.GetValues("Set-Cookie"));
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
        var etag = page.Headers.ETag!;

        using var again = new HttpRequestMessage(HttpMethod.Get, Node.Origin + "/console/");
        again.Headers.IfNoneMatch.Add(etag);
        using var notModified = await http.SendAsync(again);
        Assert.Equal(System.Net.HttpStatusCode.NotModified, notModified.StatusCode);

        foreach (var (file, type) in new[] { ("console.js", "text/javascript"), ("console.css", "text/css"), ("favicon.svg", "image/svg+xml") })
        {
            using var response = await http.GetAsync($"{Node.Origin}/console/{file}");
            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(type, response.Content.Headers.ContentType!.MediaType);
            Assert.Equal("nosniff", Assert.Single(response.Headers.GetValues("X-Content-Type-Options")));
        }

        using var missing = await http.GetAsync(Node.Origin + "/console/nothing.js");
        Assert.Equal(System.Net.HttpStatusCode.NotFound, missing.StatusCode);
        using var metrics = await http.GetAsync(Node.Origin + "/metrics"); // the existing paths still answer
        Assert.Equal(System.Net.HttpStatusCode.OK, metrics.StatusCode);
    }

    /// <summary>
    /// Writes docs/images/console-*.png when SLUICE_CONSOLE_SCREENSHOTS names a directory (scripts/console-screenshots.sh
    /// does), else into a temporary directory: either way each page is captured with traffic flowing.
    /// </summary>
    [Fact]
    public async Task Screenshots_of_each_page_with_traffic_flowing()
    {
        var target = Environment.GetEnvironmentVariable("SLUICE_CONSOLE_SCREENSHOTS");
        using var temp = new Sluice.TestKit.TempDirectory("sluice-console-shots");
        var directory = string.IsNullOrEmpty(target) ? temp.Path : Path.GetFullPath(target);
        Directory.CreateDirectory(directory);
        // A stream an operator froze and one that went idle, so the state columns show something; other tests ignore both.
        await Node.Client.CreateStreamAsync("invoices.2025", "invoices-2025", Sluice.Client.StreamOptions.Default with { Partitions = 2 });
        await Node.PublishAsync("invoices-2025", 0, 40);
        await Node.PublishAsync("invoices-2025", 1, 35);
        await Node.Client.SetStreamReadonlyAsync("invoices-2025");
        await Node.Client.CreateStreamAsync("legacy.events", "legacy-events");
        await Node.PublishAsync("legacy-events", 0, 9);
        await Node.Client.PauseStreamAsync("legacy-events");

        // Into partitions the other tests of this class do not count.
        await using var orders = seeded.Traffic("orders", 1);
        await using var audit = seeded.Traffic("audit-log", 0);
        await using var reader = await Node.Client.SubscribeAsync("orders", (_, _) => ValueTask.CompletedTask, Sluice.Client.SubscribeOptions.Default with { Partition = 1 }); // consumed as published
        foreach (var scheme in new[] { ColorScheme.Light, ColorScheme.Dark })
        {
            var page = await OpenAsync(browser, Node, "overview", new BrowserNewContextOptions
            {
                ViewportSize = new ViewportSize { Width = 1440, Height = 720 },
                ColorScheme = scheme,
            });
            var tabs = scheme == ColorScheme.Light ? new[] { "overview", "streams", "partitions", "groups", "cursors", "activity" } : ["streams"];
            foreach (var tab in tabs)
            {
                await page.Locator($"#tabs a[data-tab='{tab}']").ClickAsync();
                await Expect(page.Locator($"#{tab} table").First.Locator("tbody tr").First).ToBeVisibleAsync();
                if (tab is "overview" or "streams")
                {
                    await Expect(page.Locator(tab == "overview" ? "#card-in-rate .v" : "#streams-table tr[data-stream='orders'] td[data-col='in-rate']"))
                        .ToHaveTextAsync(NonZeroRate(), new() { Timeout = 20_000 });
                }

                var file = Path.Combine(directory, scheme == ColorScheme.Light ? $"console-{tab}.png" : $"console-{tab}-dark.png");
                await page.ScreenshotAsync(new PageScreenshotOptions { Path = file });
                Assert.True(new FileInfo(file).Length > 10_000, file);
            }

            if (scheme == ColorScheme.Light)
            {
                await page.Locator("#tabs a[data-tab='streams']").ClickAsync();
                await page.Locator("#streams-table tr[data-stream='audit-log'] button[data-action='delete']").ClickAsync();
                await page.Locator("#confirm-type").FillAsync("audit-");
                var file = Path.Combine(directory, "console-confirm-delete.png");
                await page.ScreenshotAsync(new PageScreenshotOptions { Path = file });
                await page.Locator("#confirm-cancel").ClickAsync();
            }

            await page.Context.CloseAsync();
        }
    }
}
