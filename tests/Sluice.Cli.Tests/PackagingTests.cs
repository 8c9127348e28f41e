using System.Diagnostics;
using System.Reflection;
using Sluice.Server.Hosting;
using Sluice.TestKit;

namespace Sluice.Cli.Tests;

/// <summary>
/// What a user gets from `dotnet pack`: the `sluice` .NET tool, and Sluice.Client as a package an application builds
/// against. Both are packed from the build the test suite runs on (--no-build), into temp folders outside the repository.
/// </summary>
public class PackagingTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(3);

    private static readonly string Configuration =
        typeof(PackagingTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";

    /// <summary>The one version of every package (Directory.Build.props), as the server assembly carries it.</summary>
    private static readonly string PackageVersion = typeof(SluiceServer).Assembly.GetName().Version!.ToString(3);

    [Fact]
    public async Task The_jit_fallback_tool_installs_and_runs()
    {
        using var dir = new TempDirectory("sluice-tool");
        var packages = dir.Sub("nupkg");
        // The JIT fallback tool (framework-dependent, what `-p:SluiceJitTool=true` packs): the default tool package is the
        // Native AOT one, whose pack compiles natively for minutes; scripts/aot-smoke.sh installs and runs that one.
        await DotnetAsync(dir, RepositoryRoot, "pack", "src/Sluice.Cli", "-c", Configuration, "--no-build", "-o", packages, "-p:SluiceJitTool=true");
        Assert.True(File.Exists(Path.Combine(packages, $"Sluice.Cli.{PackageVersion}.nupkg")));

        var tools = dir.Sub("tools");
        await DotnetAsync(dir, dir.Path, "tool", "install", "--tool-path", tools, "--add-source", packages, "Sluice.Cli", "--version", PackageVersion);
        var sluice = Path.Combine(tools, "sluice");

        var version = await RunAsync(dir, dir.Path, sluice, "version");
        Assert.StartsWith(PackageVersion, version.Trim(), StringComparison.Ordinal);

        await broker.RunOkAsync("stream", "create", "tooled", "--subject", "tooled");
        Assert.Contains("tooled", await RunAsync(dir, dir.Path, sluice, "stream", "list", "--servers", broker.Servers), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_application_builds_against_the_packed_client_and_publishes_and_reads()
    {
        using var dir = new TempDirectory("sluice-package");
        var packages = dir.Sub("nupkg");
        await DotnetAsync(dir, RepositoryRoot, "pack", "src/Sluice.Client", "-c", Configuration, "--no-build", "-o", packages);
        Assert.True(File.Exists(Path.Combine(packages, $"Sluice.Client.{PackageVersion}.nupkg")));
        Assert.True(File.Exists(Path.Combine(packages, $"Sluice.Protocol.{PackageVersion}.nupkg"))); // what the client depends on

        var app = Directory.CreateDirectory(dir.Sub("app")).FullName;
        // The repository's build settings and central package versions must not reach the app: it stands alone, as a user's would.
        await File.WriteAllTextAsync(Path.Combine(app, "Directory.Build.props"), "<Project />\n");
        await File.WriteAllTextAsync(Path.Combine(app, "Directory.Packages.props"),
            "<Project><PropertyGroup><ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally></PropertyGroup></Project>\n");
        // The local folder is added to the sources this machine already has (the registry for the client's own dependencies).
        await File.WriteAllTextAsync(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="sluice-local" value="{packages}" />
              </packageSources>
            </configuration>
            """);
        await File.WriteAllTextAsync(Path.Combine(app, "App.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Sluice.Client" Version="{PackageVersion}" />
              </ItemGroup>
            </Project>
            """);
        await File.WriteAllTextAsync(Path.Combine(app, "Program.cs"), """
            using Sluice.Client;

            await using var client = await SluiceClient.ConnectAsync([args[0]]);
            await client.CreateStreamAsync("packaged", "packaged");
            var ack = await client.PublishAsync("packaged", "hello from the package"u8.ToArray());
            Console.WriteLine($"acked at offset {ack!.Offset}");
            await foreach (var message in client.SubscribeAsync("packaged", SubscribeOptions.Default.StartAtEarliest().StopAtLatest()))
            {
                Console.WriteLine($"read {message.Offset}: {message.GetValueAsString()}");
            }
            """);

        await DotnetAsync(dir, app, "build", "-c", "Release", "-nologo");
        var output = await DotnetAsync(dir, app, Path.Combine(app, "bin", "Release", "net10.0", "App.dll"), broker.Servers);
        Assert.Equal(["acked at offset 0", "read 0: hello from the package"], output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    private static string RepositoryRoot { get; } = FindRepositoryRoot();

    private static string FindRepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Sluice.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Sluice.slnx not found above " + AppContext.BaseDirectory);
    }

    private static Task<string> DotnetAsync(TempDirectory dir, string workingDirectory, params string[] args) => RunAsync(dir, workingDirectory, "dotnet", args);

    /// <summary>Runs a program to completion (within <see cref="StepTimeout"/>) and returns its stdout; a non-zero exit fails the test with its output.</summary>
    private static async Task<string> RunAsync(TempDirectory dir, string workingDirectory, string program, params string[] args)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // The test host's MSBuild settings would point a nested build at this test run's SDK state.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

        // A package folder of its own: an earlier run's Sluice.Client 0.1.0 in the machine's cache must not stand in for this build's.
        start.Environment["NUGET_PACKAGES"] = dir.Sub("nuget-cache");
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(StepTimeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException($"{program} {string.Join(' ', args)} did not finish within {StepTimeout}:\n{await stdout}\n{await stderr}");
        }

        var output = await stdout;
        Assert.True(process.ExitCode == 0, $"{program} {string.Join(' ', args)} exited {process.ExitCode}:\n{output}\n{await stderr}");
        return output;
    }
}
