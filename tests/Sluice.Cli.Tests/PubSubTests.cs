using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Sluice.Cli.Tests;

public class PubSubTests(BrokerFixture broker) : IClassFixture<BrokerFixture>
{
    [Fact]
    public async Task Values_from_arguments_are_acked_one_per_line_and_read_back_in_order()
    {
        await broker.RunOkAsync("stream", "create", "greetings", "--subject", "greetings");

        Assert.Equal(["partition 0 offset 0", "partition 0 offset 1", "partition 0 offset 2"],
            await broker.RunOkAsync("pub", "greetings", "hello", "hej", "hola"));

        var lines = await broker.RunOkAsync("sub", "greetings", "--from", "earliest", "--count", "3");
        Assert.Equal(["0\t\thello", "1\t\thej", "2\t\thola"], lines);

        Assert.Equal(["1\t\thej"], await broker.RunOkAsync("sub", "greetings", "--from", "offset:1", "-n", "1"));
        Assert.Equal(["2\t\thola"], await broker.RunOkAsync("sub", "greetings", "--from", "latest", "--stop-at-latest"));
    }

    [Fact]
    public async Task Ten_thousand_lines_from_stdin_are_published_and_come_back_exactly()
    {
        const int Count = 10_000;
        await broker.RunOkAsync("stream", "create", "lines", "--subject", "lines");
        var input = new StringBuilder();
        for (var i = 0; i < Count; i++)
        {
            input.Append(CultureInfo.InvariantCulture, $"line {i} {new string('x', i % 50)}\n");
        }

        var (code, pub) = await broker.RunWithInputAsync(input.ToString(), "pub", "lines");
        await using (pub)
        {
            Assert.True(code == 0, pub.Transcript());
            var summary = Assert.Single(pub.Stdout);
            Assert.StartsWith($"published {Count} messages to lines in ", summary, StringComparison.Ordinal);
            Assert.EndsWith("offsets partition 0: 0-9999", summary, StringComparison.Ordinal);
            Assert.Empty(pub.Stderr);
        }

        var messages = await broker.RunOkAsync("sub", "lines", "--from", "earliest", "--count", Count.ToString(CultureInfo.InvariantCulture), "-o", "json");
        Assert.Equal(Count, messages.Count);
        for (var i = 0; i < Count; i++)
        {
            using var message = JsonDocument.Parse(messages[i]);
            Assert.Equal(i, message.RootElement.GetProperty("offset").GetInt64());
            Assert.Equal($"line {i} {new string('x', i % 50)}", message.RootElement.GetProperty("value").GetString());
        }
    }

    [Fact]
    public async Task Json_output_carries_keys_headers_and_acks()
    {
        await broker.RunOkAsync("stream", "create", "keyed", "--subject", "keyed");

        var acks = await broker.RunOkAsync("pub", "keyed", "a", "b", "--key", "user-7", "--header", "trace=abc", "-H", "n=1", "--ack-policy", "all", "-o", "json");
        Assert.Equal(2, acks.Count);
        for (var i = 0; i < 2; i++)
        {
            using var ack = JsonDocument.Parse(acks[i]);
            Assert.Equal(i, ack.RootElement.GetProperty("index").GetInt64());
            Assert.Equal("keyed", ack.RootElement.GetProperty("stream").GetString());
            Assert.Equal(0, ack.RootElement.GetProperty("partition").GetInt32());
            Assert.Equal(i, ack.RootElement.GetProperty("offset").GetInt64());
        }

        var lines = await broker.RunOkAsync("sub", "keyed", "--from", "earliest", "--stop-at-latest", "--output", "json");
        Assert.Equal(2, lines.Count);
        using var first = JsonDocument.Parse(lines[0]);
        var root = first.RootElement;
        Assert.Equal("keyed", root.GetProperty("stream").GetString());
        Assert.Equal(0, root.GetProperty("partition").GetInt32());
        Assert.Equal(0, root.GetProperty("offset").GetInt64());
        Assert.Equal("utf8", root.GetProperty("encoding").GetString());
        Assert.Equal("user-7", root.GetProperty("key").GetString());
        Assert.Equal("a", root.GetProperty("value").GetString());
        Assert.Equal("abc", root.GetProperty("headers").GetProperty("trace").GetString());
        Assert.Equal("1", root.GetProperty("headers").GetProperty("n").GetString());
        var timestamp = DateTimeOffset.Parse(root.GetProperty("timestamp").GetString()!, CultureInfo.InvariantCulture);
        Assert.InRange(timestamp, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(1));

        var text = await broker.RunOkAsync("sub", "keyed", "--from", "earliest", "--stop-at-latest", "--headers");
        // Like Liftbridge, the server adds the NATS subject and reply headers.
        Assert.Equal(["0\tuser-7\ta\tn=1,reply=,subject=keyed,trace=abc", "1\tuser-7\tb\tn=1,reply=,subject=keyed,trace=abc"], text);
    }

    [Fact]
    public async Task Unprintable_values_are_shown_as_base64_in_text_and_escaped_in_json()
    {
        await broker.RunOkAsync("stream", "create", "tabs", "--subject", "tabs");
        await broker.RunOkAsync("pub", "tabs", "a\tb");

        var text = await broker.RunOkAsync("sub", "tabs", "--from", "earliest", "--count", "1");
        Assert.Equal(["0\t\tbase64:" + Convert.ToBase64String("a\tb"u8)], text);

        using var json = JsonDocument.Parse(Assert.Single(await broker.RunOkAsync("sub", "tabs", "--from", "earliest", "--count", "1", "-o", "json")));
        Assert.Equal("a\tb", json.RootElement.GetProperty("value").GetString());
    }

    [Fact]
    public async Task Round_robin_and_key_partitioning_spread_messages_over_partitions()
    {
        await broker.RunOkAsync("stream", "create", "spread", "--subject", "spread", "--partitions", "3");

        var acks = await broker.RunOkAsync("pub", "spread", "1", "2", "3", "4", "5", "6", "--round-robin", "-o", "json");
        Assert.Equal([0, 1, 2, 0, 1, 2], acks.Select(a => JsonDocument.Parse(a).RootElement.GetProperty("partition").GetInt32()));
        Assert.Equal([0, 0, 0, 1, 1, 1], acks.Select(a => JsonDocument.Parse(a).RootElement.GetProperty("offset").GetInt32()));

        var keyed = await broker.RunOkAsync("pub", "spread", "x", "y", "--key", "k", "--partition-by-key", "-o", "json");
        var partitions = keyed.Select(a => JsonDocument.Parse(a).RootElement.GetProperty("partition").GetInt32()).Distinct().ToArray();
        var partition = Assert.Single(partitions); // one key, one partition

        Assert.Equal(["2\tk\tx"], await broker.RunOkAsync("sub", "spread", "--partition", partition.ToString(CultureInfo.InvariantCulture), "--from", "offset:2", "-n", "1"));
    }

    [Fact]
    public async Task Expected_offset_is_enforced_with_optimistic_concurrency()
    {
        await broker.RunOkAsync("stream", "create", "ledger", "--subject", "ledger", "--optimistic-concurrency");

        Assert.Equal(["partition 0 offset 0", "partition 0 offset 1"], await broker.RunOkAsync("pub", "ledger", "a", "b", "--expected-offset", "0"));

        var (code, stale) = await broker.RunAsync("pub", "ledger", "c", "--expected-offset", "1");
        await using (stale)
        {
            Assert.Equal(1, code);
            Assert.Contains("offset", Assert.Single(stale.Stderr), StringComparison.Ordinal);
        }

        Assert.Equal(["partition 0 offset 2"], await broker.RunOkAsync("pub", "ledger", "c", "--expected-offset", "2"));
    }

    [Fact]
    public async Task A_subscription_follows_new_messages_until_ctrl_c_and_exits_0()
    {
        await broker.RunOkAsync("stream", "create", "live", "--subject", "live");
        await broker.RunOkAsync("pub", "live", "first");

        // From the latest message: seeing "first" proves the subscription is established.
        await using var sub = SluiceProcess.Start(["sub", "live", "--from", "latest", "--servers", broker.Servers], stdin: null);
        await sub.WaitForLineAsync("\tfirst");
        await broker.RunOkAsync("pub", "live", "second");
        await sub.WaitForLineAsync("\tsecond");

        await sub.InterruptAsync();
        Assert.Equal(0, await sub.WaitForExitAsync());
        Assert.Equal(["0\t\tfirst", "1\t\tsecond"], sub.Stdout);
        Assert.Empty(sub.Stderr);
    }

    [Fact]
    public async Task Stop_at_latest_on_an_empty_stream_prints_nothing_and_exits_0()
    {
        await broker.RunOkAsync("stream", "create", "empty", "--subject", "empty");
        Assert.Empty(await broker.RunOkAsync("sub", "empty", "--from", "earliest", "--stop-at-latest"));
    }
}
