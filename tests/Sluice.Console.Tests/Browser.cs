using Microsoft.Playwright;

namespace Sluice.Console.Tests;

/// <summary>
/// Debian's chromium, headless, driven by Playwright (no <c>playwright install</c>: the test machines have no internet).
/// One browser for the whole collection; each test opens its own context (fresh cookies).
/// </summary>
public sealed class Browser : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";

    /// <summary>A host name the browser resolves to 127.0.0.1: a page served there is another site than 127.0.0.1.</summary>
    public const string ForeignHost = "attacker.test";

    private IPlaywright? _playwright;

    public IBrowser Chromium { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        if (!File.Exists(ChromiumPath))
        {
            throw new InvalidOperationException($"{ChromiumPath} is missing: install Debian's chromium (apt-get install -y chromium; test.sh does)");
        }

        // Playwright's expectations wait for a condition; a loaded 2-core machine needs more than the 5 s default.
        Assertions.SetDefaultExpectTimeout(15_000);
        _playwright = await Playwright.CreateAsync();
        Chromium = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Timeout = 60_000,
            Args =
            [
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run",
                $"--host-resolver-rules=MAP {ForeignHost} 127.0.0.1", // nothing leaves the machine
            ],
        });
    }

    public async Task DisposeAsync()
    {
        if (Chromium is not null)
        {
            await Chromium.CloseAsync();
        }

        _playwright?.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class BrowserCollection : ICollectionFixture<Browser>
{
    public const string Name = "browser";
}
