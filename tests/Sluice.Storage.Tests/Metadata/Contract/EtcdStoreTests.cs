using Sluice.Etcd;
using Sluice.Storage.Metadata;
using static Sluice.Storage.Tests.Metadata.Meta;

namespace Sluice.Storage.Tests.Metadata.Contract;

/// <summary>What only a remote store shows: etcd going away and coming back. These tests stop and restart their etcd.</summary>
public sealed class EtcdStoreTests(EtcdFixture fixture) : IClassFixture<EtcdFixture>
{
    private readonly string _prefix = $"t{Guid.NewGuid():N}/";

    [Fact]
    public async Task Watch_survives_an_etcd_restart_and_delivers_the_changes_made_meanwhile_once_in_order()
    {
        await using var store = await fixture.ConnectAsync();
        await using var watch = store.WatchPrefixAsync(_prefix).GetAsyncEnumerator();
        var first = (await store.Put(_prefix + "k", "0")).Header.Revision;
        Assert.Equal(first, Assert.Single((await watch.NextAsync()).Events).Kv.ModRevision);
        var pending = watch.NextAsync(); // waiting on the stream when etcd dies

        await fixture.Etcd.StopAsync();
        await fixture.Etcd.StartAgainAsync();

        // Written by another client as soon as etcd is back, while the watch is still reconnecting.
        await using (var writer = await fixture.ConnectAsync())
        {
            for (var i = 1; i <= 5; i++)
            {
                await writer.Put(_prefix + "k", $"{i}");
            }
        }

        var seen = new List<string> { Assert.Single((await pending).Events).Kv.ValueString };
        for (var i = 2; i <= 5; i++)
        {
            seen.Add(Assert.Single((await watch.NextAsync()).Events).Kv.ValueString);
        }

        Assert.Equal(["1", "2", "3", "4", "5"], seen);
        var last = await store.Put(_prefix + "k", "6"); // the same store works again too
        Assert.Equal(first + 6, last.Header.Revision);
        var next = Assert.Single((await watch.NextAsync()).Events); // no duplicate of 1..5 before it
        Assert.Equal(("6", last.Header.Revision), (next.Kv.ValueString, next.Kv.ModRevision));
    }

    [Fact]
    public async Task A_call_while_etcd_is_down_fails_with_MetadataUnavailableException_within_its_deadline()
    {
        var options = fixture.Options with { RequestTimeout = TimeSpan.FromSeconds(1), DialTimeout = TimeSpan.FromMilliseconds(500) };
        await using var store = await fixture.ConnectAsync(options);
        await fixture.Etcd.StopAsync();
        try
        {
            var put = Task.Run(async () => await store.Put(_prefix + "down", "x"));
            Assert.True(await Task.WhenAny(put, Task.Delay(Meta.Timeout)) == put, "the call did not end");
            var error = await Assert.ThrowsAsync<MetadataUnavailableException>(() => put);
            Assert.Contains(fixture.Etcd.ClientUrl, error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(" at ", error.Message, StringComparison.Ordinal); // no stack trace for clients
            await Assert.ThrowsAsync<MetadataUnavailableException>(async () => await EtcdMetadataStore.ConnectAsync(options));
        }
        finally
        {
            await fixture.Etcd.StartAgainAsync();
        }

        // And the same store answers again once etcd is back.
        await WaitUntilAsync(
            async () =>
            {
                try
                {
                    await store.Put(_prefix + "up", "x");
                    return true;
                }
                catch (MetadataUnavailableException)
                {
                    return false;
                }
            },
            "the store to reach etcd again");
    }

    [Fact]
    public async Task A_frozen_etcd_fails_calls_at_their_deadline_with_MetadataUnavailableException_not_as_cancelled()
    {
        // A deadline is etcd's failure, not the caller's cancellation: a background loop that took it for a
        // cancellation would stop for good.
        await using var setup = await fixture.ConnectAsync(); // default deadlines: a cold first connection can be slow
        var lease = await setup.LeaseGrantAsync(30);
        var options = fixture.Options with { RequestTimeout = TimeSpan.FromMilliseconds(1500) };
        await using var store = await fixture.ConnectAsync(options);
        await SignalAsync("STOP");
        try
        {
            await Assert.ThrowsAsync<MetadataUnavailableException>(async () => await store.Put(_prefix + "frozen", "x"));
            await Assert.ThrowsAsync<MetadataUnavailableException>(async () => await store.LeaseKeepAliveAsync(lease.Id));
        }
        finally
        {
            await SignalAsync("CONT");
        }

        await WaitUntilAsync(
            async () =>
            {
                try
                {
                    await store.Put(_prefix + "thawed", "x");
                    return true;
                }
                catch (MetadataUnavailableException)
                {
                    return false;
                }
            },
            "the same store to reach the thawed etcd");
    }

    [Fact]
    public async Task After_outages_longer_than_the_dial_timeout_the_same_store_reaches_etcd_again_at_once()
    {
        // Renewing as a broker does (every 200 ms while failing) through outages several dial timeouts long: each time
        // etcd is back, calls get through again (a client stuck "connecting" would time out on every call, for good).
        await (await fixture.ConnectAsync()).DisposeAsync(); // as above: a cold first connection is slow
        var options = fixture.Options with { RequestTimeout = TimeSpan.FromSeconds(2), DialTimeout = TimeSpan.FromMilliseconds(300) };
        await using var store = await fixture.ConnectAsync(options);
        for (var outage = 0; outage < 3; outage++)
        {
            var lease = await store.LeaseGrantAsync(30);
            await fixture.Etcd.StopAsync();
            var down = System.Diagnostics.Stopwatch.StartNew();
            while (down.Elapsed < TimeSpan.FromSeconds(1.5))
            {
                await Assert.ThrowsAsync<MetadataUnavailableException>(async () => await store.LeaseKeepAliveAsync(lease.Id));
                await Task.Delay(200);
            }

            await fixture.Etcd.StartAgainAsync();
            await WaitUntilAsync(
                async () =>
                {
                    try
                    {
                        await store.LeaseKeepAliveAsync(lease.Id);
                        return true;
                    }
                    catch (MetadataUnavailableException)
                    {
                        await Task.Delay(200);
                        return false;
                    }
                },
                "a lease renewal to get through after etcd restarted"); // a client stuck "connecting" never gets through
        }
    }

    [Fact]
    public async Task A_store_given_a_dead_endpoint_first_connects_through_the_next_and_stays_on_it()
    {
        var dead = $"http://127.0.0.1:{FreePort()}";
        var options = fixture.Options with { Endpoints = [dead, fixture.Etcd.ClientUrl], RequestTimeout = TimeSpan.FromSeconds(2) };
        await using var store = await fixture.ConnectAsync(options);
        for (var i = 0; i < 5; i++)
        {
            await store.Put(_prefix + "k", $"{i}");
        }

        Assert.Equal("4", Assert.Single((await store.Get(_prefix + "k")).Kvs).ValueString);
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private async Task SignalAsync(string signal)
    {
        var pid = fixture.Etcd.ProcessId ?? throw new InvalidOperationException("etcd is not running");
        using var kill = System.Diagnostics.Process.Start("kill", [$"-{signal}", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
        Assert.Equal(0, kill.ExitCode);
    }
}
