using System.Net;
using System.Text.RegularExpressions;
using Sluice.Etcd;
using Sluice.TestKit;

namespace Sluice.Cli.Tests;

/// <summary>`sluice serve --etcd-endpoints`: the metadata lives in etcd.</summary>
public class EtcdServeTests
{
    [Fact]
    public async Task Serve_with_etcd_endpoints_keeps_a_created_stream_in_etcd()
    {
        await using var etcd = await LocalEtcd.StartAsync();
        using var dir = new TempDirectory("sluice-cli");
        await using var sluice = SluiceProcess.Start("serve", "--host", "127.0.0.1", "-p", "0", "-d", dir.Path, "--etcd-endpoints", etcd.ClientUrl);
        var port = int.Parse(Regex.Match(await sluice.WaitForLineAsync("serving proto.API on 127.0.0.1:"), @"127\.0\.0\.1:(\d+)").Groups[1].Value);

        var (code, create) = await SluiceProcess.RunAsync("stream", "create", "in-etcd", "--subject", "in-etcd", "-s", $"127.0.0.1:{port}");
        await using (create)
        {
            Assert.True(code == 0, create.Transcript());
        }

        await using var store = await EtcdMetadataStore.ConnectAsync(EtcdMetadataStoreOptions.Default with { Endpoints = [etcd.ClientUrl] });
        var kv = Assert.Single((await store.RangeAsync(new Storage.Metadata.RangeRequest(Storage.Metadata.KeyRanges.Utf8("/sluice/streams/in-etcd")))).Kvs);
        Assert.Contains("in-etcd", kv.ValueString, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "metadata")), "the embedded store was opened too");

        await sluice.TerminateAsync();
        Assert.Equal(0, await sluice.WaitForExitAsync());
    }

    [Fact]
    public async Task Serve_with_an_unreachable_etcd_exits_1_with_one_line_on_stderr()
    {
        using var dir = new TempDirectory("sluice-cli");
        using var closed = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        closed.Start();
        var url = $"http://127.0.0.1:{((IPEndPoint)closed.LocalEndpoint).Port}";
        closed.Stop(); // nothing listens there now

        var (code, sluice) = await SluiceProcess.RunAsync("serve", "--host", "127.0.0.1", "-p", "0", "-d", dir.Path, "--etcd-endpoints", url);
        await using (sluice)
        {
            Assert.Equal(1, code);
            var line = Assert.Single(sluice.Stderr);
            Assert.Contains($"Cannot start the server: etcd ({url}) is unreachable (Connection refused)", line, StringComparison.Ordinal);
        }
    }
}
