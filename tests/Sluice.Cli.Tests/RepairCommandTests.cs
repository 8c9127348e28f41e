using System.Buffers.Binary;
using System.Text;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;
using Sluice.TestKit;

namespace Sluice.Cli.Tests;

/// <summary>`sluice repair` end to end, and what `sluice serve` says about a damaged or locked data directory.</summary>
public class RepairCommandTests
{
    private const int WalHeaderSize = 16; // "SLMW", version, header size, sequence
    private const int RecordHeaderSize = 8; // length, CRC-32C

    [Fact]
    public async Task Damage_mid_log_stops_serve_naming_file_and_position_and_repair_brings_back_the_streams_before_it()
    {
        using var dir = new TempDirectory("sluice-repair");
        var data = dir.Sub("data");
        await using (var server = await StartAsync(data))
        {
            foreach (var name in new[] { "alpha", "bravo", "charlie", "delta" })
            {
                await RunOkAsync("stream", "create", name, "--subject", name, "-s", $"127.0.0.1:{server.Port}");
            }
        }

        var wal = Directory.GetFiles(Path.Combine(data, "metadata"), "wal-*.log").Single();
        var position = RecordHolding(wal, "/sluice/streams/charlie");
        var bytes = await File.ReadAllBytesAsync(wal);
        bytes[position + RecordHeaderSize + 20] ^= 0x5A;
        await File.WriteAllBytesAsync(wal, bytes);

        // The server refuses to start, names the file and the byte, and changes nothing.
        var (serveCode, serve) = await SluiceProcess.RunAsync("serve", "--host", "127.0.0.1", "-p", "0", "-d", data);
        await using (serve)
        {
            Assert.True(serveCode == 1, serve.Transcript());
            var line = Assert.Single(serve.Stderr);
            Assert.Contains(wal, line, StringComparison.Ordinal);
            Assert.Contains($"at byte {position}", line, StringComparison.Ordinal);
            Assert.Contains("sluice repair --data-dir " + data, line, StringComparison.Ordinal);
            Assert.DoesNotContain(serve.Stdout, l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal)); // no stack trace
        }

        Assert.Equal(bytes, await File.ReadAllBytesAsync(wal));

        // A dry run reports and changes nothing.
        var dryRun = await RunOkAsync("repair", "--data-dir", data, "--dry-run");
        Assert.Contains(dryRun, l => l.Contains("DAMAGED at byte " + position, StringComparison.Ordinal) && l.Contains("would be moved", StringComparison.Ordinal));
        Assert.Contains(dryRun, l => l.Contains(Path.Combine(data, "streams", "charlie"), StringComparison.Ordinal));
        Assert.Equal(bytes, await File.ReadAllBytesAsync(wal));
        Assert.True(Directory.Exists(Path.Combine(data, "streams", "charlie")));
        Assert.False(Directory.Exists(Path.Combine(data, DataDirectoryRepair.LostAndFound)));

        var repair = await RunOkAsync("repair", "--data-dir", data);
        Assert.Contains(repair, l => l.Contains("DAMAGED at byte " + position, StringComparison.Ordinal) && l.Contains(".damaged-", StringComparison.Ordinal));
        Assert.Contains(repair, l => l.Contains("streams/charlie has no stream in the metadata", StringComparison.Ordinal));
        Assert.Contains(repair, l => l.Contains("streams/delta has no stream in the metadata", StringComparison.Ordinal));
        Assert.Equal(bytes, await File.ReadAllBytesAsync(Directory.GetFiles(Path.Combine(data, "metadata"), "wal-*.log.damaged-*").Single()));
        var lostAndFound = Path.Combine(data, DataDirectoryRepair.LostAndFound);
        Assert.True(Directory.Exists(Path.Combine(lostAndFound, "charlie", "0")));
        Assert.True(Directory.Exists(Path.Combine(lostAndFound, "delta", "0")));

        // The server starts with the streams created before the damage; a lost name can be created again,
        // and the old data stays in lost+found.
        await using (var server = await StartAsync(data))
        {
            var servers = $"127.0.0.1:{server.Port}";
            await RunOkAsync("stream", "describe", "alpha", "-s", servers);
            await RunOkAsync("stream", "describe", "bravo", "-s", servers);
            var (code, describe) = await SluiceProcess.RunAsync("stream", "describe", "charlie", "-s", servers);
            await using (describe)
            {
                Assert.True(code == 1, describe.Transcript());
            }

            await RunOkAsync("stream", "create", "charlie", "--subject", "charlie", "-s", servers);
        }

        Assert.True(Directory.Exists(Path.Combine(lostAndFound, "charlie", "0")));

        // Nothing left to do now.
        Assert.Contains(await RunOkAsync("repair", "--data-dir", data), l => l.EndsWith("nothing to repair", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_second_server_on_the_same_data_directory_exits_1_saying_it_is_in_use()
    {
        using var dir = new TempDirectory("sluice-repair");
        await using var server = await StartAsync(dir.Path);
        var idFile = Path.Combine(dir.Path, "server-id");
        var id = await File.ReadAllTextAsync(idFile);

        // A different configured id: the refused server must not have written it over the running server's.
        var (code, second) = await SluiceProcess.RunAsync("serve", "--host", "127.0.0.1", "-p", "0", "-d", dir.Path, "--server-id", "intruder");
        await using (second)
        {
            Assert.True(code == 1, second.Transcript());
            var line = Assert.Single(second.Stderr);
            Assert.Contains($"the data directory {dir.Path} is in use by another Sluice process", line, StringComparison.Ordinal);
            Assert.DoesNotContain("LOCK", line, StringComparison.Ordinal);
        }

        Assert.Equal(id, await File.ReadAllTextAsync(idFile));
    }

    [Fact]
    public async Task Repair_refuses_while_a_server_runs_on_the_directory()
    {
        using var dir = new TempDirectory("sluice-repair");
        await using var server = await StartAsync(dir.Path);

        var (code, repair) = await SluiceProcess.RunAsync("repair", "--data-dir", dir.Path);
        await using (repair)
        {
            Assert.True(code == 1, repair.Transcript());
            Assert.Contains("is in use by another Sluice process", Assert.Single(repair.Stderr), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Serve_on_a_full_disk_fails_the_write_then_recovers_once_space_is_freed_and_stops_with_exit_0()
    {
        using var tmpfs = new SmallTmpfs(16 * 1024 * 1024);
        var data = Path.Combine(tmpfs.Path, "data");
        await using var sluice = SluiceProcess.Start("serve", "--host", "127.0.0.1", "-p", "0", "-d", data);
        var line = await sluice.WaitForLineAsync("serving proto.API on 127.0.0.1:");
        var servers = "127.0.0.1:" + System.Text.RegularExpressions.Regex.Match(line, @"127\.0\.0\.1:(\d+)").Groups[1].Value;

        // 100 partitions: making them readonly writes a metadata record of several KiB, which cannot fit in what is
        // left of the log's last page once the disk is full (and touches no partition file).
        await RunOkAsync("stream", "create", "first", "--subject", "first", "--partitions", "100", "-s", servers);

        var filler = tmpfs.Fill();

        var (failedCode, failed) = await SluiceProcess.RunAsync("stream", "readonly", "first", "-s", servers);
        await using (failed)
        {
            Assert.True(failedCode == 1, failed.Transcript());
            var error = Assert.Single(failed.Stderr);
            Assert.Contains("no space left on device", error, StringComparison.Ordinal);
            Assert.DoesNotContain(tmpfs.Path, error, StringComparison.Ordinal); // no server path goes to a client
        }

        await sluice.WaitForLineAsync("Metadata log write failed");

        File.Delete(filler);
        await RunOkAsync("stream", "create", "third", "--subject", "third", "-s", servers);
        await RunOkAsync("stream", "readonly", "first", "-s", servers);
        var (pubCode, pub) = await SluiceProcess.RunAsync("pub", "first", "x", "-s", servers);
        await using (pub)
        {
            Assert.True(pubCode == 1, pub.Transcript()); // the readonly write took effect this time
            Assert.Contains("readonly", Assert.Single(pub.Stderr), StringComparison.Ordinal);
        }

        await sluice.TerminateAsync();
        Assert.True(await sluice.WaitForExitAsync() == 0, sluice.Transcript());
    }

    private static Task<SluiceServer> StartAsync(string dataDir) =>
        SluiceServer.StartAsync(ServerOptions.Default with { Host = "127.0.0.1", Port = 0, DataDir = dataDir });

    private static async Task<IReadOnlyList<string>> RunOkAsync(params string[] args)
    {
        var (code, process) = await SluiceProcess.RunAsync(args);
        await using (process)
        {
            Assert.True(code == 0, $"sluice {string.Join(' ', args)} exited {code}:\n{process.Transcript()}");
            return process.Stdout;
        }
    }

    /// <summary>Byte offset of the first log record whose payload contains <paramref name="text"/>.</summary>
    private static int RecordHolding(string wal, string text)
    {
        var data = File.ReadAllBytes(wal);
        var needle = Encoding.UTF8.GetBytes(text);
        for (var position = WalHeaderSize; position < data.Length;)
        {
            var length = BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(position));
            if (data.AsSpan(position + RecordHeaderSize, length).IndexOf(needle) >= 0)
            {
                return position;
            }

            position += RecordHeaderSize + length;
        }

        throw new InvalidOperationException($"no record holds {text}");
    }
}
