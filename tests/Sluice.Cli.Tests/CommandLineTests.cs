using Sluice.TestKit;

namespace Sluice.Cli.Tests;

public class CommandLineTests
{
    [Fact]
    public async Task A_bad_value_in_the_file_exits_2_naming_the_key_on_stderr()
    {
        using var dir = new TempDirectory("sluice-cli");
        var config = dir.Sub("bad.yaml");
        await File.WriteAllTextAsync(config, "streams.retention.max.age: 5 days\n");

        var (code, sluice) = await SluiceProcess.RunAsync("serve", "-c", config, "-d", dir.Sub("data"));
        await using (sluice)
        {
            Assert.Equal(2, code);
            var line = Assert.Single(sluice.Stderr);
            Assert.Contains("\"streams.retention.max.age\"", line);
            Assert.Contains("\"5 days\"", line);
            Assert.Empty(sluice.Stdout);
            Assert.False(Directory.Exists(dir.Sub("data")));
        }
    }

    [Fact]
    public async Task An_unknown_key_exits_2_with_a_suggestion()
    {
        using var dir = new TempDirectory("sluice-cli");
        var config = dir.Sub("typo.yaml");
        await File.WriteAllTextAsync(config, "logging:\n  levl: debug\n");

        var (code, sluice) = await SluiceProcess.RunAsync("serve", "--config", config);
        await using (sluice)
        {
            Assert.Equal(2, code);
            Assert.Contains("Unknown configuration setting \"logging.levl\"", Assert.Single(sluice.Stderr));
            Assert.Contains("did you mean \"logging.level\"", sluice.Stderr[0]);
        }
    }

    [Fact]
    public async Task A_bad_flag_value_exits_2_naming_the_flag()
    {
        var (code, sluice) = await SluiceProcess.RunAsync("serve", "--level", "loud");
        await using (sluice)
        {
            Assert.Equal(2, code);
            Assert.Contains("flag --level", Assert.Single(sluice.Stderr));
        }
    }

    [Fact]
    public async Task Help_lists_every_Liftbridge_flag()
    {
        var (code, sluice) = await SluiceProcess.RunAsync("serve", "--help");
        await using (sluice)
        {
            Assert.Equal(0, code);
            var help = string.Join('\n', sluice.Stdout);
            foreach (var flag in new[]
            {
                "-c, --config", "--id, --server-id", "--namespace, --ns", "-n, --nats-servers", "-e, --embedded-nats",
                "--embedded-nats-config, --nc", "-d, --data-dir", "-p, --port", "--host", "--tls-cert", "--tls-key",
                "-l, --level", "--raft-bootstrap-seed", "--raft-bootstrap-peers",
            })
            {
                Assert.Contains(flag, help);
            }
        }
    }

    [Fact]
    public async Task Root_help_lists_the_commands_and_version_prints_one()
    {
        var (helpCode, help) = await SluiceProcess.RunAsync("--help");
        await using (help)
        {
            Assert.Equal(0, helpCode);
            foreach (var command in new[] { "serve", "stream", "pub", "sub", "metadata" })
            {
                Assert.Contains(help.Stdout, l => l.TrimStart().StartsWith(command + " ", StringComparison.Ordinal));
            }
        }

        var (versionCode, version) = await SluiceProcess.RunAsync("--version");
        await using (version)
        {
            Assert.Equal(0, versionCode);
            Assert.Matches(@"^\d+\.\d+\.\d+", Assert.Single(version.Stdout));
        }
    }

    [Fact]
    public async Task Help_shows_defaults_as_plain_values_and_says_what_is_true_today()
    {
        foreach (var command in new[] { Array.Empty<string>(), ["sub"], ["pub"], ["stream", "create"], ["stream", "list"], ["metadata"] })
        {
            var (code, sluice) = await SluiceProcess.RunAsync([.. command, "--help"]);
            await using (sluice)
            {
                Assert.Equal(0, code);
                var help = string.Join('\n', sluice.Stdout);
                Assert.DoesNotMatch(@"\[default: [^\]]*[{}=]", help); // a record's ToString, e.g. StartSpec { Position = NewOnly, ... }
                Assert.DoesNotContain("Json|Text", help, StringComparison.Ordinal);
                Assert.DoesNotContain("replicated", help, StringComparison.OrdinalIgnoreCase);
            }
        }

        var (_, sub) = await SluiceProcess.RunAsync("sub", "--help");
        await using (sub)
        {
            Assert.Contains(sub.Stdout, l => l.Contains("-o, --output <text|json>", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Help_and_version_are_commands_too()
    {
        async Task<IReadOnlyList<string>> StdoutOf(int expectedCode, params string[] args)
        {
            var (code, sluice) = await SluiceProcess.RunAsync(args);
            await using (sluice)
            {
                Assert.True(code == expectedCode, $"sluice {string.Join(' ', args)} exited {code}:\n{sluice.Transcript()}");
                return sluice.Stdout;
            }
        }

        Assert.Equal(await StdoutOf(0, "--help"), await StdoutOf(0, "help"));
        Assert.Equal(await StdoutOf(0, "stream", "create", "--help"), await StdoutOf(0, "help", "stream", "create"));
        var version = await StdoutOf(0, "version");
        Assert.Matches(@"^\d+\.\d+\.\d+", Assert.Single(version));
        Assert.Equal(await StdoutOf(0, "--version"), version);
        Assert.Empty(await StdoutOf(2, "help", "frobnicate"));
    }

    [Fact]
    public async Task A_command_group_alone_lists_its_commands_and_exits_2()
    {
        var (code, sluice) = await SluiceProcess.RunAsync("stream");
        await using (sluice)
        {
            Assert.Equal(2, code);
            foreach (var command in new[] { "create", "delete", "list", "describe", "pause", "readonly" })
            {
                Assert.Contains(sluice.Stderr, l => l.StartsWith("  " + command + " ", StringComparison.Ordinal));
            }
        }
    }
}
